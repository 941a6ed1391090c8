// hyphae browser worker: runs the Rust/wasm worker (`BrowserWorker`, node-wasm/src/wasm.rs)
// inside a module Web Worker, so the page's main thread never does grid work.
//
// Page → worker: {type:'start', relay, beneficiary, maxUtilization, maxShards, rtcHost}, {type:'pause'},
//                {type:'resume'}, {type:'throttle', maxUtilization}, {type:'stop'}, and {type:'rtc', …}
//                from the page holding this worker's peer connections (rtc-host.js).
// Worker → page: the worker's events, {type:'state'|'identity'|'task-start'|'task'|'receipt'|'error'|'rtc', …}
// (documented in sdk-js/README.md).

import init, { BrowserWorker } from '../pkg/hyphae_node.js';

let worker = null;
// Commands that arrive while the wasm module and the GPU are still starting.
const waiting = [];
let starting = false;

const post = (event) => self.postMessage(event);

function apply(command) {
  switch (command.type) {
    case 'pause':
      worker.pause();
      break;
    case 'resume':
      worker.resume();
      break;
    case 'throttle':
      worker.set_max_utilization(Number(command.maxUtilization));
      break;
    case 'stop':
      worker.stop();
      break;
    default:
      post({ type: 'error', message: `unknown command ${JSON.stringify(command.type)}` });
  }
}

// Browsers may hide the adapter's name; vendor and architecture still say what it is.
async function adapterLabel() {
  try {
    const adapter = await self.navigator.gpu.requestAdapter();
    const info = adapter?.info ?? {};
    return info.description || [info.vendor, info.architecture].filter(Boolean).join(' ') || undefined;
  } catch {
    return undefined;
  }
}

async function start(command) {
  if (starting || worker) {
    post({ type: 'error', message: 'already started' });
    return;
  }
  starting = true;
  post({ type: 'state', state: 'starting' });
  try {
    if (!self.navigator.gpu) {
      post({ type: 'state', state: 'unsupported', detail: 'this browser has no WebGPU' });
      return;
    }
    await init();
    worker = await BrowserWorker.start(
      String(command.relay),
      command.beneficiary ? String(command.beneficiary) : undefined,
      Number(command.maxUtilization ?? 1),
      await adapterLabel(),
      Number.isInteger(command.maxShards) ? command.maxShards : undefined,
      command.rtcHost === true,
      post,
    );
  } catch (err) {
    const detail = String(err?.message ?? err);
    const unsupported = /adapter|webgpu|gpu/i.test(detail) && !/relay|refused/i.test(detail);
    post({ type: 'state', state: unsupported ? 'unsupported' : 'error', detail });
    return;
  } finally {
    starting = false;
  }
  for (const command of waiting.splice(0)) apply(command);
}

self.onmessage = (message) => {
  const command = message.data ?? {};
  if (command.type === 'rtc') {
    // About a connection the page holds for us; none exist before the worker has started.
    try {
      worker?.rtc(command);
    } catch (err) {
      post({ type: 'error', message: String(err?.message ?? err) });
    }
  } else if (command.type === 'start') {
    start(command);
  } else if (!worker) {
    waiting.push(command);
  } else {
    apply(command);
  }
};
