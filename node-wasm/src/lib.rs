//! The hyphae worker: one program for browsers and native GPU nodes. It logs in to a relay with
//! its key, takes tasks, runs them through the shared wgpu executor of `hyphae-shaders`, and
//! sends results back; the relay verifies them and pays the beneficiary with signed receipts.
//!
//! Map: `worker` (the task loop; knows no target), `connection` (login, heartbeat, reconnect),
//! `control` (pause and duty cycle),
//! `executor` (the GPU behind the `Execute` trait), `blobs` (fetching and caching content-addressed
//! inputs), `net/` and `keystore/` (what differs per target, chosen by module, not by `cfg` in
//! the logic).

pub mod blobs;
pub mod connection;
pub mod control;
pub mod executor;
pub mod keystore;
pub mod net;
pub mod peer;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
pub mod worker;

pub use connection::{Event, WorkerConfig, run};
pub use control::{Control, ControlHandle, Throttle, control};
pub use executor::Execute;
