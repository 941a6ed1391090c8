//! What the worker needs from its platform, one implementation per target with the same names:
//! a binary WebSocket ([`Socket`]), [`sleep`], and a [`Stopwatch`]. `native.rs` uses tokio and
//! tungstenite; `browser.rs` uses the browser's own WebSocket and timers.

#[cfg_attr(not(target_arch = "wasm32"), path = "native.rs")]
#[cfg_attr(target_arch = "wasm32", path = "browser.rs")]
mod imp;

pub use imp::{Socket, Stopwatch, sleep};

#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("connection lost: {0}")]
    Lost(String),
}

/// The worker socket URL of a relay given by its HTTP base URL (`http://host:port`).
pub fn worker_socket_url(relay: &str) -> String {
    let base = relay.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/v1/workers/ws")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_url_follows_the_relay_scheme() {
        assert_eq!(worker_socket_url("http://127.0.0.1:8080/"), "ws://127.0.0.1:8080/v1/workers/ws");
        assert_eq!(worker_socket_url("https://relay.example"), "wss://relay.example/v1/workers/ws");
    }
}
