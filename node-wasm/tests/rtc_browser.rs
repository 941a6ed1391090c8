//! `peer::rtc` in a real browser: two [`Rtc`]s in one headless Chromium page, each one's
//! signals handed straight to the other's `on_signal` (standing in for the relay), connecting
//! over real ICE, DTLS and SCTP on this machine's interfaces. `cargo xtask test` runs it
//! (`xtask/src/browser_tests.rs` sets up the runner and Chromium's flags).
//!
//! In the page, not a dedicated worker as the shader suite: Chromium exposes no
//! `RTCPeerConnection` to workers. Natively this file compiles to nothing.

#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{StreamExt, future};
use hyphae_node::peer::rtc::{Link, Rtc, RtcConfig, RtcError, RtcEvent};
use hyphae_proto::Address;
use hyphae_proto::peer::Signal;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const A: Address = Address([0x0a; 20]);
const B: Address = Address([0x0b; 20]);
/// Above `HIGH_WATER`, so senders meet backpressure.
const TRANSFER: usize = 2 * 1024 * 1024;
/// About a `PeerFrame::Chunk` with its framing.
const MESSAGE: usize = 32 * 1024 + 16;

thread_local! {
    /// Whether an offer or answer carried no candidate: then no connection can come up, and
    /// the failure is the machine's, not the code's.
    static CANDIDATELESS: Cell<bool> = const { Cell::new(false) };
}

/// The link `connect` returned, or a panic that says why it is missing.
fn expect_link(result: Result<Link, RtcError>, what: &str) -> Link {
    match result {
        Ok(link) => link,
        Err(error) if CANDIDATELESS.get() => panic!(
            "{what}: {error}; an SDP carried no ICE candidate: Chromium gathers host candidates only on \
             the interface of the default route (never on loopback), and this machine has none"
        ),
        Err(error) => panic!("{what}: {error}"),
    }
}

fn config(timeout: Duration) -> RtcConfig {
    RtcConfig { connect_timeout: timeout, ..RtcConfig::default() }
}

/// One `Rtc` and what it reported, less its signals (which go to the other side).
struct Node {
    rtc: Rtc,
    inbox: mpsc::UnboundedReceiver<RtcEvent>,
}

impl Node {
    /// The next event, failing the test if none comes within 10 s.
    async fn event(&mut self) -> RtcEvent {
        let timeout = gloo_timers::future::sleep(Duration::from_secs(10));
        match future::select(self.inbox.next(), timeout).await {
            future::Either::Left((Some(event), _)) => event,
            future::Either::Left((None, _)) => panic!("the event stream ended"),
            future::Either::Right(_) => panic!("no event within 10 s"),
        }
    }

    async fn up(&mut self, peer: Address) {
        match self.event().await {
            RtcEvent::Up { peer: up } if up == peer => {}
            other => panic!("expected Up from {peer}, got {other:?}"),
        }
    }

    async fn receive(&mut self, from: Address, len: usize) -> Vec<u8> {
        let mut received = Vec::with_capacity(len);
        while received.len() < len {
            match self.event().await {
                RtcEvent::Message { from: sender, bytes } if sender == from => received.extend_from_slice(&bytes),
                other => panic!("expected a message from {from}, got {other:?}"),
            }
        }
        received
    }
}

/// Two nodes whose signals reach each other in order, as through the relay.
fn pair(a_config: RtcConfig, b_config: RtcConfig) -> (Node, Node) {
    let (a_events, a_raw) = mpsc::unbounded();
    let (b_events, b_raw) = mpsc::unbounded();
    let a = Rtc::new(A, a_config, a_events);
    let b = Rtc::new(B, b_config, b_events);
    let a_inbox = relay(A, a_raw, Some(b.clone()));
    let b_inbox = relay(B, b_raw, Some(a.clone()));
    (Node { rtc: a, inbox: a_inbox }, Node { rtc: b, inbox: b_inbox })
}

/// Hands `from`'s signals to `to` (or drops them: a silent peer) and passes the rest on.
fn relay(
    from: Address,
    mut raw: mpsc::UnboundedReceiver<RtcEvent>,
    to: Option<Rtc>,
) -> mpsc::UnboundedReceiver<RtcEvent> {
    let (tx, inbox) = mpsc::unbounded();
    wasm_bindgen_futures::spawn_local(async move {
        while let Some(event) = raw.next().await {
            match event {
                RtcEvent::Signal { signal, .. } => {
                    if let Signal::Offer { sdp } | Signal::Answer { sdp } = &signal
                        && !sdp.contains("a=candidate:")
                    {
                        CANDIDATELESS.set(true);
                    }
                    if let Some(to) = &to {
                        to.on_signal(from, signal).await;
                    }
                }
                other => {
                    let _ = tx.unbounded_send(other);
                }
            }
        }
    });
    inbox
}

/// Deterministic bytes that differ per stream and per position (xorshift), so that a
/// reordered, lost or duplicated message cannot compare equal.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn send_all(link: &Link, data: &[u8]) {
    for message in data.chunks(MESSAGE) {
        if let Err(error) = link.send(message.to_vec()).await {
            panic!("sending to {}: {error}", link.peer());
        }
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

#[wasm_bindgen_test]
async fn two_mib_each_way_arrive_intact_and_in_order() {
    let (mut a, mut b) = pair(config(Duration::from_secs(10)), config(Duration::from_secs(10)));

    let opening = now_ms();
    let a_link = expect_link(a.rtc.connect(B).await, "connecting A to B");
    let open_ms = now_ms() - opening;
    assert_eq!(a_link.peer(), B);
    a.up(B).await;
    b.up(A).await;
    let Some(b_link) = b.rtc.link(&A) else { panic!("B has no link to A after Up") };
    assert_eq!(b_link.peer(), A);
    // A second connect reuses the connection.
    assert_eq!(expect_link(a.rtc.connect(B).await, "reconnecting A to B").peer(), B);

    let to_b = pattern(1, TRANSFER);
    let to_a = pattern(2, TRANSFER);
    let moving = now_ms();
    let (_, _, at_b, at_a) = futures::join!(
        send_all(&a_link, &to_b),
        send_all(&b_link, &to_a),
        b.receive(A, TRANSFER),
        a.receive(B, TRANSFER)
    );
    let moved_ms = now_ms() - moving;
    assert!(at_b == to_b, "B received {} bytes, not A's 2 MiB in order", at_b.len());
    assert!(at_a == to_a, "A received {} bytes, not B's 2 MiB in order", at_a.len());
    console_log!(
        "RTC: opened in {open_ms:.0} ms; 2 MiB each way at once in {moved_ms:.0} ms ({:.1} MiB/s each way)",
        2.0 / (moved_ms / 1000.0)
    );

    // Closing one side takes the link down on the other.
    a.rtc.close().await;
    match b.event().await {
        RtcEvent::Down { peer } => assert_eq!(peer, A),
        other => panic!("expected Down from A, got {other:?}"),
    }
    assert!(b.rtc.link(&A).is_none());
    assert!(matches!(b_link.send(vec![1]).await, Err(RtcError::Closed { .. })));
    b.rtc.close().await;
}

#[wasm_bindgen_test]
async fn simultaneous_connects_yield_one_working_connection() {
    let (mut a, mut b) = pair(config(Duration::from_secs(10)), config(Duration::from_secs(10)));

    let (a_link, b_link) = futures::join!(a.rtc.connect(B), b.rtc.connect(A));
    let a_link = expect_link(a_link, "A connecting in glare");
    let b_link = expect_link(b_link, "B connecting in glare");
    a.up(B).await;
    b.up(A).await;

    let (sent_a, sent_b) = futures::join!(a_link.send(b"from A".to_vec()), b_link.send(b"from B".to_vec()));
    assert!(sent_a.is_ok() && sent_b.is_ok(), "sending after glare: {sent_a:?} {sent_b:?}");
    assert_eq!(b.receive(A, 6).await, b"from A");
    assert_eq!(a.receive(B, 6).await, b"from B");
    assert!(a.rtc.link(&B).is_some() && b.rtc.link(&A).is_some());

    a.rtc.close().await;
    b.rtc.close().await;
}

#[wasm_bindgen_test]
async fn connecting_to_a_silent_peer_times_out() {
    let (events, raw) = mpsc::unbounded();
    let timeout = Duration::from_millis(1500);
    let rtc = Rtc::new(A, config(timeout), events);
    let mut a = Node { inbox: relay(A, raw, None), rtc };

    let started = now_ms();
    match a.rtc.connect(B).await {
        Err(RtcError::Timeout { peer, timeout: reported }) => {
            assert_eq!(peer, B);
            assert_eq!(reported, timeout);
        }
        Err(other) => panic!("expected a timeout, got {other}"),
        Ok(_) => panic!("connected to a peer that never answered"),
    }
    let waited_ms = now_ms() - started;
    assert!(waited_ms >= 1400.0, "gave up after {waited_ms} ms");
    match a.event().await {
        RtcEvent::Down { peer } => assert_eq!(peer, B),
        other => panic!("expected Down from B, got {other:?}"),
    }
    assert!(a.rtc.link(&B).is_none());
    a.rtc.close().await;
}
