// Types of the hyphae SDK (src/hyphae.js). Served at /sdk/hyphae.d.ts by the relay.

/** A `0x`-prefixed, 40-hex-digit Ethereum-style address (EIP-55 case from the relay). */
export type Address = `0x${string}`;

/** A credit amount as the relay writes it: a decimal string with at most 6 decimals, e.g. "12.5". */
export type CreditAmount = string;

export type GridState =
  | 'idle' // connected, nothing asked, nothing running
  | 'asking' // the consent prompt is open
  | 'declined' // the visitor said no; nothing runs
  | 'starting' // loading wasm, opening the GPU, loading the key
  | 'connecting' // reaching the relay (also while reconnecting)
  | 'running'
  | 'paused' // by pause(), a hidden tab or battery power: see stats().pausedBy
  | 'stopped'
  | 'unsupported' // no WebGPU here: stats().detail says why
  | 'error'; // stats().detail says what

export type PauseReason = 'user' | 'hidden' | 'battery';

export interface ConnectOptions {
  /** The relay's URL. Default: the origin the SDK was loaded from. */
  relay?: string;
  /** Who earns the credits. Default: this browser's own worker key. */
  beneficiary?: Address | null;
  /** 'ask' (default): the SDK's prompt before any work. 'granted': the site already asked. */
  consent?: 'ask' | 'granted';
  /** Duty-cycle cap, 0 < x ≤ 1. Default 0.5. */
  maxUtilization?: number;
  /**
   * How many model shards the worker keeps loaded at once, 1 to 4 (each takes GPU memory). Default:
   * the worker's own limit (4).
   */
  maxShards?: number;
  /**
   * Let the worker connect directly to other workers (WebRTC) to pass model activations. Default
   * true; false sends them through the relay instead, and the page never creates a peer
   * connection (which would reveal the visitor's local addresses to those workers).
   */
  directConnections?: boolean;
  /** Pause while `document.hidden`. Default true. */
  pauseWhenHidden?: boolean;
  /** Pause while the Battery Status API says the device is not charging. Default true. */
  pauseOnBattery?: boolean;
  /** Where the consent prompt is attached. Default `document.body`. */
  container?: Element | null;
  /** The worker script. Default `./worker.js` next to the SDK; cross-origin is handled. */
  workerUrl?: string | URL;
}

/** The GPU the worker computes on, as wgpu reports it. */
export interface AdapterInfo {
  name: string;
  vendor: number;
  device: number;
  /** `cpu`, `integrated_gpu`, `discrete_gpu`, `virtual_gpu` or `other`. */
  device_type: string;
  /** `browser_webgpu` in a browser. */
  backend: string;
  driver: string;
}

/**
 * A receipt exactly as the relay signed it: EIP-191 over the payload's canonical JSON, or, when
 * signed in a batch, over `hyphae receipt batch <root>` of the Merkle tree `batch` leads up to.
 */
export interface SignedReceipt {
  payload: {
    beneficiary: Address;
    credits: CreditAmount;
    /** Unix seconds. */
    issued_at: number;
    job: string;
    output_sha256: string;
    relay: Address;
    task: string;
    v: number;
    worker: Address;
  };
  /** 65 bytes r‖s‖v, hex. */
  signature: string;
  signer: Address;
  /** Present when the receipt was signed with others under one signature. */
  batch?: {
    /** This receipt's leaf, from 0. */
    index: number;
    leaves: number;
    /** Sibling hashes (hex) from the leaf up, where a level has one. */
    path: string[];
  };
}

export interface StateEvent {
  state: GridState;
  previous: GridState;
  /** Why: the pause reason, the unsupported or error cause, or the worker's own detail. */
  detail?: string;
  pausedBy: PauseReason[];
}

export interface IdentityEvent {
  worker: Address;
  beneficiary: Address;
  adapter: AdapterInfo;
}

export interface TaskStartEvent {
  task: string;
  /** What the task is: `kernel`, or a model shard such as `all-MiniLM-L6-v2 shard 2/3`. */
  work: string | null;
}

export interface TaskEvent {
  task: string;
  ok: boolean;
  /** Execution time. */
  ms: number;
  /** The throttle's rest after it. */
  restMs: number;
}

export interface CreditEvent {
  receipt: SignedReceipt;
  /** This receipt's credits. */
  credits: CreditAmount;
  /** All credits of this grid's receipts since the page loaded, summed exactly. */
  total: CreditAmount;
}

export interface GridErrorEvent {
  message: string;
}

export interface GridEvents {
  state: StateEvent;
  identity: IdentityEvent;
  'task-start': TaskStartEvent;
  task: TaskEvent;
  credit: CreditEvent;
  error: GridErrorEvent;
}

export interface GridStats {
  state: GridState;
  detail?: string;
  pausedBy: PauseReason[];
  worker: Address | null;
  beneficiary: Address | null;
  adapter: AdapterInfo | null;
  relay: string;
  maxUtilization: number;
  currentTask: string | null;
  /** What the current task is (see `TaskStartEvent.work`). */
  currentWork: string | null;
  /** Model shards this browser has run, e.g. `all-MiniLM-L6-v2 shard 2/3`. */
  shards: string[];
  tasksDone: number;
  tasksFailed: number;
  /** Sum of this page's receipts, exact (integer millionths inside). */
  credits: CreditAmount;
  /** Time spent executing tasks. */
  busyMs: number;
  /** Wall time spent in 'running'. */
  activeMs: number;
  /** Unix ms of the first start, or null. */
  since: number | null;
}

export interface Grid {
  readonly state: GridState;
  readonly relay: string;
  /** The configured beneficiary, else this browser's worker key once known. */
  readonly beneficiary: Address | null;
  readonly maxUtilization: number;
  /** The remembered answer for this site and relay ('granted' when connected with consent 'granted'). */
  readonly consent: 'granted' | 'declined' | null;

  /**
   * Asks for consent when needed, then starts the worker; resolves to the state reached once the
   * decision is made. Never rejects. A remembered "no" is asked again only inside a user gesture.
   */
  start(): Promise<GridState>;
  pause(): void;
  resume(): void;
  stop(): void;
  setMaxUtilization(value: number): void;
  /** Forgets the remembered answer for this site and relay, and stops. */
  revokeConsent(): void;
  /** Returns a function that unsubscribes. */
  on<K extends keyof GridEvents>(event: K, listener: (event: GridEvents[K]) => void): () => void;
  off<K extends keyof GridEvents>(event: K, listener: (event: GridEvents[K]) => void): void;
  stats(): GridStats;
}

export declare const Hyphae: {
  /** Checks options and WebGPU and restores the remembered consent; runs nothing. */
  connect(options?: ConnectOptions): Promise<Grid>;
};

/** "12.5" → 12_500_000n. Throws TypeError on anything the relay would not write. */
export declare function parseCredits(text: CreditAmount): bigint;
/** 12_500_000n → "12.5". */
export declare function formatCredits(micros: bigint): CreditAmount;
/** Exact sum of credit amounts. */
export declare function addCredits(...amounts: CreditAmount[]): CreditAmount;
/** The CSS of the SDK's own UI (consent dialog, embed widget). */
export declare const SDK_CSS: string;
