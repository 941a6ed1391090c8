//! Browsers: `RTCPeerConnection` and `RTCDataChannel` through web-sys.
//!
//! Chromium (checked on 156) exposes `RTCPeerConnection` to pages only: a dedicated Web Worker
//! sees `RTCDataChannel` but no `RTCPeerConnection`. In a page, connections are made here
//! ([`PcRef::Local`]); in a worker, the page that started it holds them ([`PcRef::Hosted`],
//! `page_host`) and transfers each connection's data channel to the worker before it opens, so
//! the bytes still flow in the worker and everything from the channel on is the same code.
//!
//! Offers and answers are sent only once ICE gathering is complete, so each SDP carries every
//! candidate and no trickling is needed (a [`Signal::Candidate`] from a trickling peer is still
//! applied). A connection's callbacks only post [`Ev`]s (messages go straight to the hub); one
//! task per connection ([`drive`]) owns its setup, its timeout and its end, so no callback ever
//! borrows shared state or drops a closure of its own.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::future::{self, Either};
use futures::{FutureExt, StreamExt, pin_mut, select};
use hyphae_proto::Address;
use hyphae_proto::peer::Signal;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Event, MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelInit, RtcDataChannelState, RtcDataChannelType,
    RtcIceCandidateInit, RtcIceGatheringState, RtcPeerConnection, RtcPeerConnectionState, RtcSdpType,
    RtcSessionDescriptionInit, RtcSignalingState,
};

use super::{
    CHANNEL_ID, CHANNEL_LABEL, Greeted, Greeting, HELLO_RESEND, HIGH_WATER, LOW_WATER, RtcConfig, RtcError, RtcEvent,
    page_host,
};
/// The `max-message-size` every WebRTC stack accepts. Chromium would send more to another
/// Chromium, and the same call would then fail against a native peer; refusing it here keeps
/// both the same.
const MAX_MESSAGE: usize = 64 * 1024;

type Callback = Closure<dyn FnMut(Event)>;

#[derive(Clone)]
pub struct Rtc {
    inner: Rc<Inner>,
}

struct Inner {
    me: Address,
    config: RtcConfig,
    events: mpsc::UnboundedSender<RtcEvent>,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    closed: bool,
    conns: HashMap<Address, Conn>,
    /// `connect()` calls waiting for a link, kept per peer rather than per connection so that
    /// callers waiting on an offer abandoned in glare get the answered connection's link.
    waiters: HashMap<Address, Vec<oneshot::Sender<Result<Link, RtcError>>>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Offerer,
    Answerer,
}

/// Where a connection's `RTCPeerConnection` lives.
#[derive(Clone)]
enum PcRef {
    /// Here, in the page.
    Local(RtcPeerConnection),
    /// In the page that started this worker, under this id.
    Hosted(u64),
}

/// One `RTCPeerConnection`, from creation until it is torn down.
struct Conn {
    /// Tells a connection from the one that replaced it, so that a late event of the old one
    /// cannot tear down the new one.
    id: u64,
    role: Role,
    pc: PcRef,
    /// Set once the data channel is open.
    link: Option<Link>,
    /// A local connection's handlers (a hosted one has its handlers in the page).
    _callbacks: Vec<Callback>,
    /// Dropping it stops the connection's [`drive`] task.
    _cancel: oneshot::Sender<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(link) = &self.link {
            link.channel.shut();
        }
        match &self.pc {
            PcRef::Local(pc) => {
                pc.set_onicegatheringstatechange(None);
                pc.set_onconnectionstatechange(None);
                pc.close();
            }
            PcRef::Hosted(id) => page_host::close(*id),
        }
    }
}

/// What a connection's callbacks (or, for a hosted one, the page) tell its [`drive`] task.
pub(super) enum Ev {
    Gathered,
    /// The page's connection gathered its candidates: our offer or answer.
    LocalSdp(String),
    /// The page transferred the connection's data channel.
    Channel(Rc<Channel>),
    Open,
    /// The peer answered our greeting on the channel (see [`Greeting`]).
    Greeted,
    Closed,
    Failed(String),
}

/// How a connection ends.
enum Ending {
    /// Another connection to the same peer takes its place: `connect()` callers keep waiting for
    /// that one, and the hub hears `Down` only if this one had been up.
    Replaced,
    Failed(RtcError),
}

impl Rtc {
    pub fn new(me: Address, config: RtcConfig, events: mpsc::UnboundedSender<RtcEvent>) -> Rtc {
        Rtc { inner: Rc::new(Inner { me, config, events, state: RefCell::new(State::default()) }) }
    }

    /// An open link to `peer`, reusing an existing connection or attempt; otherwise offers one.
    pub async fn connect(&self, peer: Address) -> Result<Link, RtcError> {
        if peer == self.inner.me {
            return Err(RtcError::Rtc("a worker cannot connect to itself".into()));
        }
        let (waiter, fresh) = {
            let mut state = self.inner.state.borrow_mut();
            if state.closed {
                return Err(RtcError::Closed { peer });
            }
            let existing = state.conns.get(&peer);
            if let Some(link) = existing.and_then(|conn| conn.link.clone()) {
                return Ok(link);
            }
            let fresh = existing.is_none();
            let (tx, rx) = oneshot::channel();
            state.waiters.entry(peer).or_default().push(tx);
            (rx, fresh)
        };
        if fresh {
            self.inner.start(peer, None);
        }
        // The sender goes away without an answer only when this `Rtc` is dropped.
        waiter.await.unwrap_or(Err(RtcError::Closed { peer }))
    }

    pub fn link(&self, peer: &Address) -> Option<Link> {
        let state = self.inner.state.borrow();
        let link = state.conns.get(peer)?.link.clone()?;
        // The channel can close a moment before its connection's task tears it down.
        (link.channel.dc.ready_state() == RtcDataChannelState::Open).then_some(link)
    }

    pub async fn on_signal(&self, from: Address, signal: Signal) {
        if from == self.inner.me || self.inner.state.borrow().closed {
            return;
        }
        match signal {
            Signal::Offer { sdp } => self.inner.on_offer(from, sdp),
            Signal::Answer { sdp } => self.inner.on_answer(from, sdp).await,
            Signal::Candidate { candidate, sdp_mid, sdp_mline_index } => {
                self.inner.on_candidate(from, &candidate, sdp_mid.as_deref(), sdp_mline_index).await;
            }
        }
    }

    /// Closes every connection (each reported `Down`) and fails pending `connect()`s; signals
    /// and connects after this are refused.
    pub async fn close(&self) {
        let (conns, waiters) = {
            let mut state = self.inner.state.borrow_mut();
            state.closed = true;
            (std::mem::take(&mut state.conns), std::mem::take(&mut state.waiters))
        };
        for (peer, conn) in conns {
            drop(conn);
            self.inner.emit(RtcEvent::Down { peer });
        }
        for (peer, waiters) in waiters {
            for waiter in waiters {
                let _ = waiter.send(Err(RtcError::Closed { peer }));
            }
        }
    }
}

impl Inner {
    fn emit(&self, event: RtcEvent) {
        // Nobody listening means the hub is gone and nothing is left to tell.
        let _ = self.events.unbounded_send(event);
    }

    fn on_offer(self: &Rc<Inner>, from: Address, sdp: String) {
        let existing = self.state.borrow().conns.get(&from).map(|conn| (conn.id, conn.role, conn.link.is_some()));
        match existing {
            // Glare: both offered. The smaller address's offer wins on both sides, so exactly
            // one connection comes up.
            Some((_, Role::Offerer, false)) if self.me < from => {
                tracing::debug!("glare with {from}: keeping our offer");
                return;
            }
            // Either glare we lose, or the peer starts over (it restarted or gave up on the
            // connection we have): theirs replaces ours.
            Some((id, _, _)) => self.teardown(from, id, Ending::Replaced),
            None => {}
        }
        self.start(from, Some(sdp));
    }

    async fn on_answer(&self, from: Address, sdp: String) {
        let pending = self.state.borrow().conns.get(&from).and_then(|conn| {
            let waiting = conn.role == Role::Offerer
                && match &conn.pc {
                    PcRef::Local(pc) => pc.signaling_state() == RtcSignalingState::HaveLocalOffer,
                    // The page checks its connection's state itself.
                    PcRef::Hosted(_) => conn.link.is_none(),
                };
            waiting.then(|| (conn.id, conn.pc.clone()))
        });
        let Some((id, pc)) = pending else {
            tracing::debug!("ignoring an answer from {from}: no offer of ours is waiting for one");
            return;
        };
        let pc = match pc {
            PcRef::Local(pc) => pc,
            PcRef::Hosted(host_id) => return page_host::answer(host_id, &sdp),
        };
        let answer = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
        answer.set_sdp(&sdp);
        if let Err(error) = JsFuture::from(pc.set_remote_description(&answer)).await {
            let error = RtcError::Rtc(format!("applying the answer of {from}: {}", js_error(&error)));
            self.teardown(from, id, Ending::Failed(error));
        }
    }

    async fn on_candidate(&self, from: Address, candidate: &str, sdp_mid: Option<&str>, sdp_mline_index: Option<u16>) {
        let Some(pc) = self.state.borrow().conns.get(&from).map(|conn| conn.pc.clone()) else { return };
        let pc = match pc {
            PcRef::Local(pc) => pc,
            PcRef::Hosted(id) => return page_host::candidate(id, candidate, sdp_mid, sdp_mline_index),
        };
        let init = RtcIceCandidateInit::new(candidate);
        init.set_sdp_mid(sdp_mid);
        init.set_sdp_m_line_index(sdp_mline_index);
        // One unusable candidate must not end a connection that others may still carry.
        if let Err(error) = JsFuture::from(pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await {
            tracing::debug!("ignoring a candidate from {from}: {}", js_error(&error));
        }
    }

    /// Starts a connection to `peer`: our offer when `remote_offer` is `None`, else our answer.
    fn start(self: &Rc<Inner>, peer: Address, remote_offer: Option<String>) {
        if let Err(error) = self.open(peer, remote_offer) {
            let waiters = self.state.borrow_mut().waiters.remove(&peer).unwrap_or_default();
            self.emit(RtcEvent::Down { peer });
            for waiter in waiters {
                let _ = waiter.send(Err(error.clone()));
            }
        }
    }

    fn open(self: &Rc<Inner>, peer: Address, remote_offer: Option<String>) -> Result<(), RtcError> {
        let (tx, rx) = mpsc::unbounded();
        let (pc, channel, callbacks) = if has_peer_connection() {
            let pc = new_peer_connection()?;
            let callbacks = peer_callbacks(&pc, &tx);
            let init = RtcDataChannelInit::new();
            init.set_ordered(true);
            init.set_negotiated(true);
            init.set_id(CHANNEL_ID);
            let dc = pc.create_data_channel_with_data_channel_dict(CHANNEL_LABEL, &init);
            let channel = Channel::new(dc, peer, self.events.clone(), tx);
            (PcRef::Local(pc), Some(channel), callbacks)
        } else if let Some(id) = page_host::register(peer, self.events.clone(), tx) {
            (PcRef::Hosted(id), None, Vec::new())
        } else {
            return Err(RtcError::Rtc(
                "RTCPeerConnection is not available here (browsers expose it to pages, not to Web Workers), \
                 and no page hosts this worker's connections"
                    .into(),
            ));
        };
        let role = if remote_offer.is_some() { Role::Answerer } else { Role::Offerer };
        let (cancel, cancelled) = oneshot::channel();
        let (id, replaced) = {
            let mut state = self.state.borrow_mut();
            state.next_id += 1;
            let id = state.next_id;
            let conn = Conn { id, role, pc: pc.clone(), link: None, _callbacks: callbacks, _cancel: cancel };
            (id, state.conns.insert(peer, conn))
        };
        // Callers tear down the previous connection first; this only keeps a mistake from
        // leaving one running unseen.
        drop(replaced);
        let timeout = self.config.connect_timeout;
        wasm_bindgen_futures::spawn_local(drive(
            Rc::downgrade(self),
            Setup { peer, id, pc, remote_offer, channel, events: self.events.clone(), timeout },
            rx,
            cancelled,
        ));
        Ok(())
    }

    /// Marks connection `id` to `peer` up; false if it has been torn down meanwhile.
    fn up(&self, peer: Address, id: u64, channel: Rc<Channel>) -> bool {
        let link = Link { peer, channel };
        let waiters = {
            let mut state = self.state.borrow_mut();
            let Some(conn) = state.conns.get_mut(&peer).filter(|conn| conn.id == id) else { return false };
            conn.link = Some(link.clone());
            state.waiters.remove(&peer).unwrap_or_default()
        };
        self.emit(RtcEvent::Up { peer });
        for waiter in waiters {
            let _ = waiter.send(Ok(link.clone()));
        }
        true
    }

    /// Ends connection `id` to `peer`, unless another has replaced it already.
    fn teardown(&self, peer: Address, id: u64, ending: Ending) {
        let (conn, waiters) = {
            let mut state = self.state.borrow_mut();
            if state.conns.get(&peer).is_none_or(|conn| conn.id != id) {
                return;
            }
            let Some(conn) = state.conns.remove(&peer) else { return };
            let waiters = match ending {
                Ending::Failed(_) => state.waiters.remove(&peer).unwrap_or_default(),
                Ending::Replaced => Vec::new(),
            };
            (conn, waiters)
        };
        let was_up = conn.link.is_some();
        // Dropped outside the borrow: closing the connection must not meet a borrowed state.
        drop(conn);
        match ending {
            Ending::Replaced if !was_up => {}
            Ending::Replaced => self.emit(RtcEvent::Down { peer }),
            Ending::Failed(error) => {
                tracing::debug!("connection to {peer} ended: {error}");
                self.emit(RtcEvent::Down { peer });
                for waiter in waiters {
                    let _ = waiter.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Whether this context can make connections itself (a page can, a Web Worker cannot).
fn has_peer_connection() -> bool {
    js_sys::Reflect::has(&js_sys::global(), &JsValue::from_str("RTCPeerConnection")).unwrap_or(false)
}

fn new_peer_connection() -> Result<RtcPeerConnection, RtcError> {
    let config = RtcConfiguration::new();
    // No STUN or TURN: host candidates only (see the module above).
    config.set_ice_servers(&js_sys::Array::new());
    RtcPeerConnection::new_with_configuration(&config)
        .map_err(|error| RtcError::Rtc(format!("creating an RTCPeerConnection: {}", js_error(&error))))
}

fn peer_callbacks(pc: &RtcPeerConnection, tx: &mpsc::UnboundedSender<Ev>) -> Vec<Callback> {
    let on_gathering = {
        let tx = tx.clone();
        Callback::new(move |_: Event| {
            let _ = tx.unbounded_send(Ev::Gathered);
        })
    };
    let on_state = {
        let tx = tx.clone();
        let pc = pc.clone();
        Callback::new(move |_: Event| {
            // `disconnected` is left alone: ICE may recover from it, and `failed` follows if not.
            let event = match pc.connection_state() {
                RtcPeerConnectionState::Failed => Ev::Failed("ICE or DTLS failed".into()),
                RtcPeerConnectionState::Closed => Ev::Closed,
                _ => return,
            };
            let _ = tx.unbounded_send(event);
        })
    };
    // No `ondatachannel`: our channel is negotiated, and one announced in band is not ours.
    pc.set_onicegatheringstatechange(Some(on_gathering.as_ref().unchecked_ref()));
    pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
    vec![on_gathering, on_state]
}

struct Setup {
    peer: Address,
    id: u64,
    pc: PcRef,
    /// The peer's offer when we answer; `None` when we offer.
    remote_offer: Option<String>,
    /// A local connection's channel (a hosted one's arrives from the page).
    channel: Option<Rc<Channel>>,
    events: mpsc::UnboundedSender<RtcEvent>,
    timeout: Duration,
}

/// One connection's life: negotiate within the timeout, report it up, wait for its end. Holds
/// the `Rtc` weakly so that dropping every `Rtc` handle ends its connections.
async fn drive(
    inner: Weak<Inner>,
    setup: Setup,
    mut rx: mpsc::UnboundedReceiver<Ev>,
    mut cancelled: oneshot::Receiver<()>,
) {
    let Setup { peer, id, pc, remote_offer, channel, events, timeout } = setup;
    let opened = {
        let negotiation = negotiate(&pc, peer, remote_offer, channel, &events, &mut rx).fuse();
        let deadline = gloo_timers::future::sleep(timeout).fuse();
        pin_mut!(negotiation, deadline);
        select! {
            result = negotiation => result,
            () = deadline => Err(RtcError::Timeout { peer, timeout }),
            _ = cancelled => return,
        }
    };
    let channel = match opened {
        Ok(channel) => channel,
        Err(error) => {
            if let Some(inner) = inner.upgrade() {
                inner.teardown(peer, id, Ending::Failed(error));
            }
            return;
        }
    };
    if !inner.upgrade().is_some_and(|inner| inner.up(peer, id, channel)) {
        return;
    }
    let error = loop {
        match future::select(rx.next(), &mut cancelled).await {
            Either::Left((Some(Ev::Closed) | None, _)) => break RtcError::Closed { peer },
            Either::Left((Some(Ev::Failed(reason)), _)) => break RtcError::Rtc(reason),
            Either::Left((Some(Ev::Gathered | Ev::LocalSdp(_) | Ev::Open | Ev::Greeted | Ev::Channel(_)), _)) => {
                continue;
            }
            Either::Right(_) => return,
        }
    };
    if let Some(inner) = inner.upgrade() {
        inner.teardown(peer, id, Ending::Failed(error));
    }
}

/// Offer or answer, wait for gathering, send the SDP, and return the channel once it is open and
/// the peer has answered our greeting.
async fn negotiate(
    pc: &PcRef,
    peer: Address,
    remote_offer: Option<String>,
    mut channel: Option<Rc<Channel>>,
    events: &mpsc::UnboundedSender<RtcEvent>,
    rx: &mut mpsc::UnboundedReceiver<Ev>,
) -> Result<Rc<Channel>, RtcError> {
    let offering = remote_offer.is_none();
    let sdp = match pc {
        PcRef::Local(pc) => local_sdp(pc, peer, remote_offer, rx, &mut channel).await?,
        PcRef::Hosted(id) => {
            page_host::open(*id, remote_offer.as_deref());
            loop {
                if let Some(sdp) = next_event(rx, peer, &mut channel).await? {
                    break sdp;
                }
            }
        }
    };
    let signal = if offering { Signal::Offer { sdp } } else { Signal::Answer { sdp } };
    let _ = events.unbounded_send(RtcEvent::Signal { to: peer, signal });
    let open = loop {
        if let Some(channel) = channel.as_ref().filter(|c| c.dc.ready_state() == RtcDataChannelState::Open) {
            break channel.clone();
        }
        next_event(rx, peer, &mut channel).await?;
    };
    while !open.greeting.borrow().is_up() {
        open.say(open.greeting.borrow().hello());
        let event = pin!(next_event(rx, peer, &mut channel));
        if let Either::Left((result, _)) = future::select(event, gloo_timers::future::sleep(HELLO_RESEND)).await {
            result?;
        }
    }
    Ok(open)
}

/// Our offer (or our answer to `remote_offer`) on a connection of this page, once gathered.
async fn local_sdp(
    pc: &RtcPeerConnection,
    peer: Address,
    remote_offer: Option<String>,
    rx: &mut mpsc::UnboundedReceiver<Ev>,
    channel: &mut Option<Rc<Channel>>,
) -> Result<String, RtcError> {
    let rtc_error = |step: &str, error: JsValue| RtcError::Rtc(format!("{step}: {}", js_error(&error)));
    match remote_offer {
        None => {
            let offer = JsFuture::from(pc.create_offer()).await.map_err(|e| rtc_error("creating an offer", e))?;
            JsFuture::from(pc.set_local_description(offer.unchecked_ref()))
                .await
                .map_err(|e| rtc_error("setting our offer", e))?;
        }
        Some(sdp) => {
            let offer = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
            offer.set_sdp(&sdp);
            JsFuture::from(pc.set_remote_description(&offer))
                .await
                .map_err(|e| rtc_error(&format!("applying the offer of {peer}"), e))?;
            let answer = JsFuture::from(pc.create_answer()).await.map_err(|e| rtc_error("creating an answer", e))?;
            JsFuture::from(pc.set_local_description(answer.unchecked_ref()))
                .await
                .map_err(|e| rtc_error("setting our answer", e))?;
        }
    }
    while pc.ice_gathering_state() != RtcIceGatheringState::Complete {
        next_event(rx, peer, channel).await?;
    }
    pc.local_description()
        .map(|description| description.sdp())
        .ok_or_else(|| RtcError::Rtc("no local description after gathering".into()))
}

/// Waits for the connection's next event: keeps a channel the page transferred, turns an end into
/// an error, and returns the SDP a hosting page gathered.
async fn next_event(
    rx: &mut mpsc::UnboundedReceiver<Ev>,
    peer: Address,
    channel: &mut Option<Rc<Channel>>,
) -> Result<Option<String>, RtcError> {
    match rx.next().await {
        Some(Ev::Gathered | Ev::Open | Ev::Greeted) => Ok(None),
        Some(Ev::LocalSdp(sdp)) => Ok(Some(sdp)),
        Some(Ev::Channel(arrived)) => {
            // One channel per connection; a second would be a confused page.
            if channel.is_none() {
                *channel = Some(arrived);
            }
            Ok(None)
        }
        Some(Ev::Closed) | None => Err(RtcError::Closed { peer }),
        Some(Ev::Failed(reason)) => Err(RtcError::Rtc(reason)),
    }
}

/// A data channel with its handlers, shared by every clone of its [`Link`].
pub(super) struct Channel {
    dc: RtcDataChannel,
    greeting: Rc<RefCell<Greeting>>,
    /// Senders waiting for the send buffer to drain; woken by `bufferedamountlow` and by close.
    drained: Rc<RefCell<Vec<oneshot::Sender<()>>>>,
    _callbacks: [Callback; 4],
}

impl Channel {
    /// Sets the handlers at once: built where the channel appears, before any message can be
    /// dispatched to it.
    pub(super) fn new(
        dc: RtcDataChannel,
        peer: Address,
        events: mpsc::UnboundedSender<RtcEvent>,
        tx: mpsc::UnboundedSender<Ev>,
    ) -> Rc<Channel> {
        dc.set_binary_type(RtcDataChannelType::Arraybuffer);
        dc.set_buffered_amount_low_threshold(LOW_WATER as u32);
        let drained: Rc<RefCell<Vec<oneshot::Sender<()>>>> = Rc::default();
        let greeting: Rc<RefCell<Greeting>> = Rc::default();
        let on_message = {
            let (dc, greeting, tx) = (dc.clone(), greeting.clone(), tx.clone());
            Callback::new(move |event: Event| {
                let Some(event) = event.dyn_ref::<MessageEvent>() else { return };
                let data = event.data();
                if let Some(buffer) = data.dyn_ref::<js_sys::ArrayBuffer>() {
                    let bytes = js_sys::Uint8Array::new(buffer).to_vec();
                    let _ = events.unbounded_send(RtcEvent::Message { from: peer, bytes });
                    return;
                }
                let Some(text) = data.as_string() else { return };
                let greeted = greeting.borrow_mut().on_text(&text);
                match greeted {
                    Greeted::Ignore => tracing::debug!("ignoring a text message from {peer}"),
                    Greeted::Reply(reply) => say(&dc, reply),
                    Greeted::Up(reply) => {
                        say(&dc, reply);
                        let _ = tx.unbounded_send(Ev::Greeted);
                    }
                }
            })
        };
        let on_open = {
            let tx = tx.clone();
            Callback::new(move |_: Event| {
                let _ = tx.unbounded_send(Ev::Open);
            })
        };
        let on_close = {
            let drained = drained.clone();
            Callback::new(move |_: Event| {
                wake(&drained);
                let _ = tx.unbounded_send(Ev::Closed);
            })
        };
        let on_low = {
            let drained = drained.clone();
            Callback::new(move |_: Event| wake(&drained))
        };
        dc.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        dc.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        dc.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        dc.set_onbufferedamountlow(Some(on_low.as_ref().unchecked_ref()));
        Rc::new(Channel { dc, greeting, drained, _callbacks: [on_message, on_open, on_close, on_low] })
    }

    fn say(&self, text: &str) {
        say(&self.dc, text);
    }

    /// Resolves once the send buffer has drained to `LOW_WATER` or the channel has closed.
    async fn drained(&self) {
        let (tx, rx) = oneshot::channel();
        self.drained.borrow_mut().push(tx);
        let _ = rx.await;
    }

    /// Closes the channel and releases blocked senders at once: whether a `close` event follows
    /// the connection's `close()` is up to the browser.
    fn shut(&self) {
        self.dc.close();
        wake(&self.drained);
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.dc.set_onmessage(None);
        self.dc.set_onopen(None);
        self.dc.set_onclose(None);
        self.dc.set_onbufferedamountlow(None);
        self.dc.close();
    }
}

/// One greeting message; a failure shows as the channel closing or the greeting timing out.
fn say(dc: &RtcDataChannel, text: &str) {
    if let Err(error) = dc.send_with_str(text) {
        tracing::debug!("greeting: {}", js_error(&error));
    }
}

fn wake(waiters: &RefCell<Vec<oneshot::Sender<()>>>) {
    for waiter in waiters.borrow_mut().drain(..) {
        let _ = waiter.send(());
    }
}

/// The open data channel to one peer.
#[derive(Clone)]
pub struct Link {
    peer: Address,
    channel: Rc<Channel>,
}

impl Link {
    pub fn peer(&self) -> Address {
        self.peer
    }

    /// Sends one binary message, first waiting while more than `HIGH_WATER` bytes are queued.
    pub async fn send(&self, bytes: Vec<u8>) -> Result<(), RtcError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(RtcError::Rtc(format!("a {}-byte message exceeds the {MAX_MESSAGE}-byte limit", bytes.len())));
        }
        let dc = &self.channel.dc;
        loop {
            if dc.ready_state() != RtcDataChannelState::Open {
                return Err(RtcError::Closed { peer: self.peer });
            }
            if dc.buffered_amount() as usize <= HIGH_WATER {
                break;
            }
            self.channel.drained().await;
        }
        dc.send_with_u8_array(&bytes).map_err(|error| {
            if dc.ready_state() == RtcDataChannelState::Open {
                RtcError::Rtc(format!("sending to {}: {}", self.peer, js_error(&error)))
            } else {
                RtcError::Closed { peer: self.peer }
            }
        })
    }
}

/// A thrown JS value as text: `name: message` for errors (DOMException included).
fn js_error(value: &JsValue) -> String {
    match value.dyn_ref::<js_sys::Error>() {
        Some(error) => format!("{}: {}", String::from(error.name()), String::from(error.message())),
        None => value.as_string().unwrap_or_else(|| format!("{value:?}")),
    }
}
