//! The browser worker's JavaScript surface, and the only `#[wasm_bindgen]` exports of the crate.
//! `sdk-js/src/worker.js` loads this module inside a module Web Worker (so the page never blocks)
//! and drives a [`BrowserWorker`]: start, pause, resume, throttle, stop. Everything the worker
//! does is reported to a JavaScript callback as plain objects `{type, …}`, the protocol the SDK
//! documents.

use std::time::Duration;

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use hyphae_proto::Address;
use hyphae_proto::frame::{AdapterInfo, Platform};
use wasm_bindgen::prelude::*;

use crate::blobs::BlobCache;
use crate::executor::{Execute as _, GpuExecutor};
use crate::peer::rtc::{RtcConfig, page_host};
use crate::{ControlHandle, Event, Throttle, WorkerConfig, control, keystore};

#[wasm_bindgen]
pub struct BrowserWorker {
    throttle: ControlHandle,
    stop: Option<oneshot::Sender<()>>,
    address: String,
}

#[wasm_bindgen]
impl BrowserWorker {
    /// Opens the GPU, loads (or creates) this browser's key from IndexedDB and starts serving
    /// `relay`. `beneficiary` earns the credits (default: the worker's own address);
    /// `adapter_label` names the GPU when the browser hides its name; `max_shards` caps the model
    /// shards kept loaded (default and most: `shard_capacity`). With `rtc_host`, the page
    /// holds this worker's peer connections (`sdk-js/src/rtc-host.js`, `peer::rtc::page_host`):
    /// its requests go out as `{type: "rtc", …}` events and the page's answers come back through
    /// [`BrowserWorker::rtc`]; without, activations from other workers come through the relay.
    /// Fails when the browser has no usable WebGPU adapter: the caller reports the browser
    /// unsupported.
    pub async fn start(
        relay: String,
        beneficiary: Option<String>,
        max_utilization: f64,
        adapter_label: Option<String>,
        max_shards: Option<u32>,
        rtc_host: bool,
        on_event: js_sys::Function,
    ) -> Result<BrowserWorker, JsError> {
        std::panic::set_hook(Box::new(|info| web_sys::console::error_1(&info.to_string().into())));
        let executor = GpuExecutor::new(adapter_label).await.map_err(|e| JsError::new(&e.to_string()))?;
        let key = keystore::load_or_create().await.map_err(|e| JsError::new(&e.to_string()))?;
        let beneficiary = match beneficiary.as_deref().filter(|b| !b.is_empty()) {
            Some(b) => b.parse::<Address>().map_err(|e| JsError::new(&e.to_string()))?,
            None => key.address(),
        };
        let address = key.address().to_string();
        emit(&on_event, identity(&address, &beneficiary, &executor.adapter()));

        let rtc = rtc_host.then(|| {
            page_host::install(on_event.clone());
            // The page's browser picks the interfaces; only the timeout is ours to set.
            RtcConfig { bind: Vec::new(), ..RtcConfig::default() }
        });
        let (events, mut incoming) = mpsc::unbounded();
        let (throttle, control) = control(Throttle { paused: false, max_utilization });
        let config = WorkerConfig {
            relay,
            key,
            beneficiary,
            max_in_flight: 2,
            platform: Platform::Browser,
            agent: format!("hyphae-browser/{}", env!("CARGO_PKG_VERSION")),
            blob_cache: BlobCache::new(),
            events: Some(events),
            silence: Duration::from_secs(60),
            control,
            rtc,
            max_shards: max_shards.unwrap_or(u32::MAX).clamp(1, crate::executor::shard_capacity() as u32),
        };
        let forward = on_event.clone();
        wasm_bindgen_futures::spawn_local(async move {
            while let Some(event) = incoming.next().await {
                emit(&forward, event_object(&event));
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        wasm_bindgen_futures::spawn_local(async move {
            let stop = async {
                let _ = stopped.await;
            };
            let object = match crate::run(config, executor, stop).await {
                Ok(()) => state("stopped", None),
                Err(e) => state("error", Some(&e.to_string())),
            };
            emit(&on_event, object);
        });
        Ok(BrowserWorker { throttle, stop: Some(stop), address })
    }

    /// Leaves the relay (its tasks go to other workers at once) until [`BrowserWorker::resume`].
    pub fn pause(&self) {
        self.throttle.pause();
    }

    pub fn resume(&self) {
        self.throttle.resume();
    }

    /// Caps the share of time the GPU spends on tasks, in (0, 1].
    pub fn set_max_utilization(&self, max_utilization: f64) {
        self.throttle.set_max_utilization(max_utilization);
    }

    /// Stops for good; a `stopped` state event follows.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// A message from the page about a peer connection it holds for this worker.
    pub fn rtc(&self, message: JsValue) -> Result<(), JsError> {
        page_host::deliver(&message).map_err(|e| JsError::new(&e.to_string()))
    }

    /// The worker's address (its key's).
    #[wasm_bindgen(getter)]
    pub fn address(&self) -> String {
        self.address.clone()
    }
}

fn emit(on_event: &js_sys::Function, object: js_sys::Object) {
    if let Err(e) = on_event.call1(&JsValue::NULL, &object) {
        web_sys::console::error_2(&"hyphae: event handler failed".into(), &e);
    }
}

fn object(kind: &str, fields: &[(&str, JsValue)]) -> js_sys::Object {
    let o = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&o, &"type".into(), &kind.into());
    for (k, v) in fields {
        let _ = js_sys::Reflect::set(&o, &(*k).into(), v);
    }
    o
}

fn state(state: &str, detail: Option<&str>) -> js_sys::Object {
    let mut fields = vec![("state", JsValue::from_str(state))];
    if let Some(detail) = detail {
        fields.push(("detail", detail.into()));
    }
    object("state", &fields)
}

fn identity(worker: &str, beneficiary: &Address, adapter: &AdapterInfo) -> js_sys::Object {
    let a = object(
        "adapter",
        &[
            ("name", adapter.name.as_str().into()),
            ("vendor", adapter.vendor.into()),
            ("device", adapter.device.into()),
            ("device_type", adapter.device_type.as_str().into()),
            ("backend", adapter.backend.as_str().into()),
            ("driver", adapter.driver.as_str().into()),
        ],
    );
    let _ = js_sys::Reflect::delete_property(&a, &"type".into());
    object(
        "identity",
        &[("worker", worker.into()), ("beneficiary", beneficiary.to_string().into()), ("adapter", a.into())],
    )
}

fn event_object(event: &Event) -> js_sys::Object {
    match event {
        Event::Connecting { .. } => state("connecting", None),
        Event::Connected { relay, .. } => {
            let o = state("running", None);
            let _ = js_sys::Reflect::set(&o, &"relay".into(), &relay.to_string().into());
            o
        }
        Event::TaskStarted { task, work } => {
            object("task-start", &[("task", task.to_string().into()), ("work", work.as_str().into())])
        }
        Event::TaskFinished { task, ok, elapsed, rest } => object(
            "task",
            &[
                ("task", task.to_string().into()),
                ("ok", (*ok).into()),
                ("ms", (elapsed.as_secs_f64() * 1e3).into()),
                ("restMs", (rest.as_secs_f64() * 1e3).into()),
            ],
        ),
        Event::Receipt(receipt) => {
            let json = serde_json::to_string(receipt.as_ref()).expect("receipts serialize");
            let receipt = js_sys::JSON::parse(&json).unwrap_or(JsValue::NULL);
            object("receipt", &[("receipt", receipt)])
        }
        Event::Disconnected { reason, retry_in } => {
            let o = state("connecting", Some(reason));
            let _ = js_sys::Reflect::set(&o, &"retryMs".into(), &(retry_in.as_secs_f64() * 1e3).into());
            o
        }
        Event::Paused => state("paused", None),
    }
}
