//! A worker's life with its relay: connect, prove its key by signing the relay's challenge,
//! serve tasks, and when the connection drops, reconnect with exponential backoff and jitter.

use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use futures::{FutureExt, select};
use hyphae_proto::frame::{Hello, Platform, ToRelay, ToWorker, login_message};
use hyphae_proto::{Address, PROTOCOL_VERSION, SecretKey, SignedReceipt, TaskId};

use crate::blobs::{BlobCache, BlobFetcher};
use crate::control::Control;
use crate::executor::Execute;
use crate::net::{self, Socket, Stopwatch, sleep};
use crate::peer::rtc::RtcConfig;
use crate::peer::{Kept, Peers};
use crate::worker::{self, SessionEnd};

pub struct WorkerConfig {
    /// The relay's HTTP base URL, e.g. `http://127.0.0.1:8080`.
    pub relay: String,
    pub key: SecretKey,
    /// Who earns this worker's credits.
    pub beneficiary: Address,
    /// Tasks the worker asks to hold at once: one running, the rest waiting, so the GPU never idles
    /// for a round trip.
    pub max_in_flight: u32,
    pub platform: Platform,
    /// Software and version, e.g. `hyphae-node/0.1.0`.
    pub agent: String,
    pub blob_cache: BlobCache,
    /// Where to report what happens (a UI, a test); `None` to report nothing.
    pub events: Option<UnboundedSender<Event>>,
    /// How long the relay may stay silent before the connection is presumed dead.
    pub silence: Duration,
    /// Pause and duty cycle, changed by the worker's owner.
    pub control: Control,
    /// Direct connections to other workers; `None` sends every peer transfer through the relay.
    pub rtc: Option<RtcConfig>,
    /// Model shards to keep loaded at once, as told to the relay (at most
    /// [`crate::executor::shard_capacity`]).
    pub max_shards: u32,
}

/// What a worker reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    Connecting {
        url: String,
    },
    Connected {
        worker: Address,
        relay: Address,
        max_in_flight: u32,
    },
    /// A task started; `work` says what it is (`kernel`, or a model shard such as
    /// `all-MiniLM-L6-v2 shard 2/3`).
    TaskStarted {
        task: TaskId,
        work: String,
    },
    /// A task ran for `elapsed`; the worker now rests `rest` to honour its duty cycle.
    TaskFinished {
        task: TaskId,
        ok: bool,
        elapsed: Duration,
        rest: Duration,
    },
    Receipt(Box<SignedReceipt>),
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
    /// Paused by its owner: disconnected, holding no tasks, until resumed.
    Paused,
}

/// The event sink, if any.
pub struct Events(Option<UnboundedSender<Event>>);

impl Events {
    pub fn emit(&self, event: Event) {
        if let Some(tx) = &self.0 {
            let _ = tx.unbounded_send(event);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the relay refused this worker: {0}")]
    Refused(String),
}

enum Login {
    Ok { relay: Address, max_in_flight: u32 },
    Refused(String),
    Failed(SessionEnd),
}

/// Runs the worker until `stop` resolves, or the relay refuses it for good.
pub async fn run<E: Execute>(
    config: WorkerConfig,
    executor: E,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), WorkerError> {
    let mut stop = Box::pin(stop.fuse());
    select! {
        result = serve_forever(config, executor).fuse() => result,
        () = stop => Ok(()),
    }
}

async fn serve_forever<E: Execute>(mut config: WorkerConfig, executor: E) -> Result<(), WorkerError> {
    let events = Events(config.events.clone());
    let blobs = BlobFetcher::new(&config.relay, std::mem::take(&mut config.blob_cache));
    // Outlives sessions: outputs kept and direct connections survive a reconnect to the relay.
    let (peers, mut outbox) = Peers::new(config.key.address(), config.rtc.take(), Kept::default());
    let url = net::worker_socket_url(&config.relay);
    let mut backoff = Backoff::new();
    let mut control = config.control.clone();
    loop {
        if control.current().paused {
            events.emit(Event::Paused);
            control.resumed().await;
        }
        events.emit(Event::Connecting { url: url.clone() });
        let session = Stopwatch::start();
        let reason = match Socket::connect(&url).await {
            Err(e) => e.to_string(),
            Ok(mut socket) => {
                let end = match login(&mut socket, &config, &executor).await {
                    Login::Refused(reason) => return Err(WorkerError::Refused(reason)),
                    Login::Failed(end) => end,
                    Login::Ok { relay, max_in_flight } => {
                        tracing::info!(worker = %config.key.address(), %relay, max_in_flight, "logged in");
                        events.emit(Event::Connected { worker: config.key.address(), relay, max_in_flight });
                        worker::serve(
                            &mut socket,
                            &executor,
                            &blobs,
                            &peers,
                            &mut outbox,
                            &events,
                            &mut control,
                            config.silence,
                        )
                        .await
                    }
                };
                socket.close().await;
                if matches!(end, SessionEnd::Paused) {
                    // Leaving at once hands this worker's leases to others; no backoff needed.
                    continue;
                }
                end.to_string()
            }
        };
        // A session that lasted a while was healthy: start backing off from the bottom again.
        if session.elapsed() > Duration::from_secs(10) {
            backoff = Backoff::new();
        }
        let retry_in = backoff.next();
        tracing::info!(%reason, ?retry_in, "disconnected from the relay");
        events.emit(Event::Disconnected { reason, retry_in });
        sleep(retry_in).await;
    }
}

async fn login<E: Execute>(socket: &mut Socket, config: &WorkerConfig, executor: &E) -> Login {
    let frame = match socket.recv().await {
        None => return Login::Failed(SessionEnd::Closed),
        Some(Err(e)) => return Login::Failed(SessionEnd::Net(e)),
        Some(Ok(bytes)) => ToWorker::decode(&bytes),
    };
    let (relay, nonce) = match frame {
        Ok(ToWorker::Challenge { protocol, relay, nonce }) if protocol == PROTOCOL_VERSION => (relay, nonce),
        Ok(ToWorker::Challenge { protocol, .. }) => {
            return Login::Refused(format!("relay speaks protocol {protocol}, this worker {PROTOCOL_VERSION}"));
        }
        Ok(other) => return Login::Failed(SessionEnd::Protocol(format!("expected a challenge, got {other:?}"))),
        Err(e) => return Login::Failed(SessionEnd::Protocol(e.to_string())),
    };
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        worker: config.key.address(),
        signature: config.key.sign_message(login_message(&relay, &nonce).as_bytes()),
        beneficiary: config.beneficiary,
        platform: config.platform,
        adapter: executor.adapter(),
        agent: config.agent.clone(),
        max_in_flight: config.max_in_flight,
        max_shards: config.max_shards,
    };
    if let Err(e) = socket.send(ToRelay::Hello(Box::new(hello)).encode()).await {
        return Login::Failed(SessionEnd::Net(e));
    }
    match socket.recv().await.map(|r| r.map(|bytes| ToWorker::decode(&bytes))) {
        None => Login::Failed(SessionEnd::Closed),
        Some(Err(e)) => Login::Failed(SessionEnd::Net(e)),
        Some(Ok(Ok(ToWorker::Welcome { max_in_flight, .. }))) => Login::Ok { relay, max_in_flight },
        Some(Ok(Ok(ToWorker::Refused { reason }))) => Login::Refused(reason),
        Some(Ok(Ok(other))) => Login::Failed(SessionEnd::Protocol(format!("expected welcome, got {other:?}"))),
        Some(Ok(Err(e))) => Login::Failed(SessionEnd::Protocol(e.to_string())),
    }
}

/// Exponential backoff from 250 ms to 30 s, with up to 50% random jitter so a relay restart is
/// not met by every worker in the same millisecond.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    fn next(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        base + base.mul_f64(rand::random::<f64>() * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut b = Backoff::new();
        let first = b.next();
        assert!(first >= Backoff::FIRST && first <= Backoff::FIRST.mul_f64(1.5));
        for _ in 0..20 {
            b.next();
        }
        let late = b.next();
        assert!(late >= Backoff::MAX && late <= Backoff::MAX.mul_f64(1.5));
    }
}
