//! End-to-end tests: the real relay binary, real native workers on lavapipe, real sockets and a
//! real sled store, driven through the public API as a user would. One test binary for all of
//! them (one link step).

mod api;
mod browser;
mod byzantine;
mod churn;
mod cli;
mod durability;
mod models;
mod native;
mod p2p;
mod support;
