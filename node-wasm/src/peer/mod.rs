//! The worker's data plane: activations and weights moving between workers.
//!
//! A shard task marked `hand_off` leaves its output here ([`Peers::keep`]) and only its digest
//! goes to the relay. The next shard's workers [`Peers::fetch`] it from the holders the relay
//! names: over a direct WebRTC data channel ([`rtc`]) when one comes up in time, otherwise over
//! the relay, which forwards the very same [`PeerFrame`]s between the two workers' sockets. The
//! pipeline above never learns which path it got; the bytes are checked against the digest
//! either way (and each chunk against its CRC), so a holder can waste time but never change an
//! input. The relay itself asks for kept outputs the same way when replicas differ and must be
//! compared within tolerance.
//!
//! Everything runs on the worker's one task loop ([`Peers::drive`] is polled beside it), so the
//! code is the same for the browser (no threads, futures not `Send`) and natively.

mod kept;
pub mod rtc;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::channel::mpsc;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt, select};
use hyphae_proto::frame::{PeerTraffic, ToRelay};
use hyphae_proto::peer::{Assembly, PeerFrame, Signal, TransferError, chunks};
use hyphae_proto::{Address, BlobId, Sha256};

use crate::blobs::BlobFetcher;
use crate::net::{Stopwatch, sleep};
pub use kept::Kept;
use rtc::{Link, Rtc, RtcConfig, RtcError, RtcEvent};

/// How long a fetch waits for the holder's next chunk before trying elsewhere.
const IDLE: Duration = Duration::from_secs(15);
/// After a direct connection to a peer failed, go through the relay for this long before
/// trying again (each attempt costs a connect timeout).
const UNREACHABLE_FOR: Duration = Duration::from_secs(60);

/// Why no holder could provide some bytes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("no holder was named")]
    NoHolders,
    #[error("{peer} sent nothing for {IDLE:?}")]
    Silent { peer: Address },
    #[error("{peer}: {error}")]
    Transfer { peer: Address, error: TransferError },
    #[error("the relay connection is gone")]
    Offline,
    #[error("{0}")]
    Rtc(#[from] RtcError),
}

/// The queues [`Peers::drive`] consumes, given back when a session's driver is dropped so the
/// next session's can take them.
struct Taken<'a> {
    peers: &'a Peers,
    events: Option<mpsc::UnboundedReceiver<RtcEvent>>,
    jobs: Option<mpsc::UnboundedReceiver<Job>>,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(events) = self.events.take() {
            *self.peers.rtc_events.lock().unwrap_or_else(|p| p.into_inner()) = Some(events);
        }
        if let Some(jobs) = self.jobs.take() {
            *self.peers.job_queue.lock().unwrap_or_else(|p| p.into_inner()) = Some(jobs);
        }
    }
}

/// Which way a frame goes to a peer.
#[derive(Clone)]
enum Route {
    Direct(Link),
    Relay,
}

enum Job {
    Serve { to: Address, route: Route, request: u64, sha256: Sha256 },
    Signal { from: Address, signal: Signal },
}

pub struct Peers {
    me: Address,
    kept: Kept,
    rtc: Option<Rtc>,
    /// Frames for the relay's socket (signals, relayed peer frames, traffic reports); the task
    /// loop drains it. Bounded: a relayed transfer waits for the socket.
    outbox: mpsc::Sender<ToRelay>,
    rtc_events: Mutex<Option<mpsc::UnboundedReceiver<RtcEvent>>>,
    jobs: mpsc::UnboundedSender<Job>,
    job_queue: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    pending: Mutex<HashMap<u64, (Address, mpsc::UnboundedSender<PeerFrame>)>>,
    next_request: AtomicU64,
    unreachable: Mutex<HashMap<Address, Stopwatch>>,
    traffic: Mutex<PeerTraffic>,
}

impl Peers {
    /// A data plane for worker `me`; direct connections only if `rtc` is given. Returns the
    /// receiving end of the outbox, for the task loop to send on the relay socket.
    pub fn new(me: Address, rtc: Option<RtcConfig>, kept: Kept) -> (Peers, mpsc::Receiver<ToRelay>) {
        let (outbox, outbox_rx) = mpsc::channel(16);
        let (events_tx, events_rx) = mpsc::unbounded();
        let (jobs, job_queue) = mpsc::unbounded();
        let peers = Peers {
            me,
            kept,
            rtc: rtc.map(|config| Rtc::new(me, config, events_tx)),
            outbox,
            rtc_events: Mutex::new(Some(events_rx)),
            jobs,
            job_queue: Mutex::new(Some(job_queue)),
            pending: Mutex::default(),
            next_request: AtomicU64::new(1),
            unreachable: Mutex::default(),
            traffic: Mutex::default(),
        };
        (peers, outbox_rx)
    }

    /// Keeps a handed-off output for whoever asks for it by digest.
    pub fn keep(&self, sha256: Sha256, bytes: Vec<u8>) {
        self.kept.insert(sha256, bytes);
    }

    /// A frame the relay forwarded from `from` (another worker, or the relay itself).
    pub fn on_relayed(&self, from: Address, frame: PeerFrame) {
        self.on_frame(from, frame, Route::Relay);
    }

    /// A signal from a worker the relay paired us with.
    pub fn on_signal(&self, from: Address, signal: Signal) {
        let _ = self.jobs.unbounded_send(Job::Signal { from, signal });
    }

    fn on_frame(&self, from: Address, frame: PeerFrame, route: Route) {
        match frame {
            PeerFrame::Want { request, sha256 } => {
                let _ = self.jobs.unbounded_send(Job::Serve { to: from, route, request, sha256 });
            }
            PeerFrame::Chunk(ref chunk) => self.deliver(from, chunk.request, frame),
            PeerFrame::Missing { request } => self.deliver(from, request, frame),
        }
    }

    fn deliver(&self, from: Address, request: u64, frame: PeerFrame) {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        // Only the peer asked may answer.
        if let Some((peer, tx)) = pending.get(&request)
            && *peer == from
        {
            let _ = tx.unbounded_send(frame);
        }
    }

    /// Fetches `size` bytes hashing to `sha256` from the first of `holders` that provides them:
    /// directly when a connection comes up, else through the relay. Bytes this worker kept
    /// itself (it ran the previous shard too) need no transfer at all.
    pub async fn fetch(&self, sha256: Sha256, size: u64, holders: &[Address]) -> Result<Vec<u8>, FetchError> {
        if let Some(bytes) = self.kept.get(&sha256) {
            return Ok(bytes.to_vec());
        }
        let mut last = FetchError::NoHolders;
        for &holder in holders.iter().filter(|h| **h != self.me) {
            if let Some(link) = self.direct(holder).await {
                let asked = Stopwatch::start();
                match self.request(holder, Route::Direct(link), sha256, size).await {
                    Ok(bytes) => {
                        self.count(|t| t.direct.add(bytes.len() as u64, asked.elapsed()));
                        return Ok(bytes);
                    }
                    Err(e) => {
                        tracing::warn!(peer = %holder, error = %e, "direct transfer failed; asking through the relay");
                        self.mark_unreachable(holder);
                    }
                }
            }
            let asked = Stopwatch::start();
            match self.request(holder, Route::Relay, sha256, size).await {
                Ok(bytes) => {
                    self.count(|t| t.relayed.add(bytes.len() as u64, asked.elapsed()));
                    return Ok(bytes);
                }
                Err(e) => {
                    tracing::info!(peer = %holder, error = %e, "holder could not provide {sha256}");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// A weights blob from peers that hold it, if any does; checked against its id.
    pub async fn fetch_blob(&self, id: &BlobId, size: u64, holders: &[Address]) -> Option<Vec<u8>> {
        if holders.is_empty() {
            return None;
        }
        match self.fetch(id.0, size, holders).await {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::info!(blob = %id, error = %e, "no peer provided the weights; fetching them from the relay");
                None
            }
        }
    }

    /// An open direct link to `peer`, connecting if needed; `None` when direct connections are
    /// off or this one did not come up recently.
    async fn direct(&self, peer: Address) -> Option<Link> {
        let rtc = self.rtc.as_ref()?;
        if let Some(link) = rtc.link(&peer) {
            return Some(link);
        }
        {
            let mut unreachable = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
            match unreachable.get(&peer) {
                Some(since) if since.elapsed() < UNREACHABLE_FOR => return None,
                Some(_) => {
                    unreachable.remove(&peer);
                }
                None => {}
            }
        }
        match rtc.connect(peer).await {
            Ok(link) => Some(link),
            Err(e) => {
                tracing::info!(%peer, error = %e, "no direct connection; going through the relay");
                self.count(|t| t.connections_failed += 1);
                self.mark_unreachable(peer);
                None
            }
        }
    }

    fn mark_unreachable(&self, peer: Address) {
        self.unreachable.lock().unwrap_or_else(|p| p.into_inner()).insert(peer, Stopwatch::start());
    }

    async fn request(&self, peer: Address, route: Route, sha256: Sha256, size: u64) -> Result<Vec<u8>, FetchError> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(request, (peer, tx));
        let result = async {
            self.send(peer, &route, PeerFrame::Want { request, sha256 }).await?;
            let mut assembly = Assembly::new(sha256, size);
            loop {
                let frame = select! {
                    frame = rx.next() => frame.ok_or(FetchError::Offline)?,
                    () = sleep(IDLE).fuse() => return Err(FetchError::Silent { peer }),
                };
                let transfer = |error| FetchError::Transfer { peer, error };
                match frame {
                    PeerFrame::Chunk(chunk) => {
                        if let Some(bytes) = assembly.push(&chunk).map_err(transfer)? {
                            return Ok(bytes);
                        }
                    }
                    PeerFrame::Missing { .. } => return Err(transfer(TransferError::Missing(sha256))),
                    PeerFrame::Want { .. } => {}
                }
            }
        }
        .await;
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&request);
        result
    }

    async fn send(&self, peer: Address, route: &Route, frame: PeerFrame) -> Result<(), FetchError> {
        match route {
            Route::Direct(link) => {
                let n = frame.payload_len();
                link.send(frame.encode()).await?;
                if n > 0 {
                    self.count(|t| t.sent += n);
                }
                Ok(())
            }
            Route::Relay => {
                self.outbox.clone().send(ToRelay::Peer { to: peer, frame }).await.map_err(|_| FetchError::Offline)
            }
        }
    }

    fn count(&self, f: impl FnOnce(&mut PeerTraffic)) {
        f(&mut self.traffic.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Serves wants, answers signals and carries direct messages, for as long as the worker
    /// runs. Poll it beside the task loop; it never finishes.
    pub async fn drive(&self, blobs: &BlobFetcher) {
        let mut taken = Taken {
            peers: self,
            events: self.rtc_events.lock().unwrap_or_else(|p| p.into_inner()).take(),
            jobs: self.job_queue.lock().unwrap_or_else(|p| p.into_inner()).take(),
        };
        let (Some(events), Some(jobs)) = (taken.events.as_mut(), taken.jobs.as_mut()) else {
            tracing::error!("the data plane is already being driven");
            return futures::future::pending().await;
        };
        let mut running = FuturesUnordered::new();
        loop {
            select! {
                event = events.next() => match event {
                    Some(RtcEvent::Signal { to, signal }) => {
                        let _ = self.outbox.clone().send(ToRelay::Signal { to, signal }).await;
                    }
                    Some(RtcEvent::Message { from, bytes }) => match PeerFrame::decode(&bytes) {
                        Ok(frame) => {
                            let route = self.rtc.as_ref().and_then(|r| r.link(&from)).map_or(Route::Relay, Route::Direct);
                            self.on_frame(from, frame, route);
                        }
                        Err(e) => tracing::warn!(peer = %from, error = %e, "undecodable peer message"),
                    },
                    Some(RtcEvent::Up { peer }) => {
                        tracing::info!(%peer, "direct connection up");
                        self.count(|t| t.connections_up += 1);
                    }
                    Some(RtcEvent::Down { peer }) => tracing::info!(%peer, "direct connection down"),
                    None => {}
                },
                job = jobs.next() => if let Some(job) = job {
                    running.push(self.run_job(job, blobs));
                },
                () = running.select_next_some() => {}
                () = sleep(Duration::from_secs(1)).fuse() => {}
            }
            self.report().await;
        }
    }

    async fn run_job(&self, job: Job, blobs: &BlobFetcher) {
        match job {
            Job::Signal { from, signal } => {
                if let Some(rtc) = &self.rtc {
                    rtc.on_signal(from, signal).await;
                }
            }
            Job::Serve { to, route, request, sha256 } => {
                let bytes: Option<std::sync::Arc<[u8]>> = match self.kept.get(&sha256) {
                    Some(bytes) => Some(bytes),
                    None => blobs.cached(&BlobId(sha256)).await.map(Into::into),
                };
                let Some(bytes) = bytes else {
                    let _ = self.send(to, &route, PeerFrame::Missing { request }).await;
                    return;
                };
                for frame in chunks(request, &bytes) {
                    if let Err(e) = self.send(to, &route, frame).await {
                        tracing::info!(peer = %to, error = %e, "transfer abandoned");
                        return;
                    }
                }
            }
        }
    }

    /// Tells the relay what moved directly since the last report.
    async fn report(&self) {
        let traffic = std::mem::take(&mut *self.traffic.lock().unwrap_or_else(|p| p.into_inner()));
        if traffic != PeerTraffic::default() {
            let _ = self.outbox.clone().send(ToRelay::Traffic(traffic)).await;
        }
    }
}
