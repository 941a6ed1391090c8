//! Direct worker ⇄ worker connections: one WebRTC data channel per peer, set up with
//! [`Signal`]s the relay carries. Natively through the `webrtc` crate, in browsers through
//! `RTCPeerConnection`; both expose the same [`Rtc`] and [`Link`], so the peer hub above never
//! knows which it has.
//!
//! Connections are kept and reused: opening one costs an ICE and DTLS handshake (about half a
//! second on loopback), a transfer only its bytes. Only host candidates are gathered (no STUN or
//! TURN servers are configured): peers that cannot reach each other directly fall back to the
//! relay, above this module.

#[cfg_attr(not(target_arch = "wasm32"), path = "native.rs")]
#[cfg_attr(target_arch = "wasm32", path = "browser.rs")]
mod imp;
#[cfg(target_arch = "wasm32")]
pub mod page_host;

use std::time::Duration;

use hyphae_proto::Address;
use hyphae_proto::peer::Signal;

pub use imp::{Link, Rtc};

/// Every connection carries one data channel, ordered and reliable, negotiated out of band with
/// this label and stream id: both sides create it themselves, so nobody waits for an announcement,
/// and a browser page can hand its end to the worker before it opens (see `page_host`).
pub const CHANNEL_LABEL: &str = "hyphae";
pub const CHANNEL_ID: u16 = 0;

/// How many bytes may wait in a data channel's send buffer before `Link::send` waits for it to
/// drain (backpressure), and the level it must drain to.
pub const HIGH_WATER: usize = 1024 * 1024;
pub const LOW_WATER: usize = 256 * 1024;

#[derive(Clone, Debug)]
pub struct RtcConfig {
    /// Local UDP addresses to gather host candidates on (native only; a browser picks its own).
    /// `0.0.0.0:0` means every non-loopback interface; `127.0.0.1:0` loopback only (tests).
    pub bind: Vec<String>,
    /// A connection whose data channel is not open after this long is given up.
    pub connect_timeout: Duration,
}

impl Default for RtcConfig {
    fn default() -> Self {
        RtcConfig { bind: vec!["0.0.0.0:0".into()], connect_timeout: Duration::from_secs(5) }
    }
}

/// What the WebRTC side tells the hub.
#[derive(Debug)]
pub enum RtcEvent {
    /// Send `signal` to `to` through the relay.
    Signal { to: Address, signal: Signal },
    /// One message from `from`'s data channel.
    Message { from: Address, bytes: Vec<u8> },
    /// The data channel to `peer` is open (either side may have offered).
    Up { peer: Address },
    /// The connection to `peer` failed to come up or closed; its link is gone.
    Down { peer: Address },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RtcError {
    #[error("no direct connection to {peer} within {timeout:?}")]
    Timeout { peer: Address, timeout: Duration },
    #[error("the connection to {peer} closed")]
    Closed { peer: Address },
    #[error("WebRTC: {0}")]
    Rtc(String),
}
