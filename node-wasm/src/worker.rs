//! The task loop of one logged-in session: frames in, tasks through the executor one at a time,
//! results out. It knows no target: the socket, timers and GPU come from `net` and `executor`.

use std::collections::VecDeque;
use std::time::Duration;

use futures::{FutureExt, select};
use hyphae_proto::frame::{Access, Output, Source, TaskAssignment, TaskFailure, TaskOutput, ToRelay, ToWorker};
use hyphae_proto::tensor::Bytes;

use crate::blobs::BlobFetcher;
use crate::connection::{Event, Events};
use crate::control::Control;
use crate::executor::{Execute, PreparedBinding, PreparedTask};
use crate::net::{NetError, Socket, Stopwatch, sleep};

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
    Done(TaskAssignment, Stopwatch, Result<Vec<Vec<u8>>, TaskFailure>),
    Rested,
    Control,
    Silent,
}

/// Serves tasks until the connection ends or the owner pauses the worker. Between tasks the
/// worker rests as long as the throttle's duty cycle asks.
pub async fn serve<E: Execute>(
    socket: &mut Socket,
    executor: &E,
    blobs: &BlobFetcher,
    events: &Events,
    control: &mut Control,
    silence: Duration,
) -> SessionEnd {
    let run = |task: TaskAssignment| {
        Box::pin(async move {
            let clock = Stopwatch::start();
            let result = match prepare(&task, blobs).await {
                Ok(prepared) => executor.execute(prepared).await,
                Err(failure) => Err(failure),
            };
            (task, clock, result)
        })
    };
    let mut pending: VecDeque<TaskAssignment> = VecDeque::new();
    let mut current = None;
    // When the GPU may start its next task: (since, rest).
    let mut resting: Option<(Stopwatch, Duration)> = None;
    loop {
        if current.is_none()
            && resting.is_none()
            && let Some(task) = pending.pop_front()
        {
            events.emit(Event::TaskStarted { task: task.task });
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
                    Ok(outputs) => {
                        let bindings = task.bindings.iter().filter(|b| b.access == Access::ReadWrite);
                        let outputs = bindings
                            .zip(outputs)
                            .map(|(b, data)| Output { binding: b.binding, data: Bytes(data) })
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

/// Resolves the task's blobs into bytes.
async fn prepare(task: &TaskAssignment, blobs: &BlobFetcher) -> Result<PreparedTask, TaskFailure> {
    let mut bindings = Vec::with_capacity(task.bindings.len());
    for b in &task.bindings {
        let bytes = match &b.source {
            Some(Source::Inline(bytes)) => Some(bytes.0.clone()),
            Some(Source::Blob(id)) => Some(blobs.get(id, b.size).await?),
            None => None,
        };
        bindings.push(PreparedBinding { binding: b.binding, access: b.access, bytes, size: b.size });
    }
    Ok(PreparedTask {
        shader: task.shader.clone(),
        entry_point: task.entry_point.clone(),
        workgroups: task.workgroups,
        bindings,
    })
}
