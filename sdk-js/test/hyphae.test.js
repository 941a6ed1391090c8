// Behaviour of the SDK outside a browser: a fake Worker, navigator, document and localStorage stand
// in for the real ones, so these run with `node --test` (no dependencies). The browser path with the
// real worker is covered by the end-to-end tests in tests/.

import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import { Hyphae, addCredits, formatCredits, parseCredits } from '../src/hyphae.js';

const SITE = 'http://site.test';
const RELAY = 'http://relay.test';
const SAME_ORIGIN_WORKER = `${SITE}/sdk/worker.js`;
const ALICE = '0x8ba1f109551bD432803012645Ac136ddd64DBA72';

class FakeWorker extends EventTarget {
  static all = [];
  constructor(url, options) {
    super();
    this.url = String(url);
    this.options = options;
    this.posted = [];
    this.terminated = false;
    FakeWorker.all.push(this);
  }
  postMessage(message) {
    this.posted.push(message);
  }
  terminate() {
    this.terminated = true;
  }
  /** A message from the worker to the page. */
  emit(data) {
    this.dispatchEvent(Object.assign(new Event('message'), { data }));
  }
  types() {
    return this.posted.map((m) => m.type);
  }
}

class FakeDocument extends EventTarget {
  hidden = false;
  setHidden(hidden) {
    this.hidden = hidden;
    this.dispatchEvent(new Event('visibilitychange'));
  }
}

class FakeStorage {
  map = new Map();
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

function setGlobal(name, value) {
  Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
}

let doc;
let storage;
let gesture;

beforeEach(() => {
  FakeWorker.all = [];
  doc = new FakeDocument();
  storage = new FakeStorage();
  gesture = { isActive: false };
  setGlobal('Worker', FakeWorker);
  setGlobal('document', doc);
  setGlobal('localStorage', storage);
  setGlobal('location', { origin: SITE, href: `${SITE}/page` });
  setGlobal('navigator', { gpu: { requestAdapter: async () => ({}) }, userActivation: gesture });
});

function connect(options = {}) {
  return Hyphae.connect({ relay: RELAY, consent: 'granted', workerUrl: SAME_ORIGIN_WORKER, pauseOnBattery: false, ...options });
}

function record(grid, event) {
  const seen = [];
  grid.on(event, (payload) => seen.push(payload));
  return seen;
}

function receipt(credits, task = 'job_1.0') {
  return { payload: { beneficiary: ALICE, credits, task, job: 'job_1', v: 1 }, signature: '0x', signer: '0x' };
}

describe('credits', () => {
  test('amounts add exactly, as integer millionths', () => {
    assert.equal(addCredits('0.1', '0.2'), '0.3');
    assert.equal(addCredits('12.000001', '0.999999'), '13');
    assert.equal(addCredits(...Array(10).fill('0.1')), '1');
    assert.equal(parseCredits('2.50'), 2_500_000n);
    assert.equal(formatCredits(2_500_000n), '2.5');
    assert.equal(formatCredits(0n), '0');
    assert.equal(addCredits('18446744073709.551615', '1'), '18446744073710.551615');
  });

  test('malformed amounts are refused', () => {
    for (const bad of ['', '-1', '1.', '.5', '1e3', '0.0000001', '1,5', '+1', 1, null]) {
      assert.throws(() => parseCredits(bad), TypeError, String(bad));
    }
  });
});

describe('support', () => {
  test('without navigator.gpu the grid is unsupported and starts no worker', async () => {
    setGlobal('navigator', { userActivation: gesture });
    const grid = await connect();
    assert.equal(grid.state, 'unsupported');
    assert.match(grid.stats().detail, /WebGPU/);
    const states = record(grid, 'state');
    assert.equal(await grid.start(), 'unsupported');
    assert.equal(FakeWorker.all.length, 0);
    assert.deepEqual(states.map((s) => s.state), ['unsupported']);
  });

  test('an adapter request that finds nothing is unsupported too', async () => {
    setGlobal('navigator', { gpu: { requestAdapter: async () => null } });
    const grid = await connect();
    assert.equal(grid.state, 'unsupported');
    await grid.start();
    assert.equal(FakeWorker.all.length, 0);
  });
});

describe('options', () => {
  test('bad options are refused when connecting', async () => {
    await assert.rejects(connect({ beneficiary: '0x123' }), TypeError);
    await assert.rejects(connect({ maxUtilization: 0 }), RangeError);
    await assert.rejects(connect({ maxUtilization: 1.5 }), RangeError);
    await assert.rejects(connect({ maxShards: 0 }), RangeError);
    await assert.rejects(connect({ maxShards: 1.5 }), RangeError);
    await assert.rejects(connect({ consent: 'yes' }), TypeError);
    await assert.rejects(connect({ relay: 'ftp://relay.test' }), TypeError);
  });

  test('unknown event names throw instead of never firing', async () => {
    const grid = await connect();
    assert.throws(() => grid.on('credits', () => {}), TypeError);
  });
});

describe('running', () => {
  test('start sends the start message and follows the worker through its states', async () => {
    const grid = await connect({ beneficiary: ALICE, maxUtilization: 0.25 });
    assert.equal(grid.state, 'idle');
    const states = record(grid, 'state');
    assert.equal(await grid.start(), 'starting');
    const [worker] = FakeWorker.all;
    assert.equal(worker.url, SAME_ORIGIN_WORKER);
    assert.deepEqual(worker.options, { type: 'module', name: 'hyphae' });
    assert.deepEqual(worker.posted, [
      // Node has no RTCPeerConnection, so the page cannot hold the worker's peer connections.
      { type: 'start', relay: RELAY, beneficiary: ALICE, maxUtilization: 0.25, maxShards: null, rtcHost: false },
    ]);
    worker.emit({ type: 'state', state: 'starting' });
    worker.emit({ type: 'identity', worker: '0xW', beneficiary: ALICE, adapter: { name: 'Test GPU' } });
    worker.emit({ type: 'state', state: 'connecting' });
    worker.emit({ type: 'state', state: 'running' });
    assert.deepEqual(states.map((s) => s.state), ['starting', 'connecting', 'running']);
    const s = grid.stats();
    assert.equal(s.worker, '0xW');
    assert.equal(s.adapter.name, 'Test GPU');
    assert.equal(grid.beneficiary, ALICE);
  });

  test('tasks and receipts are counted, credits summed exactly', async () => {
    const grid = await connect();
    await grid.start();
    const [worker] = FakeWorker.all;
    worker.emit({ type: 'state', state: 'running' });
    const credits = record(grid, 'credit');
    const tasks = record(grid, 'task');
    worker.emit({ type: 'task-start', task: 'job_1.0' });
    assert.equal(grid.stats().currentTask, 'job_1.0');
    worker.emit({ type: 'task', task: 'job_1.0', ok: true, ms: 12, restMs: 12 });
    worker.emit({ type: 'task', task: 'job_1.1', ok: false, ms: 3, restMs: 3 });
    for (let i = 0; i < 3; i++) worker.emit({ type: 'receipt', receipt: receipt('0.1', `job_1.${i}`) });
    worker.emit({ type: 'receipt', receipt: receipt('not a number') });
    const s = grid.stats();
    assert.equal(s.tasksDone, 1);
    assert.equal(s.tasksFailed, 1);
    assert.equal(s.busyMs, 15);
    assert.equal(s.credits, '0.3');
    assert.equal(tasks.length, 2);
    assert.deepEqual(credits.map((c) => [c.credits, c.total]), [['0.1', '0.1'], ['0.1', '0.2'], ['0.1', '0.3']]);
  });

  test('setMaxUtilization throttles a running worker', async () => {
    const grid = await connect();
    await grid.start();
    grid.setMaxUtilization(0.1);
    assert.deepEqual(FakeWorker.all[0].posted.at(-1), { type: 'throttle', maxUtilization: 0.1 });
    assert.throws(() => grid.setMaxUtilization(2), RangeError);
    assert.equal(grid.maxUtilization, 0.1);
  });

  test('stop asks the worker to stop and terminates it when it has', async () => {
    const grid = await connect();
    await grid.start();
    const [worker] = FakeWorker.all;
    worker.emit({ type: 'state', state: 'running' });
    grid.stop();
    assert.equal(grid.state, 'stopped');
    assert.equal(worker.posted.at(-1).type, 'stop');
    assert.equal(worker.terminated, false);
    worker.emit({ type: 'receipt', receipt: receipt('1') }); // verified before the stop: still counts
    worker.emit({ type: 'state', state: 'stopped' });
    assert.equal(worker.terminated, true);
    assert.equal(grid.stats().credits, '1');
    assert.equal(grid.state, 'stopped');
  });

  test('a worker that fails to load puts the grid in error', async () => {
    const grid = await connect();
    const errors = record(grid, 'error');
    await grid.start();
    const [worker] = FakeWorker.all;
    worker.dispatchEvent(Object.assign(new Event('error'), { message: 'failed to fetch' }));
    assert.equal(grid.state, 'error');
    assert.match(grid.stats().detail, /failed to fetch/);
    assert.equal(errors.length, 1);
    assert.equal(worker.terminated, true);
  });

  test('the worker reporting no WebGPU ends as unsupported', async () => {
    const grid = await connect();
    await grid.start();
    FakeWorker.all[0].emit({ type: 'state', state: 'unsupported', detail: 'no adapter in workers' });
    assert.equal(grid.state, 'unsupported');
    assert.equal(FakeWorker.all[0].terminated, true);
  });
});

describe('pauses', () => {
  test('hidden and user pauses combine; each lifts only its own', async () => {
    const grid = await connect();
    await grid.start();
    const [worker] = FakeWorker.all;
    worker.emit({ type: 'state', state: 'running' });

    grid.pause();
    assert.equal(grid.state, 'paused');
    doc.setHidden(true);
    grid.resume();
    assert.equal(grid.state, 'paused', 'still hidden');
    assert.deepEqual(grid.stats().pausedBy, ['hidden']);
    doc.setHidden(false);
    assert.equal(grid.state, 'running');
    assert.deepEqual(worker.types(), ['start', 'pause', 'resume']);
  });

  test('a late "running" from the worker does not unpause the grid', async () => {
    const grid = await connect();
    await grid.start();
    const [worker] = FakeWorker.all;
    grid.pause();
    worker.emit({ type: 'state', state: 'running' });
    assert.equal(grid.state, 'paused');
    grid.resume();
    assert.equal(grid.state, 'running');
  });

  test('pauseWhenHidden: false ignores the tab being hidden', async () => {
    const grid = await connect({ pauseWhenHidden: false });
    await grid.start();
    FakeWorker.all[0].emit({ type: 'state', state: 'running' });
    doc.setHidden(true);
    assert.equal(grid.state, 'running');
  });

  test('running on battery pauses until charging again', async () => {
    const battery = Object.assign(new EventTarget(), { charging: false });
    setGlobal('navigator', { gpu: { requestAdapter: async () => ({}) }, getBattery: async () => battery });
    const grid = await connect({ pauseOnBattery: true });
    await grid.start();
    await new Promise((r) => setTimeout(r, 0));
    FakeWorker.all[0].emit({ type: 'state', state: 'running' });
    assert.equal(grid.state, 'paused');
    assert.deepEqual(grid.stats().pausedBy, ['battery']);
    battery.charging = true;
    battery.dispatchEvent(new Event('chargingchange'));
    assert.equal(grid.state, 'running');
  });
});

describe('consent', () => {
  test('a remembered yes starts without asking', async () => {
    storage.setItem(`hyphae.consent.v1 ${RELAY}`, JSON.stringify({ answer: 'granted', at: 1 }));
    const grid = await connect({ consent: 'ask' });
    assert.equal(grid.consent, 'granted');
    assert.equal(await grid.start(), 'starting');
    assert.equal(FakeWorker.all.length, 1);
  });

  test('a remembered no is not asked again outside a user gesture', async () => {
    storage.setItem(`hyphae.consent.v1 ${RELAY}`, JSON.stringify({ answer: 'declined', at: 1 }));
    const grid = await connect({ consent: 'ask' });
    assert.equal(await grid.start(), 'declined');
    assert.equal(FakeWorker.all.length, 0);
  });

  test('revokeConsent forgets the answer and stops', async () => {
    storage.setItem(`hyphae.consent.v1 ${RELAY}`, JSON.stringify({ answer: 'granted', at: 1 }));
    const grid = await connect({ consent: 'ask' });
    await grid.start();
    grid.revokeConsent();
    assert.equal(grid.consent, null);
    assert.equal(storage.getItem(`hyphae.consent.v1 ${RELAY}`), null);
    assert.equal(grid.state, 'stopped');
    assert.equal(FakeWorker.all[0].posted.at(-1).type, 'stop');
  });

  test('answers are kept per relay', async () => {
    storage.setItem(`hyphae.consent.v1 ${RELAY}`, JSON.stringify({ answer: 'granted', at: 1 }));
    const other = await connect({ consent: 'ask', relay: 'http://other.test' });
    assert.equal(other.consent, null);
  });
});

describe('cross-origin', () => {
  test('a worker script on another origin starts through a same-origin blob', async () => {
    const grid = await connect({ workerUrl: `${RELAY}/sdk/worker.js` });
    await grid.start();
    const [worker] = FakeWorker.all;
    assert.match(worker.url, /^blob:/);
    assert.equal(worker.options.type, 'module');
  });
});
