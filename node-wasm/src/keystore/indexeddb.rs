//! The browser's key store: the worker's secret key in IndexedDB (database `hyphae`, store
//! `keys`, entry `worker`), created on first use, so a visitor keeps one identity and reputation
//! across visits. IndexedDB works in Web Workers, where the worker runs.

use futures::channel::oneshot;
use hyphae_proto::SecretKey;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{IdbDatabase, IdbFactory, IdbOpenDbRequest, IdbRequest, IdbTransactionMode};

const DATABASE: &str = "hyphae";
const STORE: &str = "keys";
const ENTRY: &str = "worker";

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("IndexedDB is not available here")]
    Unavailable,
    #[error("IndexedDB: {0}")]
    Idb(String),
    #[error("the stored key is not a secp256k1 secret key")]
    Malformed,
}

fn idb(e: JsValue) -> KeyStoreError {
    KeyStoreError::Idb(e.as_string().unwrap_or_else(|| format!("{e:?}")))
}

/// Loads this browser's worker key, creating and storing one if there is none.
pub async fn load_or_create() -> Result<SecretKey, KeyStoreError> {
    let db = open().await?;
    if let Some(key) = read(&db).await? {
        return Ok(key);
    }
    let key = SecretKey::random(&mut rand::rngs::OsRng);
    let bytes = js_sys::Uint8Array::from(&key.to_bytes()[..]);
    let tx = db.transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite).map_err(idb)?;
    let store = tx.object_store(STORE).map_err(idb)?;
    // `add` fails if another tab stored a key first: then that key is the one.
    match wait(&store.add_with_key(&bytes, &JsValue::from_str(ENTRY)).map_err(idb)?).await {
        Ok(_) => Ok(key),
        Err(_) => read(&db).await?.ok_or(KeyStoreError::Malformed),
    }
}

async fn open() -> Result<IdbDatabase, KeyStoreError> {
    let factory: IdbFactory = js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or(KeyStoreError::Unavailable)?;
    let request: IdbOpenDbRequest = factory.open_with_u32(DATABASE, 1).map_err(idb)?;
    let on_upgrade = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        let db = event
            .target()
            .and_then(|t| t.dyn_into::<IdbOpenDbRequest>().ok())
            .and_then(|r| r.result().ok())
            .and_then(|r| r.dyn_into::<IdbDatabase>().ok());
        if let Some(db) = db
            && !db.object_store_names().contains(STORE)
        {
            let _ = db.create_object_store(STORE);
        }
    });
    request.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    let db = wait(&request).await;
    request.set_onupgradeneeded(None);
    db?.dyn_into().map_err(|_| KeyStoreError::Idb("open did not yield a database".into()))
}

async fn read(db: &IdbDatabase) -> Result<Option<SecretKey>, KeyStoreError> {
    let tx = db.transaction_with_str(STORE).map_err(idb)?;
    let value = wait(&tx.object_store(STORE).map_err(idb)?.get(&JsValue::from_str(ENTRY)).map_err(idb)?).await?;
    if value.is_undefined() {
        return Ok(None);
    }
    let bytes = value.dyn_into::<js_sys::Uint8Array>().map_err(|_| KeyStoreError::Malformed)?.to_vec();
    SecretKey::from_bytes(&bytes).map(Some).map_err(|_| KeyStoreError::Malformed)
}

/// Waits for an IndexedDB request to succeed (its result) or fail.
async fn wait(request: &IdbRequest) -> Result<JsValue, KeyStoreError> {
    let (tx, rx) = oneshot::channel::<Result<(), ()>>();
    let tx = std::rc::Rc::new(std::cell::RefCell::new(Some(tx)));
    let done = |ok: bool| {
        let tx = tx.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            if let Some(tx) = tx.borrow_mut().take() {
                let _ = tx.send(if ok { Ok(()) } else { Err(()) });
            }
        })
    };
    let (on_success, on_error) = (done(true), done(false));
    request.set_onsuccess(Some(on_success.as_ref().unchecked_ref()));
    request.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let outcome = rx.await;
    request.set_onsuccess(None);
    request.set_onerror(None);
    match outcome {
        Ok(Ok(())) => request.result().map_err(idb),
        _ => Err(KeyStoreError::Idb(
            request.error().ok().flatten().map(|e| e.message()).unwrap_or_else(|| "request failed".into()),
        )),
    }
}
