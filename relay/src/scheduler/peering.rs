//! The relay's part in the data plane: it introduces workers (pairing, in `state`), carries their
//! WebRTC signals, relays peer frames when no direct connection comes up, counts what moved, and
//! itself fetches a kept output from a worker when replicas must be compared within tolerance.
//!
//! Peer frames travel on a worker's data channel (`Worker::peer_tx`), apart from tasks and
//! receipts: relaying a large transfer waits for the receiving socket instead of filling the
//! queue that leases go through (where a full queue means a stuck worker).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyphae_proto::frame::{PeerTraffic, ToWorker};
use hyphae_proto::peer::{Assembly, PeerFrame, Signal, TransferError};
use hyphae_proto::{Address, Sha256, TaskId};
use tokio::sync::mpsc;

use super::Scheduler;
use super::state::{Answer, Replica};

/// How long the relay waits for a worker's next chunk when it fetches a kept output.
const FETCH_IDLE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} is not connected")]
    Offline(Address),
    #[error("{0} sent nothing for {FETCH_IDLE:?}")]
    Silent(Address),
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

impl Scheduler {
    /// Carries a WebRTC signal to a worker `from` was introduced to.
    pub async fn on_signal(&self, from: Address, to: Address, signal: Signal) {
        let tx = self.transition(|state| {
            if !state.pairs.allowed(from, to, Instant::now()) {
                state.traffic.refused += 1;
                return None;
            }
            state.traffic.signals += 1;
            state.workers.get(&to).map(|w| w.peer_tx.clone())
        });
        match tx {
            Some(tx) => {
                let _ = tx.send(ToWorker::Signal { from, signal }).await;
            }
            None => tracing::debug!(%from, %to, "signal not carried: not paired or not connected"),
        }
    }

    /// Routes a peer frame: to the relay's own fetches, or on to the paired worker. A `Want`
    /// for a worker that is gone is answered `Missing` at once, so the asker moves on.
    pub async fn on_peer_frame(&self, from: Address, to: Address, frame: PeerFrame) {
        if to == self.relay_address() {
            self.deliver_fetched(from, frame);
            return;
        }
        let size = frame.payload_len();
        let route = self.transition(|state| {
            if !state.pairs.allowed(from, to, Instant::now()) {
                state.traffic.refused += 1;
                return Err(false);
            }
            match state.workers.get(&to) {
                Some(w) => {
                    state.traffic.relayed_bytes += size;
                    Ok(w.peer_tx.clone())
                }
                None => Err(true),
            }
        });
        match (route, &frame) {
            (Ok(tx), _) => {
                self.metrics.peer_relayed_bytes.inc_by(size);
                let _ = tx.send(ToWorker::Peer { from, frame }).await;
            }
            (Err(paired), PeerFrame::Want { request, .. }) => {
                let reply = ToWorker::Peer { from: to, frame: PeerFrame::Missing { request: *request } };
                let back = self.transition(|state| state.workers.get(&from).map(|w| w.peer_tx.clone()));
                if let Some(back) = back {
                    let _ = back.send(reply).await;
                }
                if !paired {
                    tracing::warn!(%from, %to, "peer frame between workers the relay did not pair; refused");
                }
            }
            (Err(_), _) => {}
        }
    }

    pub fn on_traffic(&self, traffic: PeerTraffic) {
        self.transition(|state| {
            let t = &mut state.traffic;
            t.direct_bytes += traffic.direct.bytes;
            t.connections_up += u64::from(traffic.connections_up);
            t.connections_failed += u64::from(traffic.connections_failed);
            t.direct_fetches.merge(&traffic.direct);
            t.relayed_fetches.merge(&traffic.relayed);
        });
        self.metrics.peer_direct_bytes.inc_by(traffic.direct.bytes);
        self.metrics.peer_connections_up.inc_by(u64::from(traffic.connections_up));
        self.metrics.peer_connections_failed.inc_by(u64::from(traffic.connections_failed));
    }

    /// Replaces each digest-only answer by the bytes behind it, fetched from its worker (see
    /// [`Self::fetch_outputs`]).
    pub(super) async fn fetch_digests(&self, task: TaskId, results: &mut Vec<Replica>, size: u64) {
        let outputs = self.fetch_outputs(task, results, size).await;
        for (replica, bytes) in results.iter_mut().zip(outputs) {
            if matches!(replica.answer, Answer::Digest(_)) {
                replica.answer = match bytes {
                    Some(bytes) => Answer::Outputs(vec![hyphae_proto::tensor::Bytes(bytes)]),
                    None => Answer::Malformed,
                };
            }
        }
    }

    /// The bytes of each single-output answer, fetched from its worker where it kept them and
    /// sent only the digest. A worker that cannot produce bytes matching its digest (or sent
    /// no single output) gave a malformed answer: `None`. One that left meanwhile is dropped
    /// from the round, as if its lease had expired, and the task asks for another replica.
    pub(super) async fn fetch_outputs(
        &self,
        task: TaskId,
        results: &mut Vec<Replica>,
        size: u64,
    ) -> Vec<Option<Vec<u8>>> {
        let before = results.len();
        let mut kept = Vec::with_capacity(before);
        let mut outputs = Vec::with_capacity(before);
        for replica in std::mem::take(results) {
            let bytes = match &replica.answer {
                Answer::Digest(sha256) => match self.fetch_from(replica.worker, *sha256, size).await {
                    Ok(bytes) => Some(bytes),
                    Err(FetchError::Offline(_)) => continue,
                    Err(e) => {
                        tracing::warn!(%task, worker = %replica.worker, error = %e, "a kept output could not be fetched");
                        None
                    }
                },
                Answer::Outputs(data) if data.len() == 1 => Some(data[0].0.clone()),
                Answer::Outputs(_) | Answer::Malformed => None,
            };
            kept.push(replica);
            outputs.push(bytes);
        }
        let lost = before - kept.len();
        *results = kept;
        if lost > 0 {
            self.transition(|state| state.lost_replicas(task, lost as u32));
        }
        outputs
    }

    /// Fetches `size` bytes hashing to `sha256` from `worker`, through its socket.
    pub async fn fetch_from(&self, worker: Address, sha256: Sha256, size: u64) -> Result<Vec<u8>, FetchError> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.fetches.lock().unwrap_or_else(|p| p.into_inner()).insert(request, (worker, tx));
        let result = async {
            let peer_tx = self
                .transition(|state| state.workers.get(&worker).map(|w| w.peer_tx.clone()))
                .ok_or(FetchError::Offline(worker))?;
            let want = ToWorker::Peer { from: self.relay_address(), frame: PeerFrame::Want { request, sha256 } };
            peer_tx.send(want).await.map_err(|_| FetchError::Offline(worker))?;
            let mut assembly = Assembly::new(sha256, size);
            loop {
                let frame = tokio::time::timeout(FETCH_IDLE, rx.recv())
                    .await
                    .map_err(|_| FetchError::Silent(worker))?
                    .ok_or(FetchError::Offline(worker))?;
                match frame {
                    PeerFrame::Chunk(chunk) => {
                        if let Some(bytes) = assembly.push(&chunk)? {
                            return Ok(bytes);
                        }
                    }
                    PeerFrame::Missing { .. } => return Err(TransferError::Missing(sha256).into()),
                    PeerFrame::Want { .. } => {}
                }
            }
        }
        .await;
        self.fetches.lock().unwrap_or_else(|p| p.into_inner()).remove(&request);
        if let Ok(bytes) = &result {
            let n = bytes.len() as u64;
            self.transition(|state| state.traffic.fetched_bytes += n);
            self.metrics.peer_relayed_bytes.inc_by(n);
        }
        result
    }

    fn deliver_fetched(&self, from: Address, frame: PeerFrame) {
        let request = match &frame {
            PeerFrame::Chunk(c) => c.request,
            PeerFrame::Missing { request } => *request,
            PeerFrame::Want { .. } => return,
        };
        let fetches = self.fetches.lock().unwrap_or_else(|p| p.into_inner());
        // Only the worker asked may answer a request.
        if let Some((worker, tx)) = fetches.get(&request)
            && *worker == from
        {
            let _ = tx.send(frame);
        }
    }
}
