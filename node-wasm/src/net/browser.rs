//! Browser platform: the page's (or Web Worker's) own WebSocket, timers through gloo, and
//! `performance.now()` for time.

use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::NetError;

enum Incoming {
    Open,
    Frame(Vec<u8>),
    Closed(String),
}

pub struct Socket {
    ws: WebSocket,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    // The callbacks live as long as the socket.
    _callbacks: [Closure<dyn FnMut(web_sys::Event)>; 3],
}

impl Socket {
    pub async fn connect(url: &str) -> Result<Socket, NetError> {
        let connect_error = |reason: String| NetError::Connect { url: url.to_owned(), reason };
        let ws = WebSocket::new(url).map_err(|e| connect_error(format!("{e:?}")))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let (tx, mut incoming) = mpsc::unbounded();

        let on_open = {
            let tx = tx.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                let _ = tx.unbounded_send(Incoming::Open);
            })
        };
        let on_message = {
            let tx = tx.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
                let Some(event) = event.dyn_ref::<MessageEvent>() else { return };
                if let Ok(buffer) = event.data().dyn_into::<js_sys::ArrayBuffer>() {
                    let _ = tx.unbounded_send(Incoming::Frame(js_sys::Uint8Array::new(&buffer).to_vec()));
                }
            })
        };
        let on_close = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let reason = match event.dyn_ref::<CloseEvent>() {
                Some(close) => format!("closed ({}) {}", close.code(), close.reason()),
                None => "closed".to_owned(),
            };
            let _ = tx.unbounded_send(Incoming::Closed(reason));
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));

        match incoming.next().await {
            Some(Incoming::Open) => {}
            Some(Incoming::Closed(reason)) => return Err(connect_error(reason)),
            _ => return Err(connect_error("closed before opening".into())),
        }
        Ok(Socket { ws, incoming, _callbacks: [on_open, on_message, on_close] })
    }

    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), NetError> {
        self.ws.send_with_u8_array(&bytes).map_err(|e| NetError::Lost(format!("{e:?}")))
    }

    /// The next binary frame; `None` once the socket is closed. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Vec<u8>, NetError>> {
        loop {
            match self.incoming.next().await? {
                Incoming::Frame(bytes) => return Some(Ok(bytes)),
                Incoming::Closed(_) => return None,
                Incoming::Open => continue,
            }
        }
    }

    pub async fn close(self) {
        let _ = self.ws.close();
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
    }
}

pub async fn sleep(duration: Duration) {
    gloo_timers::future::sleep(duration).await;
}

fn now_ms() -> f64 {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"performance".into())
        .ok()
        .and_then(|p| p.dyn_into::<web_sys::Performance>().ok())
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(f64);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(now_ms())
    }

    pub fn elapsed(&self) -> Duration {
        Duration::from_secs_f64(((now_ms() - self.0) / 1000.0).max(0.0))
    }
}
