// The donate page: one Grid from the SDK, the live panel that mirrors it, the visitor's receipts
// and account, and a glance at the whole grid. Test hooks: window.hyphaeGrid and the element ids
// listed in sdk-js/README.md.

import { formatCredits, formatInt, getJson, poll, setText, shortAddress, fillRelayInfo } from '/assets/common.js';

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const UTILIZATION_KEY = 'hyphae.site.maxUtilization';
const ACTIVE = new Set(['starting', 'connecting', 'running', 'paused']);
const MAX_RECEIPTS = 6;

const $ = (id) => document.getElementById(id);
const ui = {
  contribute: $('contribute'),
  panel: $('panel'),
  contributeHint: $('contribute-hint'),
  state: $('state'),
  stateLabel: $('state-label'),
  stateDetail: $('state-detail'),
  adapter: $('adapter'),
  tasksDone: $('tasks-done'),
  credits: $('credits'),
  accountEarned: $('account-earned'),
  utilization: $('utilization'),
  utilizationValue: $('utilization-value'),
  pause: $('pause'),
  stop: $('stop'),
  revoke: $('revoke'),
  note: $('panel-note'),
  receipts: $('receipts'),
  receiptsLinks: $('receipts-links'),
  earnerLine: $('earner-line'),
  earnerDetails: $('earner-details'),
  beneficiaryInput: $('beneficiary-input'),
  earnerForm: $('earner-form'),
};

const LABELS = {
  idle: 'Not started',
  asking: 'Waiting for your answer',
  declined: 'Not running: you said no',
  starting: 'Starting',
  connecting: 'Connecting to the relay',
  running: 'Running',
  paused: 'Paused',
  stopped: 'Stopped',
  unsupported: 'This browser cannot contribute',
  error: 'Something went wrong',
};

function detailFor(stats) {
  const percent = Math.round(stats.maxUtilization * 100);
  switch (stats.state) {
    case 'idle':
      return 'Press Contribute to begin.';
    case 'asking':
      return 'Answer the question on screen to go on.';
    case 'declined':
      return 'Nothing runs. Press Contribute if you change your mind.';
    case 'starting':
      return 'Loading the worker and opening your GPU.';
    case 'connecting':
      return 'Reaching the relay to ask for work.';
    case 'running':
      return `Working at most ${percent}% of the time. Tasks arrive whenever the grid has work.`;
    case 'paused':
      if (stats.pausedBy.includes('user')) return 'Paused by you. Press Resume to go on.';
      if (stats.pausedBy.includes('battery')) return 'Paused while your device runs on battery. It goes on when you plug in.';
      return 'Paused while this tab is hidden. It goes on when you come back.';
    case 'stopped':
      return 'Your GPU is free again. Receipts you earned stay valid.';
    case 'unsupported':
      return `${capitalize(stats.detail ?? 'WebGPU is missing')}. Contributing needs WebGPU, which recent Chrome, Edge and Safari offer on most computers.`;
    case 'error':
      return `${capitalize(stats.detail ?? 'unknown error')}. Press Contribute to try again.`;
    default:
      return '';
  }
}

function capitalize(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** "job_0185b3dbf847206442075a72.2" → "job_0185b3db…5a72.2": the task number stays readable. */
function shortTask(id) {
  const dot = id.lastIndexOf('.');
  if (id.length <= 22 || dot < 0) return id;
  return `${id.slice(0, 12)}…${id.slice(Math.max(12, dot - 4))}`;
}

function adapterText(adapter) {
  if (!adapter) return null;
  const name = adapter.name || adapter.driver || 'Your GPU';
  const kind = adapter.device_type ? adapter.device_type.replaceAll('_', ' ') : '';
  return kind && kind !== 'other' ? `${name} (${kind})` : name;
}

// --- setup ---------------------------------------------------------------------------------------

const params = new URLSearchParams(location.search);
let beneficiary = params.get('beneficiary');
if (beneficiary !== null) {
  beneficiary = beneficiary.trim();
  ui.beneficiaryInput.value = beneficiary;
  if (beneficiary === '') {
    beneficiary = null;
  } else if (!ADDRESS.test(beneficiary)) {
    ui.earnerDetails.open = true;
    ui.beneficiaryInput.setAttribute('aria-invalid', 'true');
    setText(ui.earnerLine, 'That address is not valid (0x and 40 hex digits), so credits go to a key this browser makes for you.');
    beneficiary = null;
  }
}
if (beneficiary) {
  ui.earnerLine.textContent = '';
  const code = document.createElement('code');
  code.textContent = beneficiary;
  ui.earnerLine.append('Credits go to ', code, '.');
}

ui.earnerForm.addEventListener('submit', (event) => {
  const value = ui.beneficiaryInput.value.trim();
  if (value === '') {
    event.preventDefault();
    location.assign('/');
  } else if (!ADDRESS.test(value)) {
    event.preventDefault();
    ui.beneficiaryInput.setAttribute('aria-invalid', 'true');
    setText($('beneficiary-help'), 'That is not an address: it starts with 0x and has 40 hex digits (0–9, a–f).');
    ui.beneficiaryInput.focus();
  }
});

let savedUtilization = Number(readStorage(UTILIZATION_KEY));
if (!(savedUtilization >= 5 && savedUtilization <= 100)) savedUtilization = 50;
ui.utilization.value = String(savedUtilization);
showUtilization();

let grid = null;
const receipts = [];
let accountPoll = null;

fillRelayInfo();
poll(refreshGrid, 3000);
init();

async function init() {
  let Hyphae;
  try {
    ({ Hyphae } = await import('/sdk/hyphae.js'));
  } catch (e) {
    showBroken(`The hyphae SDK could not be loaded (${e.message}).`);
    return;
  }
  try {
    grid = await Hyphae.connect({
      beneficiary,
      consent: 'ask',
      maxUtilization: Number(ui.utilization.value) / 100,
      pauseWhenHidden: true,
      pauseOnBattery: true,
      container: document.body,
    });
  } catch (e) {
    showBroken(`The hyphae SDK refused to start (${e.message}).`);
    return;
  }
  window.hyphaeGrid = grid;
  grid.on('state', render);
  grid.on('identity', () => {
    render();
    watchAccount();
  });
  grid.on('task', render);
  grid.on('task-start', render);
  grid.on('credit', (credit) => {
    addReceipt(credit);
    render();
    accountPoll?.now();
  });
  grid.on('error', ({ message }) => console.warn('hyphae:', message));
  if (beneficiary) watchAccount();
  render();
}

function showBroken(text) {
  ui.state.dataset.state = 'error';
  setText(ui.stateLabel, LABELS.error);
  setText(ui.stateDetail, text);
  ui.contribute.disabled = true;
}

// --- controls ------------------------------------------------------------------------------------

ui.contribute.addEventListener('click', async () => {
  if (!grid || ui.contribute.getAttribute('aria-disabled') === 'true') return;
  setText(ui.note, '');
  await grid.start();
  render();
});

ui.pause.addEventListener('click', () => {
  if (!grid) return;
  if (grid.stats().pausedBy.includes('user')) grid.resume();
  else grid.pause();
  render();
});

ui.stop.addEventListener('click', () => {
  grid?.stop();
  render();
  ui.contribute.focus();
});

ui.revoke.addEventListener('click', () => {
  if (!grid) return;
  grid.revokeConsent();
  setText(ui.note, 'Your choice is forgotten. Nothing runs until you say yes again.');
  render();
  ui.contribute.focus();
});

let throttleTimer = null;
ui.utilization.addEventListener('input', () => {
  showUtilization();
  clearTimeout(throttleTimer);
  throttleTimer = setTimeout(() => {
    const percent = Number(ui.utilization.value);
    writeStorage(UTILIZATION_KEY, String(percent));
    grid?.setMaxUtilization(percent / 100);
    render();
  }, 150);
});

function showUtilization() {
  const percent = `${ui.utilization.value}%`;
  setText(ui.utilizationValue, percent);
  ui.utilization.setAttribute('aria-valuetext', `${percent} of the time`);
}

// --- rendering -----------------------------------------------------------------------------------

function render() {
  if (!grid) return;
  const s = grid.stats();
  const active = ACTIVE.has(s.state);
  ui.state.dataset.state = s.state;
  ui.panel.dataset.state = s.state;
  setText(ui.stateLabel, s.state === 'paused' && !s.pausedBy.includes('user') ? 'Paused for now' : LABELS[s.state]);
  setText(ui.stateDetail, detailFor(s));

  // aria-disabled rather than disabled while asking or active: the button keeps the focus (the
  // dialog hands it back here), and clicks are ignored by the handler.
  ui.contribute.disabled = s.state === 'unsupported';
  ui.contribute.setAttribute('aria-disabled', String(active || s.state === 'asking'));
  setText(ui.contribute, active ? 'Contributing' : s.state === 'stopped' || s.state === 'error' ? 'Contribute again' : 'Contribute');
  setText(
    ui.contributeHint,
    active
      ? 'Working in the background of this tab. Pause or stop it from the panel.'
      : 'Nothing runs until you confirm. You can pause or stop whenever you like.',
  );
  ui.pause.disabled = !active;
  setText(ui.pause, s.pausedBy.includes('user') ? 'Resume' : 'Pause');
  ui.stop.disabled = !active;
  ui.revoke.disabled = grid.consent === null && !active;

  const adapter = adapterText(s.adapter);
  setText(ui.adapter, adapter ?? (s.state === 'unsupported' ? 'No WebGPU' : '–'));
  setText($('shards'), s.shards.length ? s.shards.join(', ') : 'None yet');
  if (s.adapter) ui.adapter.title = [s.adapter.name, s.adapter.backend, s.adapter.driver].filter(Boolean).join(' · ');
  setText(ui.tasksDone, formatInt(s.tasksDone));
  setText(ui.credits, formatCredits(s.credits));
}

function addReceipt({ receipt, credits }) {
  receipts.unshift({ receipt, credits, at: Date.now() });
  receipts.length = Math.min(receipts.length, MAX_RECEIPTS);
  const items = receipts.map(({ receipt, credits, at }) => {
    const li = document.createElement('li');
    const task = document.createElement('span');
    task.className = 'task';
    task.textContent = shortTask(receipt.payload.task);
    task.title = `Task ${receipt.payload.task}, verified ${new Date(at).toLocaleTimeString()}; output sha256 ${receipt.payload.output_sha256}`;
    const amount = document.createElement('span');
    amount.className = 'amount';
    amount.textContent = `+${formatCredits(credits)}`;
    const save = document.createElement('a');
    save.href = `data:application/json;charset=utf-8,${encodeURIComponent(JSON.stringify(receipt, null, 2))}`;
    save.download = `receipt-${receipt.payload.task}.json`;
    save.textContent = 'Save';
    save.setAttribute('aria-label', `Save the receipt for task ${receipt.payload.task}`);
    li.append(task, amount, save);
    return li;
  });
  ui.receipts.replaceChildren(...items);
}

// --- the beneficiary's account -------------------------------------------------------------------

function watchAccount() {
  const address = grid?.beneficiary;
  if (!address || accountPoll) return;
  const link = (href, text) => {
    const a = document.createElement('a');
    a.href = href;
    a.textContent = text;
    return a;
  };
  ui.receiptsLinks.replaceChildren(
    'Receipts are signed by the relay and check offline with any Ethereum library. ',
    link(`/v1/receipts?account=${address}`, `All receipts of ${shortAddress(address)}`),
    ' · ',
    link(`/v1/accounts/${address}`, 'account'),
    ' (JSON)',
  );
  accountPoll = poll(async () => {
    try {
      const account = await getJson(`/v1/accounts/${address}`);
      ui.accountEarned.textContent = formatCredits(account.earned);
      const sub = document.createElement('span');
      sub.className = 'sub';
      sub.textContent = `${formatInt(account.verified_tasks)} verified tasks`;
      ui.accountEarned.append(sub);
      ui.accountEarned.title = `${account.address}: earned ${account.earned}, balance ${account.balance}`;
    } catch {
      // keep the last figure; the grid panel below shows when the relay is unreachable
    }
  }, 5000);
}

// --- the whole grid ------------------------------------------------------------------------------

async function refreshGrid() {
  try {
    const stats = await getJson('/v1/stats');
    setText($('grid-workers'), `${formatInt(stats.workers.online)}`);
    setText($('grid-rate'), stats.verified_per_s.toLocaleString(undefined, { maximumFractionDigits: 1 }));
    setText($('grid-verified'), formatInt(stats.tasks.completed));
    setText($('grid-credits'), formatCredits(stats.credits_issued));
    setText($('grid-tokens'), (stats.models?.tokens_per_s ?? 0).toLocaleString(undefined, { maximumFractionDigits: 0 }));
  } catch {
    for (const id of ['grid-workers', 'grid-rate', 'grid-verified', 'grid-credits', 'grid-tokens']) setText($(id), '–');
  }
}

function readStorage(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function writeStorage(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // storage off: the choice lasts for this visit
  }
}
