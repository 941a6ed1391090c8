//! A Web Worker's peer connections, held by the page that started it.
//!
//! Browsers give a dedicated Web Worker `RTCDataChannel` but no `RTCPeerConnection` (Chromium
//! 156). So a worker asks its page (`sdk-js/src/rtc-host.js`) to hold each connection: the page
//! creates it with the negotiated data channel ([`super::CHANNEL_LABEL`]), transfers that channel
//! here at once — before it can open, so no message can be missed — and passes its descriptions
//! back. The activations never cross the page: they flow on the channel, in the worker.
//!
//! Worker → page, through the worker's event callback: `{type:"rtc", op:"open", id, offer?}`,
//! `{…, op:"answer", id, sdp}`, `{…, op:"candidate", id, candidate, sdpMid, sdpMLineIndex}`,
//! `{…, op:"close", id}`. Page → worker, to [`deliver`]: `{type:"rtc", op:"channel", id, channel}`,
//! `{…, op:"sdp", id, sdp}`, `{…, op:"failed", id, reason}`.

use std::cell::RefCell;
use std::collections::HashMap;

use futures::channel::mpsc::UnboundedSender;
use hyphae_proto::Address;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::RtcDataChannel;

use super::RtcEvent;
use super::imp::{Channel, Ev};

thread_local! {
    static HOST: RefCell<Option<Host>> = const { RefCell::new(None) };
}

struct Host {
    /// Carries a request to the page.
    post: js_sys::Function,
    next_id: u64,
    conns: HashMap<u64, Route>,
}

/// Where the page's news about one connection goes.
struct Route {
    peer: Address,
    events: UnboundedSender<RtcEvent>,
    tx: UnboundedSender<Ev>,
}

/// From now on this worker's connections are held by the page; `post` carries requests to it.
pub fn install(post: js_sys::Function) {
    HOST.with_borrow_mut(|host| *host = Some(Host { post, next_id: 1, conns: HashMap::new() }));
}

/// A new hosted connection to `peer`; `None` when no page hosts connections.
pub(super) fn register(peer: Address, events: UnboundedSender<RtcEvent>, tx: UnboundedSender<Ev>) -> Option<u64> {
    HOST.with_borrow_mut(|host| {
        let host = host.as_mut()?;
        let id = host.next_id;
        host.next_id += 1;
        host.conns.insert(id, Route { peer, events, tx });
        Some(id)
    })
}

/// Asks the page to create connection `id`: an offer, or the answer to `offer`.
pub(super) fn open(id: u64, offer: Option<&str>) {
    post("open", id, &[("offer", offer.map_or(JsValue::UNDEFINED, JsValue::from_str))]);
}

pub(super) fn answer(id: u64, sdp: &str) {
    post("answer", id, &[("sdp", sdp.into())]);
}

pub(super) fn candidate(id: u64, candidate: &str, sdp_mid: Option<&str>, sdp_mline_index: Option<u16>) {
    post(
        "candidate",
        id,
        &[
            ("candidate", candidate.into()),
            ("sdpMid", sdp_mid.map_or(JsValue::NULL, JsValue::from_str)),
            ("sdpMLineIndex", sdp_mline_index.map_or(JsValue::NULL, JsValue::from)),
        ],
    );
}

/// Forgets connection `id` and asks the page to close it.
pub(super) fn close(id: u64) {
    post("close", id, &[]);
    HOST.with_borrow_mut(|host| host.as_mut().map(|host| host.conns.remove(&id)));
}

fn post(op: &str, id: u64, fields: &[(&str, JsValue)]) {
    let message = js_sys::Object::new();
    let set = |key: &str, value: &JsValue| {
        let _ = js_sys::Reflect::set(&message, &key.into(), value);
    };
    set("type", &"rtc".into());
    set("op", &op.into());
    set("id", &JsValue::from(id as f64));
    for (key, value) in fields {
        set(key, value);
    }
    HOST.with_borrow(|host| {
        if let Some(host) = host
            && let Err(error) = host.post.call1(&JsValue::NULL, &message)
        {
            web_sys::console::error_2(&"hyphae: could not reach the page hosting peer connections".into(), &error);
        }
    });
}

/// Why a message from the page was not understood.
#[derive(Debug, thiserror::Error)]
pub enum HostMessageError {
    #[error("peer connection message without a numeric `id`")]
    NoId,
    #[error("peer connection message `{0}` is missing `{1}`")]
    Missing(String, &'static str),
    #[error("unknown peer connection message `{0}`")]
    Unknown(String),
}

/// A message from the page about one of its connections. One about a connection this worker
/// has forgotten (closed meanwhile) is dropped.
pub fn deliver(message: &JsValue) -> Result<(), HostMessageError> {
    let field = |key: &str| js_sys::Reflect::get(message, &key.into()).unwrap_or(JsValue::UNDEFINED);
    let op = field("op").as_string().unwrap_or_default();
    let id = field("id").as_f64().ok_or(HostMessageError::NoId)? as u64;
    let route = HOST.with_borrow(|host| {
        let route = host.as_ref()?.conns.get(&id)?;
        Some((route.peer, route.events.clone(), route.tx.clone()))
    });
    let Some((peer, events, tx)) = route else {
        if op == "channel"
            && let Ok(channel) = field("channel").dyn_into::<RtcDataChannel>()
        {
            channel.close();
        }
        return Ok(());
    };
    let text = |key: &'static str| field(key).as_string().ok_or_else(|| HostMessageError::Missing(op.clone(), key));
    let event = match op.as_str() {
        "channel" => {
            let channel = field("channel")
                .dyn_into::<RtcDataChannel>()
                .map_err(|_| HostMessageError::Missing(op.clone(), "channel"))?;
            Ev::Channel(Channel::new(channel, peer, events, tx.clone()))
        }
        "sdp" => Ev::LocalSdp(text("sdp")?),
        "failed" => Ev::Failed(text("reason").unwrap_or_else(|_| "the page's connection failed".into())),
        _ => return Err(HostMessageError::Unknown(op)),
    };
    let _ = tx.unbounded_send(event);
    Ok(())
}
