//! Native [`Rtc`]: WebRTC data channels through the `webrtc` crate (webrtc-rs 0.21, DESIGN.md §6).
//! One peer connection with one data channel per peer ([`super::CHANNEL_LABEL`], negotiated out of band,
//! so both sides create it), offered without trickle: a description goes out only once ICE
//! gathering is complete, so it carries every candidate. Candidates trickled by a browser are
//! still accepted.
//!
//! State lives in one map keyed by peer, each entry stamped with a generation so that the tasks
//! and callbacks of a connection that was replaced (glare, a peer's new offer) or torn down act on
//! nothing. The map's lock is never held across an await.
//!
//! Not here: what the bytes mean (`peer` frames, the hub) and the relay fallback.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::mpsc::UnboundedSender;
use hyphae_proto::Address;
use hyphae_proto::peer::Signal;
use rtc::ice::mdns::MulticastDnsMode;
use tokio::sync::{Notify, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::error::Error as WebrtcError;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

use super::{Greeted, Greeting, HELLO_RESEND, HIGH_WATER, LOW_WATER, RtcConfig, RtcError, RtcEvent};

/// How often a sender waiting for the send buffer to drain looks again. The buffered-amount-low
/// event wakes it (on loopback it ended every wait), but that event fires once, on SCTP's own
/// buffer, while the wait is on the outstanding-bytes counter, which also counts bytes not yet
/// handed to SCTP; should the two disagree at that moment, no second event would come.
const DRAIN_RECHECK: Duration = Duration::from_millis(10);

/// The SCTP receive window we advertise, and so the most a peer keeps in flight towards us. The
/// default (1 MiB) lets a peer burst more datagrams than a default-sized UDP socket buffer
/// (208 KiB on Linux) holds whenever our driver is a moment late to read; each loss then costs
/// SCTP's 1 s minimum retransmission timeout, often several in a row. Measured on loopback, 2 × 4
/// MiB at once: 1 MiB took 1 to 15 s with drops every run, 128 KiB about 40 ms (~100 MiB/s each
/// way) with none; 192 KiB dropped again. The price is a ceiling of window / RTT per connection
/// (about 2.5 MiB/s at 50 ms).
const SCTP_RECEIVE_WINDOW: u32 = 128 * 1024;

/// How long `close` lets the channels' closing handshakes reach the peers before stopping the
/// connections: a stopped driver sends nothing, and without the handshake a peer only notices
/// when ICE gives up (tens of seconds).
const CLOSE_GRACE: Duration = Duration::from_millis(300);

/// Candidates a peer may trickle before its description is applied; beyond this it is not
/// following the protocol and the rest are dropped.
const MAX_EARLY_CANDIDATES: usize = 64;

type Pc = Arc<dyn PeerConnection>;

/// The direct connections of one worker. Cheap to clone. Its methods spawn onto the ambient Tokio
/// runtime, so they must be called from within one.
#[derive(Clone)]
pub struct Rtc {
    inner: Arc<Inner>,
}

struct Inner {
    me: Address,
    config: RtcConfig,
    events: UnboundedSender<RtcEvent>,
    peers: Mutex<HashMap<Address, Entry>>,
    next_generation: AtomicU64,
    /// Set by `close`: later connects fail and later offers are ignored, so no task can bring up
    /// a connection nobody will close.
    closed: AtomicBool,
}

/// One peer's connection, from the first signal until it is torn down.
struct Entry {
    generation: u64,
    /// `None` while the connection is being built (binding sockets).
    pc: Option<Pc>,
    /// Our offer awaits its answer (what glare is decided on).
    offering: bool,
    /// The remote description is applied, so candidates can go straight in.
    remote_set: bool,
    early_candidates: Vec<RTCIceCandidateInit>,
    link: Option<Link>,
    /// What `connect` callers wait on. Moved to the replacing entry when a pending attempt is
    /// replaced, so a caller waiting on our abandoned offer gets the link of the answered one.
    status: watch::Sender<Status>,
}

#[derive(Clone)]
enum Status {
    Pending,
    Open(Link),
    Failed(RtcError),
}

impl Entry {
    fn new(generation: u64, offering: bool, status: watch::Sender<Status>) -> Entry {
        Entry { generation, pc: None, offering, remote_set: false, early_candidates: Vec::new(), link: None, status }
    }
}

/// What the data channel task found when its channel opened.
enum Opened {
    Accepted,
    /// The connection was torn down or replaced meanwhile.
    Stale,
}

impl std::fmt::Debug for Rtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtc").field("me", &self.inner.me).finish_non_exhaustive()
    }
}

impl Rtc {
    /// `events` receives [`RtcEvent::Signal`], [`RtcEvent::Message`], [`RtcEvent::Up`] and
    /// [`RtcEvent::Down`].
    pub fn new(me: Address, config: RtcConfig, events: UnboundedSender<RtcEvent>) -> Rtc {
        Rtc {
            inner: Arc::new(Inner {
                me,
                config,
                events,
                peers: Mutex::new(HashMap::new()),
                next_generation: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// An open link to `peer`: the existing one, the one being set up (by either side), or a new
    /// connection offered to it. [`RtcError::Timeout`] when the data channel is not open within
    /// `connect_timeout`; the attempt is then torn down and [`RtcEvent::Down`] emitted.
    pub async fn connect(&self, peer: Address) -> Result<Link, RtcError> {
        let inner = &self.inner;
        let mut status = {
            let mut peers = inner.peers();
            // Checked under the lock `close` drains the map under, so no attempt slips in after.
            if inner.closed.load(Ordering::Acquire) {
                return Err(RtcError::Closed { peer });
            }
            match peers.get(&peer) {
                Some(Entry { link: Some(link), .. }) => return Ok(link.clone()),
                Some(entry) => entry.status.subscribe(),
                None => {
                    let generation = inner.next_generation();
                    let (status, waiting) = watch::channel(Status::Pending);
                    peers.insert(peer, Entry::new(generation, true, status));
                    tokio::spawn(offer(inner.clone(), peer, generation));
                    inner.watch_deadline(peer, generation);
                    waiting
                }
            }
        };
        // The attempt's own deadline ends it; this one only covers an attempt that replaced ours
        // late (glare) and so started its clock later.
        let timeout = inner.config.connect_timeout;
        match tokio::time::timeout(timeout, status.wait_for(|status| !matches!(status, Status::Pending))).await {
            Ok(Ok(status)) => match &*status {
                Status::Open(link) => Ok(link.clone()),
                Status::Failed(error) => Err(error.clone()),
                Status::Pending => Err(RtcError::Closed { peer }),
            },
            Ok(Err(_)) => Err(RtcError::Closed { peer }),
            Err(_) => Err(RtcError::Timeout { peer, timeout }),
        }
    }

    /// The open link to `peer`, if any (either side may have offered).
    pub fn link(&self, peer: &Address) -> Option<Link> {
        self.inner.peers().get(peer).and_then(|entry| entry.link.clone())
    }

    /// A signal `from` sent through the relay. Malformed descriptions and candidates are logged
    /// and dropped: they come from the network.
    pub async fn on_signal(&self, from: Address, signal: Signal) {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        match signal {
            Signal::Offer { sdp } => match RTCSessionDescription::offer(sdp) {
                Ok(offer) => inner.on_offer(from, offer),
                Err(error) => tracing::warn!(peer = %from, %error, "malformed offer"),
            },
            Signal::Answer { sdp } => match RTCSessionDescription::answer(sdp) {
                Ok(answer) => inner.on_answer(from, answer).await,
                Err(error) => tracing::warn!(peer = %from, %error, "malformed answer"),
            },
            Signal::Candidate { candidate, sdp_mid, sdp_mline_index } => {
                // An empty candidate marks the end of a browser's trickle; there is nothing to add.
                if candidate.is_empty() {
                    return;
                }
                let candidate = RTCIceCandidateInit { candidate, sdp_mid, sdp_mline_index, ..Default::default() };
                inner.on_candidate(from, candidate).await;
            }
        }
    }

    /// Closes every connection (emitting [`RtcEvent::Down`] for each); this `Rtc` then refuses
    /// new ones.
    pub async fn close(&self) {
        let inner = &self.inner;
        let entries: Vec<(Address, Entry)> = {
            let mut peers = inner.peers();
            inner.closed.store(true, Ordering::Release);
            peers.drain().collect()
        };
        // Close the channels first and give their closing handshakes a moment on the wire, so the
        // peers learn of it now rather than when ICE times out.
        let mut closing = Vec::new();
        for (_, entry) in &entries {
            if let Some(link) = &entry.link {
                link.mark_closed();
                let _ = link.inner.dc.close().await;
                closing.push(link.clone());
            }
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            for link in &closing {
                let _ = link.inner.gone.subscribe().wait_for(|gone| *gone).await;
            }
        })
        .await;
        for (peer, entry) in entries {
            entry.status.send_replace(Status::Failed(RtcError::Closed { peer }));
            if let Some(pc) = entry.pc
                && let Err(error) = pc.close().await
            {
                tracing::debug!(%peer, %error, "closing peer connection");
            }
            inner.emit(RtcEvent::Down { peer });
        }
    }
}

impl Inner {
    fn peers(&self) -> MutexGuard<'_, HashMap<Address, Entry>> {
        // Every critical section leaves the map consistent, so a panic elsewhere poisons nothing.
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    fn emit(&self, event: RtcEvent) {
        // The hub dropping its receiver means it is shutting down; nobody is left to tell.
        let _ = self.events.unbounded_send(event);
    }

    fn is_current(&self, peer: Address, generation: u64) -> bool {
        self.peers().get(&peer).is_some_and(|entry| entry.generation == generation)
    }

    /// Gives a connection that is not open by `connect_timeout` up.
    fn watch_deadline(self: &Arc<Self>, peer: Address, generation: u64) {
        let inner = Arc::downgrade(self);
        let timeout = self.config.connect_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let Some(inner) = inner.upgrade() else { return };
            // `teardown` leaves a connection of another generation alone.
            let open = inner.peers().get(&peer).is_some_and(|entry| entry.link.is_some());
            if !open {
                inner.teardown(peer, generation, RtcError::Timeout { peer, timeout });
            }
        });
    }

    /// Removes the connection if it is still `generation`, tells whoever waits on it why, emits
    /// `Down` and stops it.
    fn teardown(&self, peer: Address, generation: u64, reason: RtcError) {
        let entry = {
            let mut peers = self.peers();
            match peers.get(&peer) {
                Some(entry) if entry.generation == generation => peers.remove(&peer),
                _ => None,
            }
        };
        let Some(entry) = entry else { return };
        tracing::debug!(%peer, %reason, "direct connection down");
        if let Some(link) = &entry.link {
            link.mark_closed();
        }
        entry.status.send_replace(Status::Failed(reason));
        self.emit(RtcEvent::Down { peer });
        if let Some(pc) = entry.pc {
            // Spawned: teardown runs inside the connection's own callbacks, and `close` waits for
            // the driver those callbacks run on.
            tokio::spawn(async move {
                let _ = pc.close().await;
            });
        }
    }

    /// Stores the built connection in its entry; `false` (and the caller closes it) when the
    /// attempt was abandoned while it was being built.
    fn install(&self, peer: Address, generation: u64, pc: &Pc) -> bool {
        match self.peers().get_mut(&peer) {
            Some(entry) if entry.generation == generation => {
                entry.pc = Some(pc.clone());
                true
            }
            _ => false,
        }
    }

    /// Marks the remote description applied and hands back the candidates that came early.
    fn remote_applied(&self, peer: Address, generation: u64) -> Vec<RTCIceCandidateInit> {
        match self.peers().get_mut(&peer) {
            Some(entry) if entry.generation == generation => {
                entry.remote_set = true;
                std::mem::take(&mut entry.early_candidates)
            }
            _ => Vec::new(),
        }
    }

    fn opened(&self, peer: Address, generation: u64, link: &Link) -> Opened {
        {
            let mut peers = self.peers();
            let Some(entry) = peers.get_mut(&peer).filter(|entry| entry.generation == generation) else {
                return Opened::Stale;
            };
            entry.link = Some(link.clone());
            entry.offering = false;
            entry.status.send_replace(Status::Open(link.clone()));
        }
        self.emit(RtcEvent::Up { peer });
        Opened::Accepted
    }

    fn on_offer(self: &Arc<Self>, from: Address, offer: RTCSessionDescription) {
        let generation = self.next_generation();
        let replaced = {
            let mut peers = self.peers();
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            if let Some(entry) = peers.get(&from)
                && entry.offering
                && self.me < from
            {
                // Glare, and ours wins: `from` drops its offer and answers ours.
                tracing::debug!(peer = %from, "glare: keeping our offer");
                return;
            }
            let replaced = peers.remove(&from);
            let status = match &replaced {
                Some(old) => {
                    // Waiters on the attempt we abandon wait on this one instead.
                    let status = old.status.clone();
                    status.send_replace(Status::Pending);
                    status
                }
                None => watch::channel(Status::Pending).0,
            };
            peers.insert(from, Entry::new(generation, false, status));
            replaced
        };
        if let Some(old) = replaced {
            // An open link being replaced means the peer started over (it restarted, or saw the
            // old connection die first): the old link is gone. A pending one was never up.
            if let Some(link) = &old.link {
                link.mark_closed();
                self.emit(RtcEvent::Down { peer: from });
            }
            if let Some(pc) = old.pc {
                tokio::spawn(async move {
                    let _ = pc.close().await;
                });
            }
        }
        self.watch_deadline(from, generation);
        tokio::spawn(answer(self.clone(), from, generation, offer));
    }

    async fn on_answer(self: &Arc<Self>, from: Address, answer: RTCSessionDescription) {
        let (pc, generation) = {
            let mut peers = self.peers();
            let Some(entry) = peers.get_mut(&from) else { return };
            let Some(pc) = entry.pc.clone().filter(|_| entry.offering) else {
                tracing::debug!(peer = %from, "answer to no offer of ours");
                return;
            };
            entry.offering = false;
            (pc, entry.generation)
        };
        if let Err(error) = pc.set_remote_description(answer).await {
            self.teardown(from, generation, rtc_error(error));
            return;
        }
        add_candidates(&pc, from, self.remote_applied(from, generation)).await;
    }

    async fn on_candidate(&self, from: Address, candidate: RTCIceCandidateInit) {
        let pc = {
            let mut peers = self.peers();
            let Some(entry) = peers.get_mut(&from) else { return };
            match &entry.pc {
                Some(pc) if entry.remote_set => pc.clone(),
                _ => {
                    if entry.early_candidates.len() < MAX_EARLY_CANDIDATES {
                        entry.early_candidates.push(candidate);
                    }
                    return;
                }
            }
        };
        add_candidates(&pc, from, vec![candidate]).await;
    }

    /// A peer connection for `peer` whose callbacks act on `generation` only.
    async fn build(self: &Arc<Self>, peer: Address, generation: u64) -> Result<(Pc, watch::Receiver<bool>), RtcError> {
        let (gathered, gathered_rx) = watch::channel(false);
        let handler = Handler { inner: Arc::downgrade(self), peer, generation, gathered };
        // The default mDNS mode opens a multicast socket in `build()`, and nothing here needs
        // mDNS: our candidates are plain addresses.
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_sctp_max_receive_buffer_size(SCTP_RECEIVE_WINDOW)
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_handler(Arc::new(handler))
            .with_udp_addrs(self.config.bind.clone())
            .build()
            .await
            .map_err(rtc_error)?;
        Ok((Arc::new(pc), gathered_rx))
    }

    /// Our description once gathering is complete, so it carries every candidate.
    async fn gathered_sdp(&self, pc: &Pc, gathered: &mut watch::Receiver<bool>) -> Result<String, RtcError> {
        let complete = matches!(
            tokio::time::timeout(self.config.connect_timeout, gathered.wait_for(|done| *done)).await,
            Ok(Ok(_))
        );
        if !complete {
            return Err(RtcError::Rtc("ICE gathering did not complete".into()));
        }
        match pc.local_description().await {
            Some(description) => Ok(description.sdp),
            None => Err(RtcError::Rtc("no local description after gathering".into())),
        }
    }
}

async fn offer(inner: Arc<Inner>, peer: Address, generation: u64) {
    if let Err(error) = try_offer(&inner, peer, generation).await {
        inner.teardown(peer, generation, error);
    }
}

async fn try_offer(inner: &Arc<Inner>, peer: Address, generation: u64) -> Result<(), RtcError> {
    let (pc, mut gathered) = inner.build(peer, generation).await?;
    if !inner.install(peer, generation, &pc) {
        let _ = pc.close().await;
        return Ok(());
    }
    open_channel(inner, peer, generation, &pc).await?;
    let offer = pc.create_offer(None).await.map_err(rtc_error)?;
    pc.set_local_description(offer).await.map_err(rtc_error)?;
    let sdp = inner.gathered_sdp(&pc, &mut gathered).await?;
    // Glare may have replaced this attempt while it gathered; its offer would only confuse.
    if inner.is_current(peer, generation) {
        inner.emit(RtcEvent::Signal { to: peer, signal: Signal::Offer { sdp } });
    }
    Ok(())
}

async fn answer(inner: Arc<Inner>, peer: Address, generation: u64, offer: RTCSessionDescription) {
    if let Err(error) = try_answer(&inner, peer, generation, offer).await {
        inner.teardown(peer, generation, error);
    }
}

async fn try_answer(
    inner: &Arc<Inner>,
    peer: Address,
    generation: u64,
    offer: RTCSessionDescription,
) -> Result<(), RtcError> {
    let (pc, mut gathered) = inner.build(peer, generation).await?;
    if !inner.install(peer, generation, &pc) {
        let _ = pc.close().await;
        return Ok(());
    }
    open_channel(inner, peer, generation, &pc).await?;
    pc.set_remote_description(offer).await.map_err(rtc_error)?;
    add_candidates(&pc, peer, inner.remote_applied(peer, generation)).await;
    let answer = pc.create_answer(None).await.map_err(rtc_error)?;
    pc.set_local_description(answer).await.map_err(rtc_error)?;
    let sdp = inner.gathered_sdp(&pc, &mut gathered).await?;
    if inner.is_current(peer, generation) {
        inner.emit(RtcEvent::Signal { to: peer, signal: Signal::Answer { sdp } });
    }
    Ok(())
}

/// Creates the connection's one data channel, which opens once SCTP is up, and drains its events.
async fn open_channel(inner: &Arc<Inner>, peer: Address, generation: u64, pc: &Pc) -> Result<(), RtcError> {
    // Otherwise the W3C defaults: ordered and reliable.
    let init = RTCDataChannelInit { negotiated: Some(super::CHANNEL_ID), ..RTCDataChannelInit::default() };
    let dc = pc.create_data_channel(super::CHANNEL_LABEL, Some(init)).await.map_err(rtc_error)?;
    tokio::spawn(run_channel(Arc::downgrade(inner), peer, generation, dc));
    Ok(())
}

async fn add_candidates(pc: &Pc, peer: Address, candidates: Vec<RTCIceCandidateInit>) {
    for candidate in candidates {
        if let Err(error) = pc.add_ice_candidate(candidate).await {
            tracing::debug!(%peer, %error, "dropping remote ICE candidate");
        }
    }
}

/// Drains one data channel's events for as long as it lives: the driver stalls when a channel's
/// event queue is full, so this must keep reading even when nobody sends. Once the channel opens,
/// greets the peer (saying hello again every [`HELLO_RESEND`]) and reports the link up when the
/// greeting is done.
async fn run_channel(inner: Weak<Inner>, peer: Address, generation: u64, dc: Arc<dyn DataChannel>) {
    let mut link: Option<Link> = None;
    let mut greeting = Greeting::default();
    let mut opened = false;
    let mut resend = tokio::time::interval(HELLO_RESEND);
    loop {
        let event = tokio::select! {
            event = dc.poll() => match event {
                Some(event) => event,
                None => break,
            },
            _ = resend.tick(), if opened && !greeting.is_up() => {
                say(&dc, peer, greeting.hello()).await;
                continue;
            }
        };
        let Some(rtc) = inner.upgrade() else { break };
        match event {
            DataChannelEvent::OnOpen => {
                let low_water = u32::try_from(LOW_WATER).unwrap_or(u32::MAX);
                if let Err(error) = dc.set_buffered_amount_low_threshold(low_water).await {
                    tracing::debug!(%peer, %error, "setting the buffered-amount-low threshold");
                }
                opened = true;
                resend.reset_immediately();
            }
            DataChannelEvent::OnMessage(message) if message.is_string => {
                let text = String::from_utf8_lossy(&message.data);
                match greeting.on_text(&text) {
                    Greeted::Ignore => {}
                    Greeted::Reply(reply) => say(&dc, peer, reply).await,
                    Greeted::Up(reply) => {
                        say(&dc, peer, reply).await;
                        let up = Link::new(peer, dc.clone());
                        match rtc.opened(peer, generation, &up) {
                            Opened::Accepted => link = Some(up),
                            Opened::Stale => break,
                        }
                    }
                }
            }
            DataChannelEvent::OnMessage(message) => {
                let bytes = Vec::from(message.data);
                rtc.emit(RtcEvent::Message { from: peer, bytes });
            }
            DataChannelEvent::OnBufferedAmountLow => {
                if let Some(link) = &link {
                    link.inner.drained.notify_waiters();
                }
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
    if let Some(link) = &link {
        link.mark_closed();
        link.inner.gone.send_replace(true);
    }
    if let Some(inner) = inner.upgrade() {
        inner.teardown(peer, generation, RtcError::Closed { peer });
    }
}

/// One greeting message; a failure shows as the channel closing or the greeting timing out.
async fn say(dc: &Arc<dyn DataChannel>, peer: Address, text: &str) {
    if let Err(error) = dc.send_text(text).await {
        tracing::debug!(%peer, %error, "greeting");
    }
}

/// The connection's callbacks. They run on its driver, so nothing here waits on anything.
struct Handler {
    inner: Weak<Inner>,
    peer: Address,
    generation: u64,
    gathered: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)
            && let Some(inner) = self.inner.upgrade()
        {
            inner.teardown(self.peer, self.generation, RtcError::Closed { peer: self.peer });
        }
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        // Ours is negotiated out of band, so it is never announced; one that is is not ours.
        tracing::debug!(peer = %self.peer, "closing a data channel the peer announced in band");
        tokio::spawn(async move {
            let _ = dc.close().await;
        });
    }
}

/// An open data channel to one peer. Cheap to clone; every clone sends on the same channel.
#[derive(Clone)]
pub struct Link {
    inner: Arc<LinkInner>,
}

struct LinkInner {
    peer: Address,
    dc: Arc<dyn DataChannel>,
    /// Woken by the buffered-amount-low event and on close.
    drained: Notify,
    /// Set once the channel's event loop has ended.
    gone: watch::Sender<bool>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("peer", &self.inner.peer).finish_non_exhaustive()
    }
}

impl Link {
    fn new(peer: Address, dc: Arc<dyn DataChannel>) -> Link {
        Link {
            inner: Arc::new(LinkInner {
                peer,
                dc,
                drained: Notify::new(),
                gone: watch::channel(false).0,
                closed: AtomicBool::new(false),
            }),
        }
    }

    pub fn peer(&self) -> Address {
        self.inner.peer
    }

    /// Sends one binary message (at most 64 KiB). Waits while more than [`HIGH_WATER`] bytes are
    /// unacknowledged until they drain below [`LOW_WATER`]: `webrtc`'s own `send` never waits
    /// unless a buffer limit is configured, and that limit lets the next message in as soon as
    /// one byte drains instead of when there is room for a burst.
    pub async fn send(&self, bytes: Vec<u8>) -> Result<(), RtcError> {
        self.wait_for_room().await?;
        let data = BytesMut::from(Bytes::from(bytes));
        self.inner.dc.send(data).await.map_err(|error| self.error(error))
    }

    async fn wait_for_room(&self) -> Result<(), RtcError> {
        let link = &self.inner;
        if self.outstanding().await? <= HIGH_WATER {
            return Ok(());
        }
        loop {
            let mut drained = pin!(link.drained.notified());
            drained.as_mut().enable();
            if link.closed.load(Ordering::Acquire) {
                return Err(RtcError::Closed { peer: link.peer });
            }
            if self.outstanding().await? <= LOW_WATER {
                return Ok(());
            }
            let _ = tokio::time::timeout(DRAIN_RECHECK, drained).await;
        }
    }

    async fn outstanding(&self) -> Result<usize, RtcError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(RtcError::Closed { peer: self.inner.peer });
        }
        self.inner.dc.outstanding_bytes().await.map_err(|error| self.error(error))
    }

    fn mark_closed(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.drained.notify_waiters();
    }

    fn error(&self, error: WebrtcError) -> RtcError {
        let closed = matches!(error, WebrtcError::ErrDataChannelClosed | WebrtcError::ErrDataChannelNotOpen)
            || self.inner.closed.load(Ordering::Acquire);
        if closed { RtcError::Closed { peer: self.inner.peer } } else { rtc_error(error) }
    }
}

fn rtc_error(error: WebrtcError) -> RtcError {
    RtcError::Rtc(error.to_string())
}

impl Drop for Inner {
    /// A connection dropped without `close` keeps its driver running on the runtime, so stop
    /// what is left when the last `Rtc` goes without closing.
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let peers = std::mem::take(self.peers.get_mut().unwrap_or_else(PoisonError::into_inner));
        for entry in peers.into_values() {
            if let Some(pc) = entry.pc {
                runtime.spawn(async move {
                    let _ = pc.close().await;
                });
            }
        }
    }
}
