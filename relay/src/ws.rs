//! The worker socket, `GET /v1/workers/ws`: login by signed challenge, then one reader and one
//! writer per worker. The scheduler talks to the writer through a bounded channel, never to the
//! socket. A frame that does not decode closes that connection (policy violation) and nothing else.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use hyphae_proto::frame::{Hello, ToRelay, ToWorker, login_message};
use hyphae_proto::{Address, PROTOCOL_VERSION};
use tokio::sync::oneshot;

use crate::app::AppState;
use crate::scheduler::Outbound;

/// Bytes a worker socket reads at once (see [`upgrade`]).
pub const READ_BUFFER: usize = 8 << 10;

pub async fn upgrade(
    State(app): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let max = app.config.max_frame_bytes;
    // Known when served with connect info (always, outside in-process router tests).
    let remote = extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| {
        let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        client_ip(address.ip(), forwarded, &app.config.trusted_proxies)
    });
    // Most frames are a few hundred bytes: tungstenite zeroes its whole read buffer as it reads
    // (128 KiB by default), which cost more than the rest of a frame's handling, and held 128
    // MiB for a thousand workers. A bigger message still grows the buffer as it needs.
    ws.read_buffer_size(READ_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(socket, app, remote))
}

/// The address a connection is from: its peer's, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` (read right to left, each proxy appending the address it
/// saw) that is not itself a trusted proxy. Whatever a client wrote further left is its own claim
/// and is not believed.
fn client_ip<'h>(peer: IpAddr, forwarded: impl Iterator<Item = &'h str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded.flat_map(|header| header.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            // A hop that is not an address: stop at the last one believed.
            Err(_) => break,
        }
    }
    client
}

async fn serve(socket: WebSocket, app: AppState, remote: Option<IpAddr>) {
    let (mut sink, mut stream) = socket.split();
    let hello = match login(&mut sink, &mut stream, &app).await {
        Ok(hello) => hello,
        Err(reason) => {
            tracing::info!(%reason, "worker login refused");
            app.metrics.worker_protocol_errors.inc();
            let _ = sink.send(binary(ToWorker::Refused { reason: reason.clone() }.encode())).await;
            let _ = sink.send(close(close_code::POLICY, &reason)).await;
            return;
        }
    };
    let worker = hello.worker;
    let (conn, max_in_flight, outbound, peer_frames) = app.scheduler.connect(&hello, remote);
    app.metrics.worker_connections.inc();
    tracing::info!(%worker, beneficiary = %hello.beneficiary, adapter = %hello.adapter.name,
        backend = %hello.adapter.backend, platform = ?hello.platform, "worker joined");
    let welcome = ToWorker::Welcome { worker, max_in_flight };
    if sink.send(binary(welcome.encode())).await.is_err() {
        app.scheduler.disconnect(worker, conn);
        return;
    }
    let (closing, close_reason) = oneshot::channel();
    let writer = tokio::spawn(write(sink, outbound, peer_frames, close_reason, app.config.heartbeat));
    let violation = read(stream, worker, &app).await;
    app.scheduler.disconnect(worker, conn);
    if let Some(reason) = &violation {
        app.metrics.worker_protocol_errors.inc();
        tracing::warn!(%worker, %reason, "closing worker connection: protocol violation");
    } else {
        tracing::info!(%worker, "worker left");
    }
    let _ = closing.send(violation);
    let _ = writer.await;
}

async fn login(
    sink: &mut SplitSink<WebSocket, Message>,
    stream: &mut SplitStream<WebSocket>,
    app: &AppState,
) -> Result<Hello, String> {
    let relay = app.scheduler.relay_address();
    let nonce: [u8; 32] = rand::random();
    let challenge = ToWorker::Challenge { protocol: PROTOCOL_VERSION, relay, nonce };
    sink.send(binary(challenge.encode())).await.map_err(|e| e.to_string())?;
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .map_err(|_| "no hello within 10 s".to_owned())?;
    let bytes = match first {
        Some(Ok(Message::Binary(bytes))) => bytes,
        Some(Ok(_)) => return Err("expected a binary hello frame".into()),
        Some(Err(e)) => return Err(e.to_string()),
        None => return Err("closed before hello".into()),
    };
    let hello = match ToRelay::decode(&bytes).map_err(|e| e.to_string())? {
        ToRelay::Hello(hello) => *hello,
        _ => return Err("expected hello".into()),
    };
    if hello.protocol != PROTOCOL_VERSION {
        return Err(format!("protocol {} is not supported; this relay speaks {PROTOCOL_VERSION}", hello.protocol));
    }
    let signer = hello.signature.recover(login_message(&relay, &nonce).as_bytes()).map_err(|e| e.to_string())?;
    if signer != hello.worker {
        return Err(format!("login signed by {signer}, not by {}", hello.worker));
    }
    Ok(hello)
}

/// Reads frames until the socket ends. Returns the protocol violation that ended it, if any.
async fn read(mut stream: SplitStream<WebSocket>, worker: Address, app: &AppState) -> Option<String> {
    let idle = app.config.heartbeat * 3;
    // One timer for the connection, moved on only when it fires: re-arming it for every frame
    // would cost a timer-wheel registration per result.
    let mut heard = Instant::now();
    let silence = tokio::time::sleep(idle);
    tokio::pin!(silence);
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = &mut silence => {
                if heard.elapsed() >= idle {
                    return Some(format!("silent for {} s", idle.as_secs()));
                }
                silence.as_mut().reset((heard + idle).into());
                continue;
            }
        };
        heard = Instant::now();
        let message = match message {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(message)) => message,
        };
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Text(_) => return Some("text frame; frames are binary".into()),
            Message::Close(_) => return None,
        };
        match ToRelay::decode(&bytes) {
            // The worker's next task goes out before this result is judged; verifying it
            // (voting, signing, committing) runs on the judging thread.
            Ok(ToRelay::Result(output)) => app.scheduler.judge_later(app.scheduler.take_result(worker, *output)).await,
            Ok(ToRelay::Digest(digest)) => app.scheduler.judge_later(app.scheduler.take_digest(worker, *digest)).await,
            Ok(ToRelay::Failed { lease, failure }) => {
                let scheduler = Arc::clone(&app.scheduler);
                tokio::spawn(async move { scheduler.on_failure(worker, lease, failure).await });
            }
            // In order, and waiting for the receiver: relayed transfers are backpressured.
            Ok(ToRelay::Signal { to, signal }) => app.scheduler.on_signal(worker, to, signal).await,
            Ok(ToRelay::Peer { to, frame }) => app.scheduler.on_peer_frame(worker, to, frame).await,
            Ok(ToRelay::Traffic(traffic)) => app.scheduler.on_traffic(traffic),
            Ok(ToRelay::Pong { .. }) => {}
            Ok(ToRelay::Hello(_)) => return Some("second hello".into()),
            Err(e) => return Some(e.to_string()),
        }
    }
}

/// How long a receipt may wait for the worker's next task to go out in the same write. Alone,
/// each receipt costs both ends a system call and a wake-up; no worker needs it sooner.
const RECEIPT_DELAY: Duration = Duration::from_millis(500);

async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbound: tokio::sync::mpsc::Receiver<Outbound>,
    mut peer_frames: tokio::sync::mpsc::Receiver<ToWorker>,
    mut closing: oneshot::Receiver<Option<String>>,
    heartbeat: Duration,
) {
    let mut ping = tokio::time::interval(heartbeat);
    ping.tick().await;
    let mut nonce = 0u64;
    // Receipts written but not yet flushed go out by this time at the latest.
    let linger = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(linger);
    let mut lingering = false;
    loop {
        let (frame, can_wait) = tokio::select! {
            reason = &mut closing => {
                let (code, text) = match reason {
                    Ok(Some(reason)) => (close_code::POLICY, reason),
                    _ => (close_code::NORMAL, String::new()),
                };
                let _ = sink.send(close(code, &text)).await;
                return;
            }
            message = outbound.recv() => match message {
                Some(message) => {
                    let can_wait = message.can_wait();
                    (message.encode(), can_wait)
                }
                // The scheduler dropped this worker (replaced by a newer connection, or stuck).
                None => {
                    let _ = sink.send(close(close_code::AGAIN, "replaced by a newer connection")).await;
                    return;
                }
            },
            Some(frame) = peer_frames.recv() => (frame.encode(), false),
            _ = ping.tick() => {
                nonce += 1;
                (ToWorker::Ping { nonce }.encode(), false)
            }
            () = &mut linger, if lingering => {
                lingering = false;
                if sink.flush().await.is_err() {
                    return;
                }
                continue;
            }
        };
        if sink.feed(binary(frame)).await.is_err() {
            return;
        }
        // Whatever else waits goes out in the same write: one system call for a receipt and the
        // next task, or for a burst of leases.
        let mut all_can_wait = can_wait;
        while let Ok(message) = outbound.try_recv() {
            all_can_wait &= message.can_wait();
            if sink.feed(binary(message.encode())).await.is_err() {
                return;
            }
        }
        if all_can_wait {
            if !lingering {
                linger.as_mut().reset(tokio::time::Instant::now() + RECEIPT_DELAY);
                lingering = true;
            }
            continue;
        }
        lingering = false;
        if sink.flush().await.is_err() {
            return;
        }
    }
}

fn binary(bytes: Vec<u8>) -> Message {
    Message::Binary(bytes.into())
}

fn close(code: u16, reason: &str) -> Message {
    // Close reasons are limited to 123 bytes.
    let mut reason = reason.to_owned();
    while reason.len() > 123 {
        reason.pop();
    }
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_are_believed_from_trusted_proxies_only() {
        let proxy = ip("10.0.0.1");
        let trusted = [proxy];
        // Straight from a worker, the header is the worker's own claim.
        assert_eq!(client_ip(ip("203.0.113.7"), ["198.51.100.1"].into_iter(), &trusted), ip("203.0.113.7"));
        // Through the proxy: the address it appended.
        assert_eq!(client_ip(proxy, ["198.51.100.1"].into_iter(), &trusted), ip("198.51.100.1"));
        // A forged hop on the left is not believed; chained trusted proxies are skipped.
        let chain = ["6.6.6.6, 198.51.100.1, 10.0.0.1"];
        assert_eq!(client_ip(proxy, chain.into_iter(), &trusted), ip("198.51.100.1"));
        // Several headers read as one list; garbage stops at the last believed hop.
        assert_eq!(client_ip(proxy, ["6.6.6.6", "198.51.100.2"].into_iter(), &trusted), ip("198.51.100.2"));
        assert_eq!(client_ip(proxy, ["198.51.100.3, not-an-ip"].into_iter(), &trusted), proxy);
        // No header: the proxy itself.
        assert_eq!(client_ip(proxy, std::iter::empty(), &trusted), proxy);
    }
}
