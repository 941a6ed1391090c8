//! Shared by the end-to-end tests and the benchmarks: the harness that starts real relays and
//! workers (processes built from this workspace, or in-process where a test must control a worker,
//! such as a liar) and a typed client of the relay's API.

pub mod harness;
