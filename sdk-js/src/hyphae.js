// hyphae SDK: lets a web page lend its visitor's GPU to a hyphae relay, with the visitor's consent.
//
// What lives here: `Hyphae.connect` and the `Grid` it returns (consent, start/pause/stop, the duty
// cycle, pausing while hidden or on battery, events, exact credit sums) and the default consent
// dialog. What does not: the computing itself. That is the wasm worker, run by `./worker.js` in a
// module Web Worker and driven over postMessage (protocol in README.md). This module touches no DOM
// and no browser global when it is imported, so it loads in Node for tests.
//
// Invariants: no worker exists before an explicit yes (or `consent: 'granted'`, meaning the site
// asked); credits are summed as integer millionths in BigInt, never as floats.

import { RtcHost } from './rtc-host.js';

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const CREDITS = /^\d+(\.\d{1,6})?$/;
const MICROS = 1_000_000n;
const STORAGE_PREFIX = 'hyphae.consent.v1 ';
const ADAPTER_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 2_000;
const EVENTS = ['state', 'identity', 'task-start', 'task', 'credit', 'error'];

/** Parses a credit amount ("12", "0.5", at most 6 decimals) into integer millionths. */
export function parseCredits(text) {
  if (typeof text !== 'string' || !CREDITS.test(text)) {
    throw new TypeError(`not a credit amount: ${JSON.stringify(text)}`);
  }
  const [whole, frac = ''] = text.split('.');
  return BigInt(whole) * MICROS + BigInt(frac.padEnd(6, '0'));
}

/** Prints integer millionths the way the relay does: "12", "0.5", "12.000001". */
export function formatCredits(micros) {
  const whole = micros / MICROS;
  const frac = micros % MICROS;
  if (frac === 0n) return whole.toString();
  return `${whole}.${frac.toString().padStart(6, '0').replace(/0+$/, '')}`;
}

/** Adds credit amounts given as decimal strings, exactly. */
export function addCredits(...amounts) {
  return formatCredits(amounts.reduce((sum, a) => sum + parseCredits(a), 0n));
}

export class Hyphae {
  /**
   * Prepares a grid connection: checks options and WebGPU (no worker, no network), restores the
   * remembered consent. The returned grid is `idle`, or `unsupported` when this browser cannot
   * compute; nothing runs until `grid.start()`.
   */
  static async connect(options = {}) {
    const grid = new Grid(options);
    await grid._init();
    return grid;
  }
}

export class Grid {
  #options;
  #listeners = new Map(EVENTS.map((e) => [e, new Set()]));
  // What the grid is doing: 'idle' | 'asking' | 'declined' | 'worker' | 'stopped' |
  // 'unsupported' | 'error'. In 'worker', the public state comes from the worker and the pauses.
  #phase = 'idle';
  #workerState = 'starting';
  #detail = undefined;
  #emitted = { state: 'idle', detail: undefined };
  #unsupported = null;
  #pauses = new Set();
  #worker = null;
  #workerCleanup = null;
  /** Holds the worker's peer connections (workers have no RTCPeerConnection). */
  #rtc = null;
  #prompt = null;
  #memory = null; // consent answer when localStorage is unavailable
  #identity = { worker: null, beneficiary: null, adapter: null };
  #currentTask = null;
  #currentWork = null;
  // Model shards this browser has run ("all-MiniLM-L6-v2 shard 2/3"), in the order first seen.
  #shards = [];
  #counts = { tasksDone: 0, tasksFailed: 0, busyMs: 0, activeMs: 0 };
  #credits = 0n;
  #runningSince = null;
  #since = null;

  constructor(options) {
    this.#options = normalizeOptions(options);
  }

  async _init() {
    this.#unsupported = await checkWebGPU();
    if (this.#unsupported) {
      this.#phase = 'unsupported';
      this.#detail = this.#unsupported;
    }
    this.#watchConditions();
    this.#refresh();
  }

  /** The relay this grid works for, e.g. "https://relay.example". */
  get relay() {
    return this.#options.relay;
  }

  /** Who earns: the configured beneficiary, else this browser's worker key once known, else null. */
  get beneficiary() {
    return this.#options.beneficiary ?? this.#identity.beneficiary;
  }

  /** The current state; see README.md for what each means. */
  get state() {
    return this.#emitted.state;
  }

  /** The duty-cycle cap, 0 < x ≤ 1. */
  get maxUtilization() {
    return this.#options.maxUtilization;
  }

  /** The remembered answer for this site and relay: 'granted', 'declined' or null (never asked). */
  get consent() {
    if (this.#options.consent === 'granted') return 'granted';
    return this.#readConsent();
  }

  /**
   * Starts contributing: asks for consent when needed, then starts the worker. Resolves to the
   * state reached once the decision is made ('starting', 'declined', 'unsupported', …); never
   * rejects. A remembered "no" is asked again only when start() runs inside a user gesture (the
   * visitor clicked something); called by itself, it stays declined.
   */
  async start() {
    if (this.#phase === 'worker' || this.#phase === 'asking') return this.state;
    if (this.#unsupported) {
      this.#phase = 'unsupported';
      this.#detail = this.#unsupported;
      this.#refresh(true);
      return this.state;
    }
    if (this.#options.consent !== 'granted') {
      const remembered = this.#readConsent();
      const gesture = globalThis.navigator?.userActivation?.isActive ?? true;
      if (remembered === 'declined' && !gesture) {
        this.#setPhase('declined');
        return this.state;
      }
      if (remembered !== 'granted') {
        const yes = await this.#ask();
        if (yes === null) return this.state; // withdrawn by stop() or revokeConsent()
        this.#writeConsent(yes ? 'granted' : 'declined');
        if (!yes) {
          this.#setPhase('declined');
          return this.state;
        }
      }
    }
    this.#spawn();
    return this.state;
  }

  /** Pauses until resume(). Pauses for a hidden tab or battery keep going on their own. */
  pause() {
    this.#setPause('user', true);
  }

  /** Lifts pause(); still paused while hidden or on battery when those options are on. */
  resume() {
    this.#setPause('user', false);
  }

  /** Stops the worker (it finishes nothing further) and releases the GPU. */
  stop() {
    if (this.#phase === 'asking') {
      this.#closePrompt(null);
      this.#setPhase('idle');
      return;
    }
    if (this.#phase !== 'worker') return;
    this.#endWorker();
    this.#setPhase('stopped');
  }

  /** Sets the duty-cycle cap (0 < x ≤ 1), at once when running. */
  setMaxUtilization(value) {
    this.#options.maxUtilization = checkUtilization(value);
    this.#post({ type: 'throttle', maxUtilization: this.#options.maxUtilization });
  }

  /** Forgets the remembered answer for this site and relay, and stops. */
  revokeConsent() {
    this.#writeConsent(null);
    if (this.#phase === 'worker' || this.#phase === 'asking') this.stop();
    else if (this.#phase === 'declined') this.#setPhase('idle');
  }

  /** Listens to 'state', 'identity', 'task-start', 'task', 'credit' or 'error'; returns an unsubscribe. */
  on(event, fn) {
    this.#listenersOf(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this.#listenersOf(event).delete(fn);
  }

  /** A snapshot of what this grid has done since the page loaded. */
  stats() {
    const running = this.#runningSince === null ? 0 : now() - this.#runningSince;
    return {
      state: this.state,
      detail: this.#emitted.detail,
      pausedBy: [...this.#pauses],
      worker: this.#identity.worker,
      beneficiary: this.beneficiary,
      adapter: this.#identity.adapter,
      relay: this.relay,
      maxUtilization: this.#options.maxUtilization,
      currentTask: this.#currentTask,
      currentWork: this.#currentWork,
      shards: [...this.#shards],
      tasksDone: this.#counts.tasksDone,
      tasksFailed: this.#counts.tasksFailed,
      credits: formatCredits(this.#credits),
      busyMs: this.#counts.busyMs,
      activeMs: this.#counts.activeMs + running,
      since: this.#since,
    };
  }

  // --- consent -------------------------------------------------------------------------------

  #storageKey() {
    return STORAGE_PREFIX + this.#options.relay;
  }

  #readConsent() {
    try {
      const raw = globalThis.localStorage?.getItem(this.#storageKey());
      if (raw == null) return this.#memory;
      const answer = JSON.parse(raw).answer;
      return answer === 'granted' || answer === 'declined' ? answer : null;
    } catch {
      return this.#memory;
    }
  }

  #writeConsent(answer) {
    this.#memory = answer;
    try {
      const storage = globalThis.localStorage;
      if (!storage) return;
      if (answer === null) storage.removeItem(this.#storageKey());
      else storage.setItem(this.#storageKey(), JSON.stringify({ answer, at: Date.now() }));
    } catch {
      // Storage disabled (private mode, sandboxed frame): the answer lasts as long as the page.
    }
  }

  /** Shows the prompt; resolves true (yes), false (no) or null (withdrawn before an answer). */
  #ask() {
    this.#setPhase('asking');
    return new Promise((resolve) => {
      this.#prompt = showConsentDialog({
        container: this.#options.container,
        relay: this.#options.relay,
        beneficiary: this.#options.beneficiary,
        maxUtilization: this.#options.maxUtilization,
        pauseWhenHidden: this.#options.pauseWhenHidden,
        pauseOnBattery: this.#options.pauseOnBattery,
        onAnswer: (yes) => {
          this.#prompt = null;
          resolve(yes);
        },
      });
    });
  }

  #closePrompt(answer) {
    const prompt = this.#prompt;
    this.#prompt = null;
    prompt?.close(answer);
  }

  // --- the worker ------------------------------------------------------------------------------

  #spawn() {
    let worker;
    try {
      worker = createWorker(this.#options.workerUrl);
    } catch (e) {
      this.#fail(`could not start the worker: ${message(e)}`);
      return;
    }
    this.#worker = worker;
    this.#rtc = this.#options.directConnections && RtcHost.supported() ? new RtcHost(worker) : null;
    this.#workerState = 'starting';
    this.#detail = undefined;
    this.#since ??= Date.now();
    const onMessage = (event) => this.#onWorkerMessage(worker, event.data);
    const onError = (event) => {
      event.preventDefault?.();
      if (this.#worker === worker) this.#fail(`the worker failed: ${event.message || 'could not load it'}`);
    };
    const onMessageError = () => this.#emit('error', { message: 'a message from the worker could not be read' });
    worker.addEventListener('message', onMessage);
    worker.addEventListener('error', onError);
    worker.addEventListener('messageerror', onMessageError);
    this.#workerCleanup = () => {
      worker.removeEventListener('message', onMessage);
      worker.removeEventListener('error', onError);
      worker.removeEventListener('messageerror', onMessageError);
    };
    this.#setPhase('worker');
    worker.postMessage({
      type: 'start',
      relay: this.#options.relay,
      beneficiary: this.#options.beneficiary,
      maxUtilization: this.#options.maxUtilization,
      maxShards: this.#options.maxShards,
      rtcHost: this.#rtc !== null,
    });
    if (this.#pauses.size > 0) worker.postMessage({ type: 'pause' });
  }

  #post(message) {
    this.#worker?.postMessage(message);
  }

  /**
   * Asks the worker to stop and terminates it once it says so or after a grace period; at once
   * when `immediately` (the worker already stopped, failed or cannot run).
   */
  #endWorker(immediately = false) {
    const worker = this.#worker;
    if (!worker) return;
    this.#worker = null;
    this.#rtc?.close();
    this.#rtc = null;
    const cleanup = this.#workerCleanup;
    this.#workerCleanup = null;
    this.#currentTask = null;
    let done = false;
    let grace = null;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(grace);
      cleanup?.();
      worker.removeEventListener('message', late);
      worker.terminate();
      worker._hyphaeRevoke?.();
    };
    // Receipts for work already verified may still arrive while the worker closes; they count.
    const late = (event) => {
      const data = event.data;
      if (data?.type === 'receipt') this.#onReceipt(data.receipt);
      if (data?.type === 'state' && data.state === 'stopped') finish();
    };
    cleanup?.();
    if (immediately) {
      finish();
      return;
    }
    worker.addEventListener('message', late);
    try {
      worker.postMessage({ type: 'stop' });
    } catch {
      finish();
      return;
    }
    grace = setTimeout(finish, STOP_GRACE_MS);
  }

  #onWorkerMessage(worker, data) {
    if (worker !== this.#worker || !data || typeof data !== 'object') return;
    switch (data.type) {
      case 'state':
        return this.#onWorkerState(data.state, data.detail);
      case 'identity':
        this.#identity = {
          worker: data.worker ?? null,
          beneficiary: data.beneficiary ?? null,
          adapter: data.adapter ?? null,
        };
        return this.#emit('identity', { ...this.#identity });
      case 'task-start': {
        this.#currentTask = data.task ?? null;
        this.#currentWork = typeof data.work === 'string' ? data.work : null;
        if (this.#currentWork && this.#currentWork !== 'kernel' && !this.#shards.includes(this.#currentWork)) {
          this.#shards.push(this.#currentWork);
        }
        return this.#emit('task-start', { task: this.#currentTask, work: this.#currentWork });
      }
      case 'task': {
        this.#currentTask = null;
        if (data.ok) this.#counts.tasksDone += 1;
        else this.#counts.tasksFailed += 1;
        const ms = finite(data.ms);
        this.#counts.busyMs += ms;
        return this.#emit('task', { task: data.task, ok: Boolean(data.ok), ms, restMs: finite(data.restMs) });
      }
      case 'receipt':
        return this.#onReceipt(data.receipt);
      case 'error':
        return this.#emit('error', { message: String(data.message ?? 'unknown error') });
      case 'rtc':
        return this.#rtc?.handle(data);
      default:
        return undefined;
    }
  }

  #onWorkerState(state, detail) {
    switch (state) {
      case 'starting':
      case 'connecting':
      case 'running':
        this.#workerState = state;
        this.#detail = detail;
        return this.#refresh();
      case 'paused':
        return undefined; // an acknowledgement: the grid already shows its own pauses
      case 'stopped':
        this.#endWorker(true);
        return this.#setPhase('stopped');
      case 'unsupported':
        this.#endWorker(true);
        this.#unsupported = detail || 'this browser cannot run the worker';
        this.#detail = this.#unsupported;
        return this.#setPhase('unsupported');
      case 'error':
        return this.#fail(detail || 'the worker stopped with an error');
      default:
        return undefined;
    }
  }

  #onReceipt(receipt) {
    let micros;
    try {
      micros = parseCredits(receipt?.payload?.credits);
    } catch (e) {
      this.#emit('error', { message: `ignored a receipt: ${message(e)}` });
      return;
    }
    this.#credits += micros;
    this.#emit('credit', { receipt, credits: formatCredits(micros), total: formatCredits(this.#credits) });
  }

  #fail(detail) {
    this.#endWorker(true);
    this.#detail = detail;
    this.#setPhase('error');
    this.#emit('error', { message: detail });
  }

  // --- pauses ----------------------------------------------------------------------------------

  #setPause(reason, on) {
    const before = this.#pauses.size > 0;
    if (on) this.#pauses.add(reason);
    else this.#pauses.delete(reason);
    const after = this.#pauses.size > 0;
    if (before !== after) this.#post({ type: after ? 'pause' : 'resume' });
    this.#refresh();
  }

  #watchConditions() {
    const doc = globalThis.document;
    if (this.#options.pauseWhenHidden && doc) {
      const sync = () => this.#setPause('hidden', doc.hidden === true);
      doc.addEventListener('visibilitychange', sync);
      sync();
    }
    const nav = globalThis.navigator;
    if (this.#options.pauseOnBattery && typeof nav?.getBattery === 'function') {
      nav.getBattery().then(
        (battery) => {
          const sync = () => this.#setPause('battery', battery.charging === false);
          battery.addEventListener('chargingchange', sync);
          sync();
        },
        () => {}, // refused (permissions policy): nothing to watch
      );
    }
  }

  // --- state -----------------------------------------------------------------------------------

  #setPhase(phase) {
    this.#phase = phase;
    if (phase !== 'worker' && phase !== 'error' && phase !== 'unsupported') this.#detail = undefined;
    this.#refresh();
  }

  /** Recomputes the public state and emits 'state' when it (or its detail) changed. */
  #refresh(force = false) {
    let state = this.#phase;
    let detail = this.#detail;
    if (this.#phase === 'worker') {
      if (this.#pauses.size > 0) {
        state = 'paused';
        detail = [...this.#pauses][0];
      } else {
        state = this.#workerState;
      }
    }
    const previous = this.#emitted;
    if (!force && previous.state === state && previous.detail === detail) return;
    if (previous.state === 'running' && state !== 'running' && this.#runningSince !== null) {
      this.#counts.activeMs += now() - this.#runningSince;
      this.#runningSince = null;
    }
    if (state === 'running' && this.#runningSince === null) this.#runningSince = now();
    this.#emitted = { state, detail };
    this.#emit('state', { state, previous: previous.state, detail, pausedBy: [...this.#pauses] });
  }

  #listenersOf(event) {
    const set = this.#listeners.get(event);
    if (!set) throw new TypeError(`unknown event ${JSON.stringify(event)}; expected one of ${EVENTS.join(', ')}`);
    return set;
  }

  #emit(event, payload) {
    for (const fn of [...this.#listeners.get(event)]) {
      try {
        fn(payload);
      } catch (e) {
        // One broken listener must not stop the others or the grid.
        console.error(`hyphae: a '${event}' listener threw`, e);
      }
    }
  }
}

// --- helpers -------------------------------------------------------------------------------------

function normalizeOptions(options) {
  if (options === null || typeof options !== 'object') throw new TypeError('Hyphae.connect expects an options object');
  const sdkUrl = new URL(import.meta.url);
  const relayUrl = new URL(options.relay ?? sdkUrl.origin, globalThis.location?.href ?? sdkUrl);
  if (relayUrl.protocol !== 'http:' && relayUrl.protocol !== 'https:') {
    throw new TypeError(`relay must be an http(s) URL, got ${JSON.stringify(options.relay)}`);
  }
  const relay = (relayUrl.origin + relayUrl.pathname).replace(/\/+$/, '');
  const beneficiary = options.beneficiary ?? null;
  if (beneficiary !== null && !(typeof beneficiary === 'string' && ADDRESS.test(beneficiary))) {
    throw new TypeError(`beneficiary must be a 0x address of 40 hex digits, got ${JSON.stringify(beneficiary)}`);
  }
  const consent = options.consent ?? 'ask';
  if (consent !== 'ask' && consent !== 'granted') {
    throw new TypeError(`consent must be 'ask' or 'granted', got ${JSON.stringify(consent)}`);
  }
  return {
    relay,
    beneficiary,
    consent,
    maxUtilization: checkUtilization(options.maxUtilization ?? 0.5),
    maxShards: checkShards(options.maxShards ?? null),
    directConnections: options.directConnections ?? true,
    pauseWhenHidden: options.pauseWhenHidden ?? true,
    pauseOnBattery: options.pauseOnBattery ?? true,
    container: options.container ?? null,
    workerUrl: new URL(options.workerUrl ?? './worker.js', import.meta.url).href,
  };
}

function checkShards(value) {
  if (value !== null && !(Number.isInteger(value) && value >= 1 && value <= 4)) {
    throw new RangeError(`maxShards must be an integer from 1 to 4, got ${value}`);
  }
  return value;
}

function checkUtilization(value) {
  if (typeof value !== 'number' || !(value > 0 && value <= 1)) {
    throw new RangeError(`maxUtilization must be a number with 0 < x ≤ 1, got ${value}`);
  }
  return value;
}

/** Null when WebGPU can run here, else why not (in words for the visitor). */
async function checkWebGPU() {
  const gpu = globalThis.navigator?.gpu;
  if (!gpu) {
    return globalThis.isSecureContext === false
      ? 'WebGPU needs a secure page (https)'
      : 'this browser does not offer WebGPU';
  }
  let timer;
  try {
    const adapter = await Promise.race([
      gpu.requestAdapter(),
      new Promise((resolve) => {
        timer = setTimeout(() => resolve(undefined), ADAPTER_TIMEOUT_MS);
      }),
    ]);
    if (adapter === undefined) return 'the GPU did not answer';
    if (adapter === null) return 'WebGPU is present but found no usable GPU';
    return null;
  } catch (e) {
    return `WebGPU failed: ${message(e)}`;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A module worker from `url`. Browsers refuse a cross-origin worker script, so when the SDK is
 * served by a relay on another origin the worker starts from a same-origin blob that imports it
 * (the relay answers with permissive CORS headers).
 */
function createWorker(url) {
  const target = new URL(url);
  if (target.origin === globalThis.location?.origin) return new Worker(target, { type: 'module', name: 'hyphae' });
  const source = `import ${JSON.stringify(target.href)};`;
  const blobUrl = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  const worker = new Worker(blobUrl, { type: 'module', name: 'hyphae' });
  worker._hyphaeRevoke = () => URL.revokeObjectURL(blobUrl);
  return worker;
}

function finite(x) {
  return Number.isFinite(x) && x > 0 ? x : 0;
}

function message(e) {
  return e instanceof Error ? e.message : String(e);
}

function now() {
  return globalThis.performance?.now() ?? Date.now();
}

function shortAddress(address) {
  return `${address.slice(0, 6)}…${address.slice(-4)}`;
}

// --- the consent dialog ----------------------------------------------------------------------------

const STYLE_ID = 'hyphae-sdk-style';

/**
 * Styles for the SDK's own UI (the consent dialog, and the embed widget in embed.js), scoped under
 * `.hyphae-*` classes with enough specificity to survive a host page's element rules. A page can
 * tune them with `--hyphae-accent`, `--hyphae-bg`, `--hyphae-fg`, `--hyphae-muted`, `--hyphae-border`.
 */
export const SDK_CSS = `
.hyphae-ui{--h-accent:var(--hyphae-accent,#1d6b57);--h-on-accent:var(--hyphae-on-accent,#fff);
--h-bg:var(--hyphae-bg,#fff);--h-fg:var(--hyphae-fg,#1c2320);--h-muted:var(--hyphae-muted,#56605b);
--h-border:var(--hyphae-border,#d9ddd9);--h-soft:var(--hyphae-soft,#eef4f1);--h-ring:var(--hyphae-ring,#1d6b57);
color-scheme:light dark;font:400 16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;
color:var(--h-fg);text-align:left;letter-spacing:normal;text-transform:none}
@media (prefers-color-scheme:dark){.hyphae-ui{--h-accent:var(--hyphae-accent,#7dd3b4);--h-on-accent:var(--hyphae-on-accent,#0c1a15);
--h-bg:var(--hyphae-bg,#1a201e);--h-fg:var(--hyphae-fg,#e6ebe8);--h-muted:var(--hyphae-muted,#a7b1ac);
--h-border:var(--hyphae-border,#38423e);--h-soft:var(--hyphae-soft,#223029);--h-ring:var(--hyphae-ring,#7dd3b4)}}
.hyphae-ui *,.hyphae-ui *::before,.hyphae-ui *::after{box-sizing:border-box}
dialog.hyphae-consent{background:var(--h-bg);border:1px solid var(--h-border);border-radius:14px;padding:0;margin:auto;
width:min(34rem,calc(100vw - 2rem));max-height:calc(100dvh - 2rem);overflow:auto;box-shadow:0 20px 60px rgb(0 0 0/.28)}
dialog.hyphae-consent::backdrop{background:rgb(10 16 14/.55)}
@media (prefers-reduced-motion:no-preference){dialog.hyphae-consent[open]{animation:hyphae-in .16s ease-out}
@keyframes hyphae-in{from{opacity:0;transform:translateY(6px)}}}
.hyphae-consent .hyphae-body{padding:1.5rem 1.5rem 1.25rem}
.hyphae-consent h2.hyphae-title{font-family:inherit;font-size:1.25rem;font-weight:650;line-height:1.3;margin:0 0 .75rem;color:var(--h-fg);letter-spacing:normal}
.hyphae-consent p.hyphae-text{margin:0 0 .75rem;color:var(--h-fg)}
.hyphae-consent ul.hyphae-points{margin:0 0 1rem;padding:0 0 0 1.25rem;color:var(--h-fg)}
.hyphae-consent ul.hyphae-points li{margin:.35rem 0;padding:0}
.hyphae-consent p.hyphae-note{margin:0;font-size:.875rem;color:var(--h-muted)}
.hyphae-consent code.hyphae-code,.hyphae-widget code.hyphae-code{font:.9em/1 ui-monospace,"SF Mono","Cascadia Mono","DejaVu Sans Mono",Menlo,Consolas,monospace;
background:var(--h-soft);padding:.1em .3em;border-radius:4px;word-break:break-all}
.hyphae-consent .hyphae-actions{display:flex;flex-wrap:wrap;gap:.75rem;justify-content:flex-end;padding:1rem 1.5rem 1.5rem;
border-top:1px solid var(--h-border)}
.hyphae-ui button.hyphae-btn{font-family:inherit;font-size:1rem;font-weight:600;line-height:1.2;min-height:44px;padding:.65rem 1.1rem;border-radius:10px;
cursor:pointer;border:1px solid var(--h-border);background:var(--h-bg);color:var(--h-fg);margin:0;text-transform:none;box-shadow:none}
.hyphae-ui button.hyphae-btn:hover{background:var(--h-soft)}
.hyphae-ui button.hyphae-btn.hyphae-primary{background:var(--h-accent);border-color:var(--h-accent);color:var(--h-on-accent)}
.hyphae-ui button.hyphae-btn.hyphae-primary:hover{filter:brightness(1.08)}
.hyphae-ui button.hyphae-btn:disabled{opacity:.55;cursor:not-allowed}
.hyphae-ui button.hyphae-btn:focus-visible,.hyphae-ui a:focus-visible{outline:3px solid var(--h-ring);outline-offset:2px}
`;

function injectStyle() {
  const doc = globalThis.document;
  if (!doc || doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement('style');
  style.id = STYLE_ID;
  style.textContent = SDK_CSS;
  (doc.head ?? doc.documentElement).append(style);
}

/**
 * The default consent prompt: a native modal <dialog> (the rest of the page is inert while it is
 * open), labelled and described, focus starting on "Not now" so that an Enter pressed by mistake
 * does not say yes, Tab kept inside, Escape meaning no. Returns `{ close(answer) }`.
 */
function showConsentDialog({ container, relay, beneficiary, maxUtilization, pauseWhenHidden, pauseOnBattery, onAnswer }) {
  const doc = globalThis.document;
  injectStyle();
  const previousFocus = doc.activeElement;
  const percent = Math.round(maxUtilization * 100);
  const relayHost = new URL(relay).host;
  const pauses = [pauseWhenHidden && 'while this tab is hidden', pauseOnBattery && 'while your device runs on battery']
    .filter(Boolean)
    .join(' and ');

  const el = (tag, props = {}, ...children) => {
    const node = doc.createElement(tag);
    Object.assign(node, props);
    node.append(...children);
    return node;
  };
  const code = (text) => el('code', { className: 'hyphae-code', textContent: text });

  const dialog = el('dialog', { className: 'hyphae-ui hyphae-consent' });
  dialog.setAttribute('role', 'dialog');
  dialog.setAttribute('aria-modal', 'true');
  dialog.setAttribute('aria-labelledby', 'hyphae-consent-title');
  dialog.setAttribute('aria-describedby', 'hyphae-consent-desc');

  const earner = beneficiary
    ? ['Credits for verified work go to the address ', code(shortAddress(beneficiary)), '.']
    : ['Credits for verified work go to you: your browser keeps a key of its own, and the signed receipts name it.'];
  const beneficiaryLine = el('span', beneficiary ? { title: beneficiary } : {}, ...earner);

  const no = el('button', { type: 'button', id: 'consent-no', className: 'hyphae-btn', textContent: 'Not now' });
  const yes = el('button', { type: 'button', id: 'consent-yes', className: 'hyphae-btn hyphae-primary', textContent: 'Yes, contribute' });

  dialog.append(
    el(
      'div',
      { className: 'hyphae-body' },
      el('h2', { id: 'hyphae-consent-title', className: 'hyphae-title', textContent: 'Lend your GPU to open AI?' }),
      el(
        'p',
        { id: 'hyphae-consent-desc', className: 'hyphae-text' },
        'If you say yes, this tab runs small computations on your graphics card (GPU) for open AI projects, sent by the hyphae relay at ',
        code(relayHost),
        '. Other volunteers run the same work, and a result only counts when they agree.',
      ),
      el(
        'ul',
        { className: 'hyphae-points' },
        el('li', {}, `It uses your GPU at most ${percent}% of the time${pauses ? `, and pauses ${pauses}` : ''}.`),
        el('li', {}, 'You can pause or stop it at any time. Closing the tab stops it too.'),
        el('li', {}, beneficiaryLine),
        el('li', {}, 'Your browser stores a random key to sign the work. The relay sees your GPU model and your IP address; nothing else on your device is read.'),
      ),
      el('p', { className: 'hyphae-note', textContent: 'Nothing runs until you answer. This site remembers your answer, and you can change it later.' }),
    ),
    el('div', { className: 'hyphae-actions' }, no, yes),
  );

  let settled = false;
  const close = (answer) => {
    if (settled) return;
    settled = true;
    dialog.removeEventListener('keydown', onKeydown);
    dialog.removeEventListener('cancel', onCancel);
    if (dialog.open) dialog.close();
    dialog.remove();
    if (previousFocus && typeof previousFocus.focus === 'function' && previousFocus.isConnected) previousFocus.focus();
    onAnswer(answer);
  };
  const onCancel = (event) => {
    event.preventDefault();
    close(false);
  };
  const onKeydown = (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      close(false);
    } else if (event.key === 'Tab') {
      // The browser would let Tab leave a modal dialog for its own toolbar; keep it on the buttons.
      const focusables = [...dialog.querySelectorAll('button, a[href], input, select, textarea, [tabindex]:not([tabindex="-1"])')]
        .filter((n) => !n.disabled);
      const first = focusables[0];
      const last = focusables.at(-1);
      if (event.shiftKey && (doc.activeElement === first || !dialog.contains(doc.activeElement))) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && (doc.activeElement === last || !dialog.contains(doc.activeElement))) {
        event.preventDefault();
        first.focus();
      }
    }
  };
  no.addEventListener('click', () => close(false));
  yes.addEventListener('click', () => close(true));
  dialog.addEventListener('keydown', onKeydown);
  dialog.addEventListener('cancel', onCancel);

  const host = container?.isConnected ? container : doc.body;
  host.append(dialog);
  dialog.showModal();
  no.focus();
  return { close };
}
