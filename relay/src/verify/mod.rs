//! Deciding which result of a task to believe (DESIGN.md §4): replicas from distinct workers are
//! compared — integers exactly, floats within the job's tolerance — and a result is accepted only
//! when enough independent workers agree and they outnumber everyone else.
//!
//! **Architecture invariant:** the verifier is pure. It never sees a socket, the store or a
//! clock; the scheduler hands it results and acts on its [`quorum::Decision`].

pub mod freivalds;
pub mod quorum;
pub mod spot;
pub mod tolerance;
