// hyphae one-tag embed: a compact "Donate GPU time" widget for any page, configured by the
// attributes of its own <script> tag (README.md lists them). It renders where the tag stands, or
// into `data-target`, and asks the SDK's consent prompt before anything runs.
//
// What lives here: finding the tag, reading its options and drawing the widget. Everything about
// consent, the worker and credits is hyphae.js.

import { Hyphae, SDK_CSS } from './hyphae.js';

const STYLE_ID = 'hyphae-embed-style';
const ACTIVE = new Set(['starting', 'connecting', 'running', 'paused']);

const WIDGET_CSS = `
.hyphae-widget{display:block;max-width:22rem;margin:1rem 0;padding:1rem 1.1rem;background:var(--h-bg);
border:1px solid var(--h-border);border-radius:14px;box-shadow:0 1px 2px rgb(0 0 0/.06)}
.hyphae-widget .hyphae-w-head{display:flex;align-items:center;gap:.6rem;margin:0 0 .4rem}
.hyphae-widget .hyphae-w-head svg{flex:none;width:28px;height:28px;color:var(--h-accent)}
.hyphae-widget p.hyphae-w-title{margin:0;font-weight:650;font-size:1rem;line-height:1.3;color:var(--h-fg)}
.hyphae-widget p.hyphae-w-text{margin:0 0 .8rem;font-size:.9rem;line-height:1.45;color:var(--h-muted)}
.hyphae-widget button.hyphae-btn{width:100%}
.hyphae-widget .hyphae-w-state{display:flex;align-items:center;gap:.5rem;margin:0 0 .6rem;font-weight:600;font-size:.95rem}
.hyphae-widget .hyphae-dot{flex:none;width:.65rem;height:.65rem;border-radius:50%;background:var(--h-muted)}
.hyphae-widget .hyphae-dot[data-state=running]{background:#1f9d6f;box-shadow:0 0 0 3px rgb(31 157 111/.2)}
.hyphae-widget .hyphae-dot[data-state=paused]{background:#c18a12}
.hyphae-widget .hyphae-dot[data-state=error]{background:#c2412d}
.hyphae-widget dl.hyphae-w-stats{display:grid;grid-template-columns:1fr 1fr;gap:.5rem;margin:0 0 .8rem;padding:0}
.hyphae-widget dl.hyphae-w-stats div{background:var(--h-soft);border-radius:10px;padding:.45rem .65rem}
.hyphae-widget dl.hyphae-w-stats dt{margin:0;font-size:.75rem;color:var(--h-muted);text-transform:uppercase;letter-spacing:.04em}
.hyphae-widget dl.hyphae-w-stats dd{margin:0;font-size:1.15rem;font-weight:650;font-variant-numeric:tabular-nums;color:var(--h-fg)}
.hyphae-widget .hyphae-w-actions{display:flex;gap:.5rem}
.hyphae-widget .hyphae-w-actions button.hyphae-btn{flex:1}
.hyphae-widget p.hyphae-w-foot{margin:.75rem 0 0;font-size:.8rem;color:var(--h-muted)}
.hyphae-widget p.hyphae-w-foot a{color:var(--h-accent);text-decoration:underline;text-underline-offset:2px}
.hyphae-widget [hidden]{display:none!important}
`;

const LABELS = {
  idle: 'Not started',
  asking: 'Waiting for your answer',
  declined: 'Nothing runs: you said no',
  starting: 'Starting up',
  connecting: 'Connecting to the relay',
  running: 'Running',
  paused: 'Paused',
  stopped: 'Stopped',
  unsupported: 'This browser cannot contribute',
  error: 'Something went wrong',
};

const PAUSE_REASONS = {
  user: 'Paused',
  hidden: 'Paused while this tab is hidden',
  battery: 'Paused while on battery',
};

const LOGO = `<svg viewBox="0 0 32 32" aria-hidden="true" focusable="false" fill="none" stroke="currentColor"
stroke-width="2.2" stroke-linecap="round"><path d="M16 29V17m0 0c0-5-4-7-8-9m8 9c0-4 3-7 8-9M8 8c-1-2-1-4 0-5m0 5c-2 0-4 1-5 2m21-2
c1-2 1-4 0-5m0 5c2 0 4 1 5 2M16 17c0-3 0-6-1-9"/><circle cx="16" cy="29" r="1.6" fill="currentColor" stroke="none"/></svg>`;

function injectStyle() {
  if (document.getElementById(STYLE_ID)) return;
  const style = document.createElement('style');
  style.id = STYLE_ID;
  // The SDK's shared rules come first so that its dialog looks right even before it first opens.
  style.textContent = (document.getElementById('hyphae-sdk-style') ? '' : SDK_CSS) + WIDGET_CSS;
  (document.head ?? document.documentElement).append(style);
}

/** The <script> tags that loaded this module (a module runs once however many tags name it). */
function ownTags() {
  const all = [...document.querySelectorAll('script[src]')];
  const exact = all.filter((s) => s.src === import.meta.url);
  return exact.length > 0 ? exact : all.filter((s) => /\/sdk\/embed\.js(\?|#|$)/.test(s.src));
}

function flag(value, fallback) {
  if (value == null) return fallback;
  return !/^(false|no|off|0)$/i.test(value.trim());
}

function optionsFrom(tag) {
  const d = tag.dataset;
  const options = {
    consent: d.consent === 'granted' ? 'granted' : 'ask',
    pauseWhenHidden: flag(d.pauseWhenHidden, true),
    pauseOnBattery: flag(d.pauseOnBattery, true),
  };
  if (d.relay) options.relay = d.relay;
  if (d.beneficiary) options.beneficiary = d.beneficiary.trim();
  if (d.maxUtilization) options.maxUtilization = Number(d.maxUtilization);
  return options;
}

const NUMBERS = new Intl.NumberFormat();
const DECIMAL = NUMBERS.formatToParts(1.5).find((p) => p.type === 'decimal')?.value ?? '.';

/** A decimal string in the reader's locale, digit for digit (no float on the way). */
function formatNumber(text) {
  const [whole, frac] = text.split('.');
  const grouped = NUMBERS.format(BigInt(whole));
  return frac ? `${grouped}${DECIMAL}${frac}` : grouped;
}

function buildWidget(relay, beneficiary) {
  const root = document.createElement('section');
  root.className = 'hyphae-ui hyphae-widget';
  root.setAttribute('aria-label', 'Donate GPU time');
  const who = beneficiary ? 'Credits for the work go to this site.' : 'Credits for the work go to you.';
  root.innerHTML = `
    <div class="hyphae-w-head">${LOGO}<p class="hyphae-w-title">Lend your GPU to open AI</p></div>
    <p class="hyphae-w-text" data-hyphae="text">While you read, your browser can run small computations for open AI projects, checked by other volunteers. ${who}</p>
    <button type="button" class="hyphae-btn hyphae-primary" data-hyphae="start">Donate GPU time</button>
    <div data-hyphae="live" hidden>
      <p class="hyphae-w-state" role="status"><span class="hyphae-dot" data-hyphae="dot"></span><span data-hyphae="state">Not started</span></p>
      <dl class="hyphae-w-stats">
        <div><dt>Tasks</dt><dd data-hyphae="tasks">0</dd></div>
        <div><dt>Credits</dt><dd data-hyphae="credits">0</dd></div>
      </dl>
      <div class="hyphae-w-actions">
        <button type="button" class="hyphae-btn" data-hyphae="pause">Pause</button>
        <button type="button" class="hyphae-btn" data-hyphae="stop">Stop</button>
      </div>
    </div>
    <p class="hyphae-w-foot">Runs through <a data-hyphae="about" target="_blank" rel="noopener">hyphae</a>, a volunteer compute grid. <span data-hyphae="promise">Nothing runs until you say yes.</span></p>`;
  root.querySelector('[data-hyphae=about]').href = `${relay}/`;
  return root;
}

async function mount(tag) {
  let grid;
  try {
    grid = await Hyphae.connect(optionsFrom(tag));
  } catch (e) {
    console.error('hyphae embed: bad options on the script tag', e);
    return;
  }
  injectStyle();
  const root = buildWidget(grid.relay, tag.dataset.beneficiary);
  const target = tag.dataset.target ? document.querySelector(tag.dataset.target) : null;
  if (target) target.append(root);
  else tag.after(root);

  const $ = (name) => root.querySelector(`[data-hyphae="${name}"]`);
  const intro = $('text').textContent;
  const [start, live, text, dot, stateLabel, tasks, credits, pause, stop, promise] = [
    'start', 'live', 'text', 'dot', 'state', 'tasks', 'credits', 'pause', 'stop', 'promise',
  ].map($);

  const render = () => {
    const focused = root.contains(document.activeElement) ? document.activeElement : null;
    const s = grid.stats();
    const state = s.state;
    root.dataset.state = state;
    dot.dataset.state = state;
    stateLabel.textContent = state === 'paused' ? PAUSE_REASONS[s.pausedBy[0]] ?? LABELS.paused : LABELS[state];
    tasks.textContent = s.tasksDone.toLocaleString();
    credits.textContent = formatNumber(s.credits);
    live.hidden = !(ACTIVE.has(state) || s.since !== null) || state === 'unsupported';
    start.hidden = ACTIVE.has(state) || state === 'unsupported';
    start.textContent = state === 'stopped' || state === 'error' ? 'Donate GPU time again' : 'Donate GPU time';
    pause.disabled = !ACTIVE.has(state);
    stop.disabled = !ACTIVE.has(state);
    pause.textContent = s.pausedBy.includes('user') ? 'Resume' : 'Pause';
    promise.textContent = ACTIVE.has(state) ? 'Stop ends it at once, and so does closing the tab.' : 'Nothing runs until you say yes.';
    if (state === 'unsupported') text.textContent = `Your browser cannot donate GPU time: ${s.detail}. Thank you for reading all the same.`;
    else if (state === 'declined') text.textContent = 'No problem: nothing runs. You can change your mind with the button below.';
    else if (state === 'error') text.textContent = `It stopped: ${s.detail}.`;
    else text.textContent = intro;
    // A button that just disappeared or went inert must not take the keyboard focus with it.
    if (focused && (focused.hidden || focused.disabled || focused.closest('[hidden]'))) {
      (ACTIVE.has(state) ? pause : start).focus();
    }
  };

  start.addEventListener('click', () => grid.start());
  pause.addEventListener('click', () => (grid.stats().pausedBy.includes('user') ? grid.resume() : grid.pause()));
  stop.addEventListener('click', () => grid.stop());
  for (const event of ['state', 'task', 'credit']) grid.on(event, render);
  render();

  tag.hyphaeGrid = grid;
  globalThis.hyphaeGrid ??= grid;
  tag.dispatchEvent(new CustomEvent('hyphae:ready', { bubbles: true, detail: { grid } }));
}

for (const tag of ownTags()) {
  if (tag.dataset.hyphaeMounted) continue;
  tag.dataset.hyphaeMounted = 'true';
  mount(tag);
}
