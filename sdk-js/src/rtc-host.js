// The page's half of a browser worker's direct connections to other workers.
//
// Browsers give a dedicated Web Worker RTCDataChannel but no RTCPeerConnection (Chromium 156), so
// the worker asks its page to hold each connection: the page creates it with one data channel
// negotiated out of band (label "hyphae", id 0: the same on every hyphae peer, native ones too),
// transfers that channel to the worker at once, before it can open, and passes the connection's
// descriptions back. Activation bytes never touch the page: they flow on the channel, in the
// worker. The worker's side is node-wasm/src/peer/rtc/page_host.rs.
//
// Worker → page: {type:'rtc', op:'open', id, offer?}, {op:'answer', id, sdp},
//                {op:'candidate', id, candidate, sdpMid, sdpMLineIndex}, {op:'close', id}.
// Page → worker: {type:'rtc', op:'channel', id, channel} (the channel transferred),
//                {op:'sdp', id, sdp}, {op:'failed', id, reason}.

const CHANNEL = { label: 'hyphae', id: 0 };

export class RtcHost {
  #worker;
  /** @type {Map<number, RTCPeerConnection>} */
  #conns = new Map();

  /** Whether this page can hold connections for a worker. */
  static supported() {
    return typeof globalThis.RTCPeerConnection === 'function' && typeof globalThis.RTCDataChannel === 'function';
  }

  constructor(worker) {
    this.#worker = worker;
  }

  /** A request from the worker (`type: 'rtc'`). */
  handle(message) {
    const id = Number(message.id);
    if (!Number.isSafeInteger(id)) return;
    switch (message.op) {
      case 'open':
        this.#open(id, typeof message.offer === 'string' ? message.offer : null);
        break;
      case 'answer':
        this.#answer(id, String(message.sdp ?? ''));
        break;
      case 'candidate':
        this.#conns
          .get(id)
          ?.addIceCandidate({
            candidate: String(message.candidate ?? ''),
            sdpMid: message.sdpMid ?? null,
            sdpMLineIndex: message.sdpMLineIndex ?? null,
          })
          // One unusable candidate must not end a connection others may still carry.
          .catch(() => {});
        break;
      case 'close':
        this.#conns.get(id)?.close();
        this.#conns.delete(id);
        break;
      default:
        break;
    }
  }

  /** Closes every connection (the worker is going away). */
  close() {
    for (const pc of this.#conns.values()) pc.close();
    this.#conns.clear();
  }

  #send(message, transfer = []) {
    this.#worker.postMessage({ type: 'rtc', ...message }, transfer);
  }

  async #open(id, offer) {
    let pc;
    try {
      // No STUN or TURN servers: host candidates only; peers that cannot reach each other
      // directly go through the relay instead.
      pc = new RTCPeerConnection({ iceServers: [] });
      const channel = pc.createDataChannel(CHANNEL.label, { negotiated: true, id: CHANNEL.id, ordered: true });
      channel.binaryType = 'arraybuffer';
      this.#send({ op: 'channel', id, channel }, [channel]);
    } catch (e) {
      pc?.close();
      this.#send({ op: 'failed', id, reason: `creating the connection: ${describe(e)}` });
      return;
    }
    this.#conns.set(id, pc);
    pc.addEventListener('connectionstatechange', () => {
      // `disconnected` may recover; `failed` follows if it does not.
      if (pc.connectionState === 'failed' && this.#conns.get(id) === pc) {
        this.#send({ op: 'failed', id, reason: 'ICE or DTLS failed' });
      }
    });
    try {
      if (offer === null) {
        await pc.setLocalDescription(await pc.createOffer());
      } else {
        await pc.setRemoteDescription({ type: 'offer', sdp: offer });
        await pc.setLocalDescription(await pc.createAnswer());
      }
      // Sent once gathered, so the description carries every candidate and nothing trickles.
      await gathered(pc);
      if (this.#conns.get(id) === pc) this.#send({ op: 'sdp', id, sdp: pc.localDescription.sdp });
    } catch (e) {
      if (this.#conns.get(id) === pc) this.#send({ op: 'failed', id, reason: describe(e) });
    }
  }

  async #answer(id, sdp) {
    const pc = this.#conns.get(id);
    if (!pc || pc.signalingState !== 'have-local-offer') return;
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp });
    } catch (e) {
      if (this.#conns.get(id) === pc) this.#send({ op: 'failed', id, reason: `applying the answer: ${describe(e)}` });
    }
  }
}

function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const check = () => {
      if (pc.iceGatheringState !== 'complete') return;
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    pc.addEventListener('icegatheringstatechange', check);
  });
}

function describe(e) {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
