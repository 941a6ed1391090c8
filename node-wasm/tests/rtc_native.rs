//! Native WebRTC links between two in-process workers over loopback: each side's signals are
//! carried straight to the other's `on_signal`, standing in for the relay.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use hyphae_node::peer::rtc::{Link, Rtc, RtcConfig, RtcError, RtcEvent};
use hyphae_proto::Address;
use hyphae_proto::peer::Signal;
use tokio::sync::Barrier;
use tokio::time::timeout;

const A: Address = Address([0x11; 20]);
const B: Address = Address([0x22; 20]);
/// Long enough for anything that should happen on loopback, short enough to fail fast.
const PATIENCE: Duration = Duration::from_secs(10);

fn loopback(connect_timeout: Duration) -> RtcConfig {
    RtcConfig { bind: vec!["127.0.0.1:0".into()], connect_timeout }
}

/// One worker: its `Rtc` and what arrived for it, split by kind.
struct Side {
    rtc: Rtc,
    messages: UnboundedReceiver<Vec<u8>>,
    /// `Up` and `Down`, as they came.
    lifecycle: UnboundedReceiver<RtcEvent>,
    offers_sent: Arc<AtomicUsize>,
}

impl Side {
    async fn next_message(&mut self) -> Vec<u8> {
        match timeout(PATIENCE, self.messages.next()).await {
            Ok(Some(bytes)) => bytes,
            other => panic!("no message: {other:?}"),
        }
    }

    async fn next_lifecycle(&mut self) -> RtcEvent {
        match timeout(PATIENCE, self.lifecycle.next()).await {
            Ok(Some(event)) => event,
            other => panic!("no up or down event: {other:?}"),
        }
    }
}

/// How the stand-in relay carries signals.
#[derive(Clone, Copy, PartialEq)]
enum Carry {
    AsSent,
    /// Each side's first offer waits until the other has made one too, so both are in flight at
    /// once.
    CrossingOffers,
    /// Candidates are cut out of every description and sent after it one by one, as by a browser
    /// that trickles.
    Trickled,
}

/// Two workers whose signals reach each other.
fn pair(config: RtcConfig, carry: Carry) -> (Side, Side) {
    let (a_events, a_rx) = mpsc::unbounded();
    let (b_events, b_rx) = mpsc::unbounded();
    let a = Rtc::new(A, config.clone(), a_events);
    let b = Rtc::new(B, config, b_events);
    let barrier = Arc::new(Barrier::new(2));
    let a_side = side(a.clone(), a_rx, A, b.clone(), carry, barrier.clone());
    let b_side = side(b, b_rx, B, a, carry, barrier);
    (a_side, b_side)
}

fn side(
    rtc: Rtc,
    events: UnboundedReceiver<RtcEvent>,
    me: Address,
    other: Rtc,
    carry: Carry,
    barrier: Arc<Barrier>,
) -> Side {
    let (messages, messages_rx) = mpsc::unbounded();
    let (lifecycle, lifecycle_rx) = mpsc::unbounded();
    let offers_sent = Arc::new(AtomicUsize::new(0));
    let relay = Relay { me, other, carry, barrier: Some(barrier), offers_sent: offers_sent.clone() };
    tokio::spawn(relay.forward(events, messages, lifecycle));
    Side { rtc, messages: messages_rx, lifecycle: lifecycle_rx, offers_sent }
}

/// Carries one side's signals to the other and sorts the rest of its events.
struct Relay {
    me: Address,
    other: Rtc,
    carry: Carry,
    barrier: Option<Arc<Barrier>>,
    offers_sent: Arc<AtomicUsize>,
}

impl Relay {
    async fn forward(
        mut self,
        mut events: UnboundedReceiver<RtcEvent>,
        messages: UnboundedSender<Vec<u8>>,
        lifecycle: UnboundedSender<RtcEvent>,
    ) {
        while let Some(event) = events.next().await {
            match event {
                RtcEvent::Signal { signal, .. } => self.carry(signal).await,
                RtcEvent::Message { bytes, .. } => {
                    let _ = messages.unbounded_send(bytes);
                }
                up_or_down => {
                    let _ = lifecycle.unbounded_send(up_or_down);
                }
            }
        }
    }

    async fn carry(&mut self, signal: Signal) {
        if matches!(signal, Signal::Offer { .. }) {
            self.offers_sent.fetch_add(1, Ordering::SeqCst);
            if self.carry == Carry::CrossingOffers
                && let Some(barrier) = self.barrier.take()
            {
                barrier.wait().await;
            }
        }
        if self.carry == Carry::Trickled {
            let (signal, candidates) = without_candidates(signal);
            self.other.on_signal(self.me, signal).await;
            for candidate in candidates {
                self.other.on_signal(self.me, candidate).await;
            }
        } else {
            self.other.on_signal(self.me, signal).await;
        }
    }
}

/// The description with its candidates cut out, and those candidates as trickled signals, closed
/// by the empty end-of-candidates one.
fn without_candidates(signal: Signal) -> (Signal, Vec<Signal>) {
    let (sdp, rebuild): (String, fn(String) -> Signal) = match signal {
        Signal::Offer { sdp } => (sdp, |sdp| Signal::Offer { sdp }),
        Signal::Answer { sdp } => (sdp, |sdp| Signal::Answer { sdp }),
        other => return (other, Vec::new()),
    };
    let mid = sdp.lines().find_map(|line| line.strip_prefix("a=mid:")).map(str::to_owned);
    let trickled = |candidate: String| Signal::Candidate { candidate, sdp_mid: mid.clone(), sdp_mline_index: Some(0) };
    let mut candidates: Vec<Signal> = sdp
        .lines()
        .filter_map(|line| line.strip_prefix("a="))
        .filter(|attribute| attribute.starts_with("candidate:"))
        .map(|candidate| trickled(candidate.to_owned()))
        .collect();
    assert!(!candidates.is_empty(), "no candidates to trickle in {sdp}");
    candidates.push(trickled(String::new()));
    let kept: Vec<&str> =
        sdp.lines().filter(|line| !line.starts_with("a=candidate:") && *line != "a=end-of-candidates").collect();
    (rebuild(kept.join("\r\n") + "\r\n"), candidates)
}

/// Deterministic bytes that differ from message to message, so reordering or loss shows.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn send_all(link: Link, data: Arc<Vec<u8>>, chunk: usize) -> Result<(), RtcError> {
    for piece in data.chunks(chunk) {
        link.send(piece.to_vec()).await?;
    }
    Ok(())
}

async fn receive_all(side: &mut Side, len: usize) -> Vec<u8> {
    let mut received = Vec::with_capacity(len);
    while received.len() < len {
        received.extend(side.next_message().await);
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_mib_cross_one_link_each_way_intact_and_in_order() {
    const SIZE: usize = 4 * 1024 * 1024;
    const CHUNK: usize = 40 * 1024;
    let (mut a, mut b) = pair(loopback(Duration::from_secs(5)), Carry::AsSent);

    let started = Instant::now();
    // Two callers at once share one attempt.
    let (first, second) = tokio::join!(a.rtc.connect(B), a.rtc.connect(B));
    let a_link = first.expect("connect");
    second.expect("concurrent connect");
    let opened = started.elapsed();
    assert_eq!(a_link.peer(), B);
    assert_eq!(a.offers_sent.load(Ordering::SeqCst), 1, "concurrent connects made one offer");
    assert!(matches!(a.next_lifecycle().await, RtcEvent::Up { peer } if peer == B));
    assert!(matches!(b.next_lifecycle().await, RtcEvent::Up { peer } if peer == A));
    let b_link = b.rtc.link(&A).expect("the answering side has the same link");
    assert_eq!(b_link.peer(), A);
    assert!(a.rtc.link(&B).is_some());
    // Reused, not reopened.
    a.rtc.connect(B).await.expect("connect again");
    assert_eq!(a.offers_sent.load(Ordering::SeqCst), 1);

    let a_data = Arc::new(payload(SIZE, 1));
    let b_data = Arc::new(payload(SIZE, 2));
    let started = Instant::now();
    let a_sending = tokio::spawn(send_all(a_link, a_data.clone(), CHUNK));
    let b_sending = tokio::spawn(send_all(b_link, b_data.clone(), CHUNK));
    let (at_b, at_a) = tokio::join!(receive_all(&mut b, SIZE), receive_all(&mut a, SIZE));
    let moved = started.elapsed();
    a_sending.await.expect("a's sender").expect("a sends");
    b_sending.await.expect("b's sender").expect("b sends");
    assert!(at_b == *a_data, "a's 4 MiB arrived at b changed or out of order");
    assert!(at_a == *b_data, "b's 4 MiB arrived at a changed or out of order");
    eprintln!("opened in {opened:?}; 2 × 4 MiB in {moved:?} ({:.1} MiB/s each way)", 4.0 / moved.as_secs_f64());

    a.rtc.close().await;
    b.rtc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_connects_settle_on_one_working_link() {
    let (mut a, mut b) = pair(loopback(Duration::from_secs(5)), Carry::CrossingOffers);

    let (a_link, b_link) = tokio::join!(a.rtc.connect(B), b.rtc.connect(A));
    let (a_link, b_link) = (a_link.expect("a connects"), b_link.expect("b connects"));
    assert_eq!(a.offers_sent.load(Ordering::SeqCst), 1);
    assert_eq!(b.offers_sent.load(Ordering::SeqCst), 1, "both offered: this was glare");

    a_link.send(b"from a".to_vec()).await.expect("a sends");
    b_link.send(b"from b".to_vec()).await.expect("b sends");
    assert_eq!(b.next_message().await, b"from a");
    assert_eq!(a.next_message().await, b"from b");
    // Both sides hold the link of the one connection that came up, and it stayed up.
    assert!(matches!(a.next_lifecycle().await, RtcEvent::Up { peer } if peer == B));
    assert!(matches!(b.next_lifecycle().await, RtcEvent::Up { peer } if peer == A));
    assert!(a.lifecycle.try_recv().is_err(), "a saw another up or down");
    assert!(b.lifecycle.try_recv().is_err(), "b saw another up or down");

    a.rtc.close().await;
    b.rtc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_a_silent_peer_times_out_and_reports_down() {
    let connect_timeout = Duration::from_millis(800);
    let (events, mut received) = mpsc::unbounded();
    let rtc = Rtc::new(A, loopback(connect_timeout), events);

    let started = Instant::now();
    let outcome = rtc.connect(B).await;
    let waited = started.elapsed();
    assert!(matches!(outcome, Err(RtcError::Timeout { peer, .. }) if peer == B), "{outcome:?}");
    assert!(waited < connect_timeout * 2, "gave up after {waited:?}");

    let mut saw_offer = false;
    loop {
        match timeout(PATIENCE, received.next()).await {
            Ok(Some(RtcEvent::Signal { to, signal: Signal::Offer { sdp } })) => {
                assert_eq!(to, B);
                assert!(sdp.contains("a=candidate"), "the offer waits for gathering: {sdp}");
                saw_offer = true;
            }
            Ok(Some(RtcEvent::Down { peer })) => {
                assert_eq!(peer, B);
                break;
            }
            other => panic!("expected the offer, then down: {other:?}"),
        }
    }
    assert!(saw_offer);
    assert!(rtc.link(&B).is_none());
    rtc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_one_side_ends_the_link_on_the_other() {
    let (mut a, mut b) = pair(loopback(Duration::from_secs(5)), Carry::AsSent);
    let a_link = a.rtc.connect(B).await.expect("connect");
    assert!(matches!(b.next_lifecycle().await, RtcEvent::Up { .. }));
    let b_link = b.rtc.link(&A).expect("b's link");

    let closing = Instant::now();
    b.rtc.close().await;
    assert!(matches!(b_link.send(b"late".to_vec()).await, Err(RtcError::Closed { .. })));
    assert!(b.rtc.link(&A).is_none());

    assert!(matches!(a.next_lifecycle().await, RtcEvent::Up { .. }));
    assert!(matches!(a.next_lifecycle().await, RtcEvent::Down { peer } if peer == B));
    eprintln!("a saw b's close {:?} after b began closing", closing.elapsed());
    assert!(matches!(a_link.send(b"anyone?".to_vec()).await, Err(RtcError::Closed { .. })));
    assert!(a.rtc.link(&B).is_none());
    a.rtc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_candidates_connect_descriptions_that_carry_none() {
    let (mut a, mut b) = pair(loopback(Duration::from_secs(5)), Carry::Trickled);
    let a_link = a.rtc.connect(B).await.expect("connect");
    assert!(matches!(b.next_lifecycle().await, RtcEvent::Up { .. }));
    let b_link = b.rtc.link(&A).expect("b's link");

    a_link.send(b"ping".to_vec()).await.expect("a sends");
    assert_eq!(b.next_message().await, b"ping");
    b_link.send(b"pong".to_vec()).await.expect("b sends");
    assert_eq!(a.next_message().await, b"pong");

    a.rtc.close().await;
    b.rtc.close().await;
}
