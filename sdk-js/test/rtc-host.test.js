// The page's half of a worker's peer connections, against a fake RTCPeerConnection: what it
// sends the worker and in which order. Real connections between real browsers are covered by the
// end-to-end tests in tests/ (two headless Chromium workers).

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';

import { RtcHost } from '../src/rtc-host.js';

class FakeChannel {
  constructor(label, init) {
    this.label = label;
    this.init = init;
  }
}

class FakePeerConnection extends EventTarget {
  static all = [];
  constructor(config) {
    super();
    this.config = config;
    this.signalingState = 'stable';
    this.iceGatheringState = 'new';
    this.localDescription = null;
    this.remote = null;
    this.candidates = [];
    this.closed = false;
    FakePeerConnection.all.push(this);
  }
  createDataChannel(label, init) {
    this.channel = new FakeChannel(label, init);
    return this.channel;
  }
  async createOffer() {
    return { type: 'offer', sdp: 'offer-sdp' };
  }
  async createAnswer() {
    return { type: 'answer', sdp: 'answer-sdp' };
  }
  async setLocalDescription(description) {
    this.localDescription = description;
    this.signalingState = description.type === 'offer' ? 'have-local-offer' : 'stable';
    // Gathering completes a moment later, as in a browser.
    setTimeout(() => {
      this.iceGatheringState = 'complete';
      this.dispatchEvent(new Event('icegatheringstatechange'));
    }, 1);
  }
  async setRemoteDescription(description) {
    if (description.sdp === 'bad') throw new Error('malformed SDP');
    this.remote = description;
    this.signalingState = description.type === 'offer' ? 'have-remote-offer' : 'stable';
  }
  async addIceCandidate(candidate) {
    this.candidates.push(candidate);
  }
  close() {
    this.closed = true;
  }
}

class FakeWorker {
  constructor() {
    this.posted = [];
  }
  postMessage(message, transfer = []) {
    this.posted.push({ message, transfer });
  }
  /** Resolves once `n` messages have been posted. */
  async until(n) {
    for (let i = 0; i < 100 && this.posted.length < n; i += 1) await new Promise((r) => setTimeout(r, 2));
    assert.ok(this.posted.length >= n, `expected ${n} messages, got ${JSON.stringify(this.posted)}`);
  }
}

let saved;
beforeEach(() => {
  saved = { pc: globalThis.RTCPeerConnection, dc: globalThis.RTCDataChannel };
  globalThis.RTCPeerConnection = FakePeerConnection;
  globalThis.RTCDataChannel = FakeChannel;
  FakePeerConnection.all = [];
});
afterEach(() => {
  globalThis.RTCPeerConnection = saved.pc;
  globalThis.RTCDataChannel = saved.dc;
});

describe('rtc host', () => {
  test('is supported only where the page has RTCPeerConnection', () => {
    assert.equal(RtcHost.supported(), true);
    delete globalThis.RTCPeerConnection;
    assert.equal(RtcHost.supported(), false);
  });

  test('an offer transfers the negotiated channel first, then sends the gathered description', async () => {
    const worker = new FakeWorker();
    const host = new RtcHost(worker);
    host.handle({ type: 'rtc', op: 'open', id: 7 });
    await worker.until(2);
    const [channel, sdp] = worker.posted;
    assert.equal(channel.message.op, 'channel');
    assert.equal(channel.message.id, 7);
    assert.deepEqual(channel.transfer, [channel.message.channel]);
    assert.equal(channel.message.channel.label, 'hyphae');
    assert.deepEqual(channel.message.channel.init, { negotiated: true, id: 0, ordered: true });
    assert.deepEqual(sdp.message, { type: 'rtc', op: 'sdp', id: 7, sdp: 'offer-sdp' });
    assert.deepEqual(FakePeerConnection.all[0].config, { iceServers: [] });

    host.handle({ type: 'rtc', op: 'answer', id: 7, sdp: 'their-answer' });
    await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(FakePeerConnection.all[0].remote, { type: 'answer', sdp: 'their-answer' });
  });

  test("a peer's offer is answered", async () => {
    const worker = new FakeWorker();
    new RtcHost(worker).handle({ type: 'rtc', op: 'open', id: 1, offer: 'their-offer' });
    await worker.until(2);
    assert.deepEqual(FakePeerConnection.all[0].remote, { type: 'offer', sdp: 'their-offer' });
    assert.deepEqual(worker.posted[1].message, { type: 'rtc', op: 'sdp', id: 1, sdp: 'answer-sdp' });
  });

  test('a malformed offer fails the connection with the reason', async () => {
    const worker = new FakeWorker();
    new RtcHost(worker).handle({ type: 'rtc', op: 'open', id: 2, offer: 'bad' });
    await worker.until(2);
    assert.equal(worker.posted[1].message.op, 'failed');
    assert.match(worker.posted[1].message.reason, /malformed SDP/);
  });

  test('an answer with no offer waiting is ignored; candidates are added; close closes', async () => {
    const worker = new FakeWorker();
    const host = new RtcHost(worker);
    host.handle({ type: 'rtc', op: 'open', id: 3, offer: 'their-offer' });
    await worker.until(2);
    const pc = FakePeerConnection.all[0];
    host.handle({ type: 'rtc', op: 'answer', id: 3, sdp: 'stray' });
    host.handle({ type: 'rtc', op: 'candidate', id: 3, candidate: 'candidate:1 1 udp 1 10.0.0.2 5000 typ host' });
    await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(pc.remote, { type: 'offer', sdp: 'their-offer' });
    assert.equal(pc.candidates.length, 1);
    host.handle({ type: 'rtc', op: 'close', id: 3 });
    assert.equal(pc.closed, true);
  });

  test('closing the host closes every connection', async () => {
    const worker = new FakeWorker();
    const host = new RtcHost(worker);
    host.handle({ type: 'rtc', op: 'open', id: 1 });
    host.handle({ type: 'rtc', op: 'open', id: 2 });
    await worker.until(4);
    host.close();
    assert.ok(FakePeerConnection.all.every((pc) => pc.closed));
  });
});
