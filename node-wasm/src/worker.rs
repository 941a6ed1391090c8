//! The task loop of one logged-in session: frames in, tasks through the executor one at a time,
//! results out. It knows no target: the socket, timers and GPU come from `net` and `executor`.

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use futures::{FutureExt, select};
use hyphae_proto::frame::{
    Access, FailureKind, Output, ShardWork, Source, TaskAssignment, TaskDigest, TaskFailure, TaskOutput, ToRelay,
    ToWorker, Work, outputs_sha256,
};
use hyphae_proto::tensor::Bytes;
use hyphae_proto::tensor::u32s;

use crate::blobs::BlobFetcher;
use crate::connection::{Event, Events};
use crate::control::Control;
use crate::executor::{Execute, KernelTask, PreparedBinding, PreparedTask, ShardTask, failure};
use crate::net::{NetError, Socket, Stopwatch, sleep};
use crate::peer::Peers;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error("the relay closed the connection")]
    Closed,
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("the relay was silent for {0:?}")]
    Silent(Duration),
    #[error("the relay sent an unexpected frame: {0}")]
    Protocol(String),
    #[error("paused by its owner")]
    Paused,
}

enum Step {
    Frame(Option<Result<Vec<u8>, NetError>>),
    /// A frame the data plane wants on the relay socket.
    Outgoing(ToRelay),
    Done(TaskAssignment, Stopwatch, Result<Vec<Vec<u8>>, TaskFailure>),
    Rested,
    Control,
    Silent,
}

/// Serves tasks until the connection ends or the owner pauses the worker. Between tasks the
/// worker rests as long as the throttle's duty cycle asks.
#[allow(clippy::too_many_arguments)]
pub async fn serve<E: Execute>(
    socket: &mut Socket,
    executor: &E,
    blobs: &BlobFetcher,
    peers: &Peers,
    outbox: &mut mpsc::Receiver<ToRelay>,
    events: &Events,
    control: &mut Control,
    silence: Duration,
) -> SessionEnd {
    let run = |task: TaskAssignment| {
        Box::pin(async move {
            let clock = Stopwatch::start();
            let result = match prepare(&task, blobs, peers, executor).await {
                Ok(prepared) => executor.execute(prepared).await,
                Err(failure) => Err(failure),
            };
            (task, clock, result)
        })
    };
    let driver = peers.drive(blobs).fuse();
    futures::pin_mut!(driver);
    let mut pending: VecDeque<TaskAssignment> = VecDeque::new();
    let mut current = None;
    // When the GPU may start its next task: (since, rest).
    let mut resting: Option<(Stopwatch, Duration)> = None;
    loop {
        if current.is_none()
            && resting.is_none()
            && let Some(task) = pending.pop_front()
        {
            events.emit(Event::TaskStarted { task: task.task, work: describe(&task.work) });
            current = Some(run(task));
        }
        let step = {
            let running = async {
                match current.as_mut() {
                    Some(f) => f.await,
                    None => futures::future::pending().await,
                }
            };
            let rest = async {
                match resting {
                    Some((since, rest)) => sleep(rest.saturating_sub(since.elapsed())).await,
                    None => futures::future::pending().await,
                }
            };
            select! {
                frame = socket.recv().fuse() => Step::Frame(frame),
                frame = outbox.next() => match frame {
                    Some(frame) => Step::Outgoing(frame),
                    None => Step::Silent,
                },
                () = driver => Step::Silent,
                (task, clock, result) = running.fuse() => Step::Done(task, clock, result),
                () = rest.fuse() => Step::Rested,
                () = control.changed().fuse() => Step::Control,
                () = sleep(silence).fuse() => Step::Silent,
            }
        };
        match step {
            Step::Silent => return SessionEnd::Silent(silence),
            Step::Rested => resting = None,
            Step::Control => {
                if control.current().paused {
                    return SessionEnd::Paused;
                }
            }
            Step::Outgoing(frame) => {
                if let Err(e) = socket.send(frame.encode()).await {
                    return SessionEnd::Net(e);
                }
            }
            Step::Frame(None) => return SessionEnd::Closed,
            Step::Frame(Some(Err(e))) => return SessionEnd::Net(e),
            Step::Frame(Some(Ok(bytes))) => match ToWorker::decode(&bytes) {
                Ok(ToWorker::Task(task)) => pending.push_back(*task),
                Ok(ToWorker::Cancel { lease }) => pending.retain(|t| t.lease != lease),
                Ok(ToWorker::Ping { nonce }) => {
                    if let Err(e) = socket.send(ToRelay::Pong { nonce }.encode()).await {
                        return SessionEnd::Net(e);
                    }
                }
                Ok(ToWorker::Receipt(receipt)) => events.emit(Event::Receipt(receipt)),
                Ok(ToWorker::Signal { from, signal }) => peers.on_signal(from, signal),
                Ok(ToWorker::Peer { from, frame }) => peers.on_relayed(from, frame),
                Ok(other) => return SessionEnd::Protocol(format!("{other:?}")),
                Err(e) => return SessionEnd::Protocol(e.to_string()),
            },
            Step::Done(task, clock, result) => {
                current = None;
                let busy = clock.elapsed();
                let rest = control.current().rest_after(busy);
                if !rest.is_zero() {
                    resting = Some((Stopwatch::start(), rest));
                }
                let elapsed_us = busy.as_micros() as u64;
                let ok = result.is_ok();
                let frame = match result {
                    Ok(mut outputs) if hands_off(&task.work) && outputs.len() == 1 => {
                        let output = outputs.pop().expect("one output");
                        let sha256 = outputs_sha256([output.as_slice()]);
                        let size = output.len() as u64;
                        peers.keep(sha256, output);
                        ToRelay::Digest(Box::new(TaskDigest { lease: task.lease, sha256, size, elapsed_us }))
                    }
                    Ok(outputs) => {
                        let outputs = output_bindings(&task.work)
                            .into_iter()
                            .zip(outputs)
                            .map(|(binding, data)| Output { binding, data: Bytes(data) })
                            .collect();
                        ToRelay::Result(Box::new(TaskOutput { lease: task.lease, outputs, elapsed_us }))
                    }
                    Err(failure) => {
                        tracing::warn!(task = %task.task, kind = ?failure.kind, message = %failure.message, "task failed");
                        ToRelay::Failed { lease: task.lease, failure }
                    }
                };
                if let Err(e) = socket.send(frame.encode()).await {
                    return SessionEnd::Net(e);
                }
                events.emit(Event::TaskFinished { task: task.task, ok, elapsed: busy, rest });
            }
        }
    }
}

/// The binding numbers of a task's outputs, in order.
fn output_bindings(work: &Work) -> Vec<u32> {
    match work {
        Work::Kernel(k) => k.bindings.iter().filter(|b| b.access == Access::ReadWrite).map(|b| b.binding).collect(),
        Work::Shard(_) => vec![0],
    }
}

/// Whether the task's output stays here for the next shard's workers.
fn hands_off(work: &Work) -> bool {
    matches!(work, Work::Shard(s) if s.hand_off)
}

/// What the task is, for whoever watches the worker.
fn describe(work: &Work) -> String {
    match work {
        Work::Kernel(_) => "kernel".into(),
        Work::Shard(s) => format!("{} shard {}/{}", s.model, s.shard.index + 1, s.shard.count),
    }
}

async fn bytes_of(source: &Source, size: u64, blobs: &BlobFetcher, peers: &Peers) -> Result<Vec<u8>, TaskFailure> {
    match source {
        Source::Inline(bytes) => Ok(bytes.0.clone()),
        Source::Blob(id) => blobs.get(id, size).await,
        Source::Peer(source) => {
            tracing::info!(input = %source.sha256, size, holders = ?source.holders, "fetching a task's input from the workers holding it");
            peers
                .fetch(source.sha256, size, &source.holders)
                .await
                .map_err(|e| failure(FailureKind::MissingBlob, format!("input {}: {e}", source.sha256)))
        }
    }
}

/// Shard weights: from this worker's cache, else from a peer that holds them, else from the
/// relay. Whatever the source, they hash to the blob id.
async fn weights(shard: &ShardWork, blobs: &BlobFetcher, peers: &Peers) -> Result<Vec<u8>, TaskFailure> {
    if blobs.cached(&shard.weights).await.is_none()
        && let Some(bytes) = peers.fetch_blob(&shard.weights, shard.weights_size, &shard.weight_peers).await
    {
        blobs.store(&shard.weights, &bytes).await;
        return Ok(bytes);
    }
    blobs.get(&shard.weights, shard.weights_size).await
}

/// Resolves the task's blobs into bytes (shard weights only if the GPU does not hold them yet).
async fn prepare<E: Execute>(
    task: &TaskAssignment,
    blobs: &BlobFetcher,
    peers: &Peers,
    executor: &E,
) -> Result<PreparedTask, TaskFailure> {
    match &task.work {
        Work::Kernel(kernel) => {
            let mut bindings = Vec::with_capacity(kernel.bindings.len());
            for b in &kernel.bindings {
                let bytes = match &b.source {
                    Some(source) => Some(bytes_of(source, b.size, blobs, peers).await?),
                    None => None,
                };
                bindings.push(PreparedBinding { binding: b.binding, access: b.access, bytes, size: b.size });
            }
            Ok(PreparedTask::Kernel(KernelTask {
                shader: kernel.shader.clone(),
                entry_point: kernel.entry_point.clone(),
                workgroups: kernel.workgroups,
                bindings,
            }))
        }
        Work::Shard(shard) => {
            let weights_bytes =
                if executor.holds(&shard.weights) { None } else { Some(weights(shard, blobs, peers).await?) };
            let mask: Vec<u32> = u32s(&shard.mask.0).collect();
            if mask.len() as u64 != u64::from(shard.batch) * u64::from(shard.seq) {
                return Err(failure(FailureKind::InvalidShader, "the mask does not cover batch × seq"));
            }
            Ok(PreparedTask::Shard(ShardTask {
                config: shard.config.clone(),
                spec: shard.shard,
                weights: shard.weights,
                weights_bytes,
                batch: shard.batch,
                seq: shard.seq,
                mask,
                input: bytes_of(&shard.input, shard.input_size, blobs, peers).await?,
                output_size: shard.output_size,
            }))
        }
    }
}
