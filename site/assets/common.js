// Helpers shared by the donate page and the dashboard: talking to the relay's JSON API, polling
// that rests while the tab is hidden, and formatting numbers, credits, addresses and times for
// people. No page logic lives here.

const NUMBERS = new Intl.NumberFormat();
const DECIMAL = NUMBERS.formatToParts(1.5).find((p) => p.type === 'decimal')?.value ?? '.';

/** GETs a path of the relay (the site is served by the relay itself) and parses its JSON. */
export async function getJson(path, { timeoutMs = 8000 } = {}) {
  const response = await fetch(path, {
    headers: { accept: 'application/json' },
    cache: 'no-store',
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) {
    let reason = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body?.error?.message) reason = body.error.message;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(reason);
  }
  return response.json();
}

/**
 * Calls `tick` now and then every `intervalMs` after the previous call settles, never two at once.
 * While the tab is hidden it rests, and it catches up at once when the tab shows again.
 */
export function poll(tick, intervalMs) {
  let timer = null;
  let running = false;
  const run = async () => {
    clearTimeout(timer);
    timer = null;
    if (running) return;
    running = true;
    try {
      await tick();
    } catch (e) {
      console.error(e);
    } finally {
      running = false;
      if (!document.hidden) timer = setTimeout(run, intervalMs);
    }
  };
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && timer === null && !running) run();
  });
  run();
  return { now: run };
}

export function formatInt(n) {
  return Number.isFinite(n) ? NUMBERS.format(n) : '–';
}

/** A relay credit amount (decimal string, up to 6 decimals) grouped in the reader's locale, exactly. */
export function formatCredits(text) {
  if (typeof text !== 'string' || !/^\d+(\.\d+)?$/.test(text)) return '–';
  const [whole, frac] = text.split('.');
  const grouped = NUMBERS.format(BigInt(whole));
  return frac ? `${grouped}${DECIMAL}${frac}` : grouped;
}

export function shortAddress(address) {
  return typeof address === 'string' && address.length > 12 ? `${address.slice(0, 6)}…${address.slice(-4)}` : address ?? '–';
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", or the date. */
export function timeAgo(unixMs, nowMs = Date.now()) {
  const s = Math.max(0, Math.round((nowMs - unixMs) / 1000));
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(unixMs).toLocaleDateString();
}

/** A length of time in seconds: "42 s", "5 min", "3 h 12 min", "2 d 4 h". */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** Sets an element's text only when it changed, so screen readers and selections are left alone. */
export function setText(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}

/** Fills the footer's relay line from `GET /v1/relay`: who runs this relay and who signs receipts. */
export async function fillRelayInfo() {
  const el = document.getElementById('relay-info');
  if (!el) return;
  try {
    const info = await getJson('/v1/relay');
    el.textContent = '';
    const code = document.createElement('code');
    code.textContent = info.address;
    code.title = 'The address that signs this relay’s receipts';
    el.append(`Relay “${info.name}” ${info.version}, protocol ${info.protocol}. Receipts are signed by `, code, '.');
  } catch {
    el.textContent = 'The relay did not answer.';
  }
}
