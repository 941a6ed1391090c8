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

/// How often a side that has not been greeted back says hello again.
pub const HELLO_RESEND: Duration = Duration::from_millis(100);

/// The greeting on a new data channel, in text messages (peer frames are binary).
///
/// Both ends of a negotiated channel see it open at their own moment, and a message that reaches
/// a side before its stack has set up its end is dropped, reliable channel or not: webrtc-rs
/// (0.21) drops data that arrives between its SCTP association coming up and its channels being
/// dialled, and a first request lost that way left a fetch waiting for its idle timeout. So no
/// side reports a link up before it knows the other hears it: each says [`Greeting::HELLO`] until
/// it hears the peer, then [`Greeting::HEARD`], and a side is up once the peer says it heard it.
#[derive(Debug, Default)]
pub struct Greeting {
    heard: bool,
    up: bool,
}

/// What to do with a text message during (or after) the greeting.
#[derive(Debug, PartialEq, Eq)]
pub enum Greeted {
    /// Nothing (a late or unknown message).
    Ignore,
    /// Send this back.
    Reply(&'static str),
    /// The link is up now; send this back so the peer knows too.
    Up(&'static str),
}

impl Greeting {
    pub const HELLO: &'static str = "hyphae/hello";
    pub const HEARD: &'static str = "hyphae/heard";

    /// What to say (again) while the peer has not greeted back.
    pub fn hello(&self) -> &'static str {
        if self.heard { Self::HEARD } else { Self::HELLO }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    pub fn on_text(&mut self, text: &str) -> Greeted {
        match text {
            Self::HELLO => {
                self.heard = true;
                Greeted::Reply(Self::HEARD)
            }
            Self::HEARD if !self.up => {
                self.heard = true;
                self.up = true;
                Greeted::Up(Self::HEARD)
            }
            _ => Greeted::Ignore,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers `message` to `to` and returns what it sends back, if anything.
    fn deliver(to: &mut Greeting, message: &str) -> Option<&'static str> {
        match to.on_text(message) {
            Greeted::Ignore => None,
            Greeted::Reply(reply) | Greeted::Up(reply) => Some(reply),
        }
    }

    #[test]
    fn both_sides_come_up_when_every_first_hello_is_lost() {
        let (mut a, mut b) = (Greeting::default(), Greeting::default());
        // Both first hellos are dropped; `a`'s resend is the first message to arrive.
        let reply = deliver(&mut b, a.hello()).unwrap();
        assert!(!b.is_up(), "b does not know yet that a hears it");
        // b's reply is dropped too (a's end is not ready yet); b resends.
        assert_eq!(b.hello(), Greeting::HEARD);
        let _lost = reply;
        let back = deliver(&mut a, b.hello()).unwrap();
        assert!(a.is_up());
        assert_eq!(deliver(&mut b, back), Some(Greeting::HEARD));
        assert!(b.is_up());
        // The last word changes nothing and asks for no reply.
        assert_eq!(deliver(&mut a, Greeting::HEARD), None);
        assert!(a.is_up() && b.is_up());
    }

    #[test]
    fn a_side_is_not_up_before_the_peer_says_it_heard() {
        let mut a = Greeting::default();
        assert_eq!(a.on_text(Greeting::HELLO), Greeted::Reply(Greeting::HEARD));
        assert!(!a.is_up());
        assert_eq!(a.on_text("something else"), Greeted::Ignore);
        assert_eq!(a.on_text(Greeting::HEARD), Greeted::Up(Greeting::HEARD));
        // A hello still in flight from before gets an answer, and nothing changes.
        assert_eq!(a.on_text(Greeting::HELLO), Greeted::Reply(Greeting::HEARD));
        assert!(a.is_up());
    }
}
