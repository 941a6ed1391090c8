//! The data plane ([`Peers`]) over real native WebRTC links on loopback, against holders that
//! lie: one whose chunk fails its checksum, one whose bytes are intact chunk by chunk but hash to
//! something else than what was asked (weights a peer claims to hold). A router stands in for
//! the relay: it carries signals, and relayed frames, between the three.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use hyphae_node::blobs::{BlobCache, BlobFetcher};
use hyphae_node::peer::rtc::{Link, Rtc, RtcConfig, RtcEvent};
use hyphae_node::peer::{FetchError, Kept, Peers};
use hyphae_proto::frame::ToRelay;
use hyphae_proto::peer::{PeerFrame, TransferError, chunks};
use hyphae_proto::{Address, BlobId};
use tokio::time::timeout;

/// Fetches.
const FETCHER: Address = Address([0x0b; 20]);
/// Holds the bytes and serves them as they are.
const HONEST: Address = Address([0x0c; 20]);
/// Claims to hold the bytes and serves something else.
const LIAR: Address = Address([0x0e; 20]);

/// Long enough for anything on loopback, well short of the hub's 15 s idle limit: a fetch that
/// takes this long waited on silence, which no test here should.
const PATIENCE: Duration = Duration::from_secs(10);

fn loopback() -> RtcConfig {
    RtcConfig { bind: vec!["127.0.0.1:0".into()], connect_timeout: Duration::from_secs(5) }
}

/// What the liar does with a want.
#[derive(Clone, Copy)]
enum Lie {
    /// The right bytes, one chunk's data flipped after its CRC was computed.
    CorruptChunk,
    /// Bytes of the right size that are not the ones asked for, every chunk's CRC correct.
    OtherBytes,
}

/// A holder speaking raw frames over its own `Rtc`, answering every want with `lie`.
struct Liar {
    rtc: Rtc,
    wants: Arc<AtomicUsize>,
}

/// The grid of this test: two hubs, the liar, and the stand-in relay between them.
struct Grid {
    fetcher: Arc<Peers>,
    liar: Liar,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn hub(me: Address) -> (Arc<Peers>, mpsc::Receiver<ToRelay>) {
    let (peers, outbox) = Peers::new(me, Some(loopback()), Kept::with_budget(64 * 1024 * 1024));
    (Arc::new(peers), outbox)
}

/// Serves wants and signals for as long as the test runs (no relay: nothing is in its cache).
fn drive(peers: &Arc<Peers>) -> tokio::task::JoinHandle<()> {
    let peers = peers.clone();
    tokio::spawn(async move {
        let blobs = BlobFetcher::new("http://127.0.0.1:9", BlobCache::new(None));
        peers.drive(&blobs).await;
    })
}

impl Grid {
    /// `bytes` are what the honest holder keeps under their digest; the liar answers with `lie`.
    async fn start(bytes: &[u8], lie: Lie) -> Grid {
        let (fetcher, fetcher_out) = hub(FETCHER);
        let (honest, honest_out) = hub(HONEST);
        honest.keep(BlobId::of(bytes).0, bytes.to_vec());
        let (liar_events, mut liar_rx) = mpsc::unbounded();
        let liar = Liar { rtc: Rtc::new(LIAR, loopback(), liar_events), wants: Arc::default() };

        // Hubs by address, for the router to deliver to; the liar is handled apart.
        let hubs: Arc<HashMap<Address, Arc<Peers>>> =
            Arc::new([(FETCHER, fetcher.clone()), (HONEST, honest.clone())].into_iter().collect());
        let (liar_relayed, mut liar_inbox) = mpsc::unbounded::<(Address, PeerFrame)>();
        let route = {
            let hubs = hubs.clone();
            let liar_rtc = liar.rtc.clone();
            move |from: Address, mut outbox: mpsc::Receiver<ToRelay>| {
                let hubs = hubs.clone();
                let liar_rtc = liar_rtc.clone();
                let liar_relayed = liar_relayed.clone();
                tokio::spawn(async move {
                    while let Some(frame) = outbox.next().await {
                        match frame {
                            ToRelay::Signal { to, signal } if to == LIAR => liar_rtc.on_signal(from, signal).await,
                            ToRelay::Signal { to, signal } => hubs[&to].on_signal(from, signal),
                            ToRelay::Peer { to, frame } if to == LIAR => {
                                let _ = liar_relayed.unbounded_send((from, frame));
                            }
                            ToRelay::Peer { to, frame } => hubs[&to].on_relayed(from, frame),
                            _ => {}
                        }
                    }
                })
            }
        };
        let mut tasks = vec![route(FETCHER, fetcher_out), route(HONEST, honest_out), drive(&fetcher), drive(&honest)];

        // The liar: its signals go to the fetcher; wants arrive on its link or relayed, and are
        // answered the same way they came.
        let wants = liar.wants.clone();
        let original = bytes.to_vec();
        let fetcher_hub = fetcher.clone();
        let liar_rtc = liar.rtc.clone();
        tasks.push(tokio::spawn(async move {
            let links: Mutex<HashMap<Address, Link>> = Mutex::default();
            loop {
                let (from, frame, direct) = tokio::select! {
                    event = liar_rx.next() => match event {
                        Some(RtcEvent::Signal { signal, .. }) => {
                            fetcher_hub.on_signal(LIAR, signal);
                            continue;
                        }
                        Some(RtcEvent::Message { from, bytes }) => {
                            let Ok(frame) = PeerFrame::decode(&bytes) else { continue };
                            (from, frame, true)
                        }
                        Some(_) => continue,
                        None => return,
                    },
                    relayed = liar_inbox.next() => match relayed {
                        Some((from, frame)) => (from, frame, false),
                        None => return,
                    },
                };
                let PeerFrame::Want { request, .. } = frame else { continue };
                wants.fetch_add(1, Ordering::SeqCst);
                for frame in lies(request, &original, lie) {
                    if direct {
                        let link = links.lock().unwrap().get(&from).cloned();
                        let link = match link {
                            Some(link) => link,
                            None => liar_rtc.link(&from).expect("a message came on this link"),
                        };
                        links.lock().unwrap().insert(from, link.clone());
                        link.send(frame.encode()).await.expect("sending to the fetcher");
                    } else {
                        fetcher_hub.on_relayed(LIAR, frame);
                    }
                }
            }
        }));
        Grid { fetcher, liar, _tasks: tasks }
    }
}

fn lies(request: u64, original: &[u8], lie: Lie) -> Vec<PeerFrame> {
    match lie {
        Lie::CorruptChunk => {
            let mut frames: Vec<PeerFrame> = chunks(request, original).collect();
            let PeerFrame::Chunk(chunk) = &mut frames[0] else { unreachable!("chunks are chunks") };
            chunk.data.0[0] ^= 0xff;
            frames
        }
        Lie::OtherBytes => {
            let other: Vec<u8> = original.iter().map(|b| b.wrapping_add(1)).collect();
            chunks(request, &other).collect()
        }
    }
}

/// Several chunks' worth, so a lie can sit in the middle of a transfer.
fn weights() -> Vec<u8> {
    (0..200_000u32).flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_a_peer_serves_with_the_wrong_hash_are_refused_and_fetched_from_an_honest_peer() {
    let bytes = weights();
    let id = BlobId::of(&bytes);
    let grid = Grid::start(&bytes, Lie::OtherBytes).await;

    let only_liar = timeout(PATIENCE, grid.fetcher.fetch_blob(&id, bytes.len() as u64, &[LIAR])).await;
    assert_eq!(only_liar.expect("the fetch did not wait on silence"), None, "the liar's bytes were used");
    assert!(grid.liar.wants.load(Ordering::SeqCst) >= 1, "the liar was never asked");

    let fetched = timeout(PATIENCE, grid.fetcher.fetch_blob(&id, bytes.len() as u64, &[LIAR, HONEST]))
        .await
        .expect("the fetch did not wait on silence")
        .expect("the honest peer provided the weights");
    assert!(fetched == bytes, "the fetched weights differ from the honest peer's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_failing_its_checksum_ends_the_transfer_and_the_next_holder_provides() {
    let bytes = weights();
    let id = BlobId::of(&bytes);
    let grid = Grid::start(&bytes, Lie::CorruptChunk).await;

    let error = timeout(PATIENCE, grid.fetcher.fetch(id.0, bytes.len() as u64, &[LIAR]))
        .await
        .expect("the fetch did not wait on silence")
        .expect_err("a corrupted chunk was accepted");
    assert!(
        matches!(error, FetchError::Transfer { peer: LIAR, error: TransferError::BadChecksum { offset: 0 } }),
        "{error:?}"
    );
    // Direct first, then relayed: the liar was asked both ways and caught both times.
    assert_eq!(grid.liar.wants.load(Ordering::SeqCst), 2);

    let fetched = timeout(PATIENCE, grid.fetcher.fetch(id.0, bytes.len() as u64, &[LIAR, HONEST]))
        .await
        .expect("the fetch did not wait on silence")
        .expect("the honest holder provided the bytes");
    assert!(fetched == bytes);
}
