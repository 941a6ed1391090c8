//! Native platform: tokio-tungstenite WebSocket (TLS through rustls), tokio timers.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::NetError;

pub struct Socket {
    inner: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Socket {
    pub async fn connect(url: &str) -> Result<Socket, NetError> {
        let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
        // Task frames carry whole input buffers.
        config.max_message_size = Some(1 << 30);
        config.max_frame_size = Some(1 << 30);
        // Most frames are small; tungstenite zeroes the whole read buffer as it reads (128 KiB
        // by default). Bigger messages grow it as they need.
        config.read_buffer_size = 8 << 10;
        let (inner, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| NetError::Connect { url: url.to_owned(), reason: e.to_string() })?;
        Ok(Socket { inner })
    }

    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), NetError> {
        self.inner.send(Message::Binary(bytes.into())).await.map_err(|e| NetError::Lost(e.to_string()))
    }

    /// The next binary frame; `None` once the socket is closed. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Vec<u8>, NetError>> {
        loop {
            match self.inner.next().await? {
                Ok(Message::Binary(bytes)) => return Some(Ok(bytes.into())),
                Ok(Message::Close(_)) => return None,
                Ok(_) => continue,
                Err(e) => return Some(Err(NetError::Lost(e.to_string()))),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }
}

pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}

#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}
