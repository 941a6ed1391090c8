// The dashboard: polls GET /v1/stats every second and GET /v1/workers every few seconds, and draws
// the last minute of verified and rejected results on a canvas (device-pixel sharp, one synchronous
// redraw per update, so it never flickers). The data shapes are proto/src/api.rs `Stats` and
// `WorkerList`.

import { duration, fillRelayInfo, formatCredits, formatInt, getJson, poll, setText, shortAddress, timeAgo } from '/assets/common.js';

const $ = (id) => document.getElementById(id);
const RECENT_ROWS = 8;

// --- live status ---------------------------------------------------------------------------------

let lastOk = 0;
let failing = false;

function markOk() {
  lastOk = Date.now();
  if (failing) {
    failing = false;
    $('banner').hidden = true;
  }
  $('live-dot').dataset.tone = 'ok';
  setText($('live-text'), 'Live');
}

function markFailed(error) {
  $('live-dot').dataset.tone = 'bad';
  setText($('live-text'), 'Relay unreachable, retrying');
  if (!failing) {
    failing = true;
    const banner = $('banner');
    banner.textContent = lastOk
      ? `The relay stopped answering (${error.message}). The numbers below are from ${new Date(lastOk).toLocaleTimeString()}; this page keeps trying every second.`
      : `The relay did not answer (${error.message}). This page keeps trying every second.`;
    banner.hidden = false;
  }
}

// --- stats ---------------------------------------------------------------------------------------

let latest = null;

async function refreshStats() {
  let stats;
  try {
    stats = await getJson('/v1/stats', { timeoutMs: 4000 });
  } catch (e) {
    markFailed(e);
    return;
  }
  markOk();
  latest = stats;
  renderTotals(stats);
  chart.update(stats.verified_history, stats.rejected_history);
  renderRecentJobs(stats.recent_jobs);
  renderEarners(stats.top_beneficiaries);
}

function renderTotals(s) {
  setText($('workers-online'), formatInt(s.workers.online));
  setText($('workers-split'), `${formatInt(s.workers.browser)} browser · ${formatInt(s.workers.native)} native`);
  setText($('rate'), s.verified_per_s.toLocaleString(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 }));
  setText($('tasks-verified'), formatInt(s.tasks.completed));
  setText($('tasks-split'), `${formatInt(s.tasks.queued)} queued · ${formatInt(s.tasks.running)} running · ${formatInt(s.tasks.failed)} failed`);
  setText($('accepted'), formatInt(s.results_accepted));
  setText($('rejected'), formatInt(s.results_rejected));
  const all = s.results_accepted + s.results_rejected;
  const share = all > 0 ? (100 * s.results_accepted) / all : null;
  setText($('accepted-share'), share === null ? 'since the relay started' : `${formatShare(share)} agreed, since the relay started`);
  setText($('credits-issued'), formatCredits(s.credits_issued));
  const models = s.models ?? { served: [], tokens: 0, tokens_per_s: 0 };
  setText($('tokens-rate'), models.tokens_per_s.toLocaleString(undefined, { maximumFractionDigits: 0 }));
  setText(
    $('tokens-total'),
    models.served.length ? `${formatInt(models.tokens)} tokens · ${models.served.join(', ')}` : 'no model served',
  );
  renderTransport(s.transport);
  setText($('uptime'), `The relay has been up ${duration(s.uptime_s)}.`);

  setText($('jobs-queued'), formatInt(s.jobs.queued));
  setText($('jobs-running'), formatInt(s.jobs.running));
  setText($('jobs-completed'), formatInt(s.jobs.completed));
  setText($('jobs-failed'), formatInt(s.jobs.failed));
  $('bar-ok').style.width = `${share ?? 0}%`;
  $('bar-bad').style.width = `${share === null ? 0 : 100 - share}%`;
  setText(
    $('agreement'),
    all === 0
      ? 'No results yet.'
      : `${formatInt(s.results_accepted)} agreed with the accepted answer, ${formatInt(s.results_rejected)} did not.`,
  );
}

// Which way activations moved: directly between workers, or through this relay (inline in
// tasks, relayed between sockets, or fetched to compare replicas).
function renderTransport(t) {
  if (!t) return;
  const viaRelay = t.activation_bytes + t.relayed_bytes + t.fetched_bytes;
  const all = t.direct_bytes + viaRelay;
  setText($('p2p-share'), all > 0 ? formatShare((100 * t.direct_bytes) / all) : '–');
  setText(
    $('p2p-split'),
    `${formatBytes(t.direct_bytes)} direct · ${formatBytes(viaRelay)} via relay · ` +
      `${formatInt(t.connections_up)} connections up, ${formatInt(t.connections_failed)} failed` +
      fetchTime(' · direct fetch', t.direct_fetches) +
      fetchTime(' · relayed fetch', t.relayed_fetches),
  );
}

// Mean time a worker took to fetch an input from another, as the fetching workers report it.
function fetchTime(label, f) {
  if (!f || f.count === 0) return '';
  return `${label} ${(f.micros / 1000 / f.count).toLocaleString(undefined, { maximumFractionDigits: 1 })} ms`;
}

function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toLocaleString(undefined, { maximumFractionDigits: i === 0 ? 0 : 1 })} ${units[i]}`;
}

function formatShare(percent) {
  const digits = percent > 99 && percent < 100 ? 1 : 0;
  return `${percent.toLocaleString(undefined, { maximumFractionDigits: digits })}%`;
}

/** Replaces a table body only when its data changed, so reading and selecting are not disturbed. */
function fillTable(tbody, data, columns, makeRow, emptyText) {
  const key = JSON.stringify(data);
  if (tbody.dataset.key === key) return;
  tbody.dataset.key = key;
  if (data.length === 0) {
    const td = cell(emptyText, 'empty');
    td.colSpan = columns;
    tbody.replaceChildren(row([td]));
    return;
  }
  tbody.replaceChildren(...data.map(makeRow));
}

function cell(content, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  return td;
}

function row(cells) {
  const tr = document.createElement('tr');
  tr.append(...cells);
  return tr;
}

function badge(status) {
  const span = document.createElement('span');
  span.className = 'badge';
  span.dataset.status = status;
  span.textContent = status;
  return span;
}

function address(text) {
  const code = document.createElement('code');
  code.textContent = shortAddress(text);
  code.title = text;
  return code;
}

function renderRecentJobs(jobs) {
  // "x s ago" moves on its own: the key changes every 5 s so the rows are rebuilt that often.
  const bucket = Math.floor(Date.now() / 5000);
  fillTable(
    $('recent-jobs'),
    jobs.slice(0, RECENT_ROWS).map((j) => ({ ...j, bucket })),
    5,
    (job) => {
      const progress = document.createElement('span');
      progress.className = 'progress';
      const track = document.createElement('span');
      track.className = 'track';
      const fill = document.createElement('span');
      fill.className = 'fill';
      fill.style.width = `${job.tasks ? (100 * job.completed) / job.tasks : 0}%`;
      track.append(fill);
      progress.append(track, `${formatInt(job.completed)}/${formatInt(job.tasks)}`);
      const when = cell(timeAgo(job.created_at));
      when.title = new Date(job.created_at).toLocaleString();
      return row([cell(job.id, 'mono'), cell(badge(job.status)), cell(progress), cell(formatInt(job.failed), 'num'), when]);
    },
    'No jobs yet. Submit one with POST /v1/jobs.',
  );
}

function renderEarners(earners) {
  fillTable(
    $('top-earners'),
    earners.slice(0, RECENT_ROWS),
    4,
    (e, i) => row([cell(String(i + 1), 'num'), cell(address(e.address)), cell(formatCredits(e.earned), 'num'), cell(formatInt(e.verified_tasks), 'num')]),
    'Nobody has earned credits yet.',
  );
}

// --- workers -------------------------------------------------------------------------------------

async function refreshWorkers() {
  let list;
  try {
    list = await getJson('/v1/workers', { timeoutMs: 4000 });
  } catch {
    return; // the stats poll already says the relay is unreachable
  }
  const workers = [...list.workers].sort((a, b) => a.connected_at - b.connected_at);
  setText($('workers-count'), `${formatInt(workers.length)} connected`);
  const bucket = Math.floor(Date.now() / 10000);
  fillTable(
    $('workers'),
    workers.map((w) => ({ ...w, bucket })),
    9,
    (w) => {
      const gpu = document.createElement('span');
      gpu.textContent = w.adapter.name || 'unnamed adapter';
      gpu.title = [w.adapter.name, w.adapter.device_type, w.adapter.backend, w.adapter.driver, w.agent].filter(Boolean).join(' · ');
      if (w.adapter.backend) {
        const backend = document.createElement('span');
        backend.className = 'muted small';
        backend.textContent = ` ${w.adapter.backend}`;
        gpu.append(backend);
      }
      const connected = cell(duration((Date.now() - w.connected_at) / 1000));
      connected.title = `since ${new Date(w.connected_at).toLocaleString()}`;
      return row([
        cell(address(w.address)),
        cell(badge(w.platform)),
        cell(gpu),
        cell(w.shards?.length ? w.shards.join(', ') : '–'),
        cell(address(w.beneficiary)),
        cell(`${formatInt(w.in_flight)}/${formatInt(w.max_in_flight)}`, 'num'),
        cell(formatInt(w.accepted), 'num'),
        cell(formatInt(w.rejected), 'num'),
        cell(formatInt(w.consecutive_valid), 'num'),
        connected,
      ]);
    },
    'No workers are connected. Open the Contribute page, or start hyphae-node.',
  );
}

// --- the chart -----------------------------------------------------------------------------------

/**
 * Two series over the last minute on a canvas. The backing store follows the element's size
 * (ResizeObserver) times devicePixelRatio; colours come from the stylesheet's custom properties
 * so light and dark both work; each draw clears and paints in one synchronous pass, which the
 * browser presents as one frame.
 */
class Chart {
  constructor(canvas, tip, summary) {
    this.canvas = canvas;
    this.tip = tip;
    this.summary = summary;
    this.verified = [];
    this.rejected = [];
    this.hover = null;
    this.layout = null;
    this.readColors();
    new ResizeObserver(() => this.draw()).observe(canvas);
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
      this.readColors();
      this.draw();
    });
    canvas.addEventListener('pointermove', (e) => this.onPointer(e));
    canvas.addEventListener('pointerleave', () => {
      this.hover = null;
      this.tip.hidden = true;
      this.draw();
    });
  }

  readColors() {
    const css = getComputedStyle(document.documentElement);
    const v = (name) => css.getPropertyValue(name).trim();
    this.colors = {
      text: v('--muted'),
      grid: v('--gridline'),
      axis: v('--border'),
      verified: v('--verified'),
      rejected: v('--rejected'),
      font: v('--font'),
    };
  }

  update(verified, rejected) {
    this.verified = verified ?? [];
    this.rejected = rejected ?? [];
    this.draw();
    this.describe();
    if (this.hover !== null) this.showTip();
  }

  describe() {
    const v = this.verified;
    if (v.length === 0) return;
    const sum = v.reduce((a, b) => a + b, 0);
    const peak = Math.max(...v);
    const rejected = this.rejected.reduce((a, b) => a + b, 0);
    setText(
      this.summary,
      `Over the last ${v.length} seconds: ${formatInt(sum)} tasks verified, at most ${formatInt(peak)} in one second, ` +
        `${formatInt(v.at(-1))} in the latest second; ${formatInt(rejected)} results rejected.`,
    );
  }

  draw() {
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth;
    const cssH = canvas.clientHeight;
    if (cssW === 0 || cssH === 0) return;
    const w = Math.round(cssW * dpr);
    const h = Math.round(cssH * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);

    const n = Math.max(this.verified.length, this.rejected.length, 60);
    const top = Math.max(1, ...this.verified, ...this.rejected);
    const { max, step } = niceScale(top);
    ctx.font = `12px ${this.colors.font}`;
    const ticks = [];
    for (let value = 0; value <= max; value += step) ticks.push(value);
    const labelW = Math.max(...ticks.map((value) => ctx.measureText(formatInt(value)).width));
    const pad = { left: Math.ceil(labelW) + 12, right: 10, top: 10, bottom: 26 };
    const plotW = cssW - pad.left - pad.right;
    const plotH = cssH - pad.top - pad.bottom;
    const x = (i) => pad.left + (i * plotW) / (n - 1);
    const y = (value) => pad.top + plotH - (value / max) * plotH;
    const crisp = (px) => (Math.round(px * dpr) + 0.5) / dpr; // a 1-device-pixel line, on the pixel
    this.layout = { pad, plotW, plotH, n, x };

    // Horizontal grid lines and the y labels.
    ctx.lineWidth = 1 / dpr;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const value of ticks) {
      const yy = crisp(y(value));
      ctx.strokeStyle = value === 0 ? this.colors.axis : this.colors.grid;
      ctx.beginPath();
      ctx.moveTo(pad.left, yy);
      ctx.lineTo(pad.left + plotW, yy);
      ctx.stroke();
      ctx.fillStyle = this.colors.text;
      ctx.fillText(formatInt(value), pad.left - 8, y(value));
    }

    // X labels: seconds ago, fewer of them when they would touch.
    ctx.textBaseline = 'top';
    const xLabel = (ago) => (ago === 0 ? 'now' : `${ago} s ago`);
    const widest = ctx.measureText(xLabel(60)).width;
    const marks = plotW / 4 > widest * 1.5 + 8 ? [60, 45, 30, 15, 0] : [60, 30, 0];
    for (const ago of marks) {
      const i = n - 1 - Math.min(ago, n - 1);
      ctx.textAlign = i === 0 ? 'left' : ago === 0 ? 'right' : 'center';
      ctx.fillText(xLabel(ago), x(i), pad.top + plotH + 8);
    }

    // The series, right-aligned: the newest second is "now".
    const points = (values) => values.map((value, k) => [x(n - values.length + k), y(value)]);
    const verified = points(this.verified);
    const rejected = points(this.rejected);
    if (verified.length > 0) {
      const gradient = ctx.createLinearGradient(0, pad.top, 0, pad.top + plotH);
      gradient.addColorStop(0, withAlpha(this.colors.verified, 0.28));
      gradient.addColorStop(1, withAlpha(this.colors.verified, 0.02));
      ctx.fillStyle = gradient;
      ctx.beginPath();
      ctx.moveTo(verified[0][0], y(0));
      for (const [px, py] of verified) ctx.lineTo(px, py);
      ctx.lineTo(verified.at(-1)[0], y(0));
      ctx.closePath();
      ctx.fill();
      this.line(ctx, verified, this.colors.verified, []);
    }
    if (rejected.length > 0) this.line(ctx, rejected, this.colors.rejected, [5, 4]);

    if (this.hover !== null && this.hover < n) {
      const hx = crisp(x(this.hover));
      ctx.strokeStyle = this.colors.text;
      ctx.lineWidth = 1 / dpr;
      ctx.setLineDash([2, 3]);
      ctx.beginPath();
      ctx.moveTo(hx, pad.top);
      ctx.lineTo(hx, pad.top + plotH);
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  line(ctx, points, color, dash) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    ctx.lineCap = 'round';
    ctx.setLineDash(dash);
    ctx.beginPath();
    points.forEach(([px, py], k) => (k === 0 ? ctx.moveTo(px, py) : ctx.lineTo(px, py)));
    ctx.stroke();
    ctx.setLineDash([]);
  }

  onPointer(event) {
    if (!this.layout) return;
    const rect = this.canvas.getBoundingClientRect();
    const { pad, plotW, n } = this.layout;
    const i = Math.round(((event.clientX - rect.left - pad.left) / plotW) * (n - 1));
    this.hover = i >= 0 && i < n ? i : null;
    this.draw();
    this.showTip();
  }

  showTip() {
    if (this.hover === null || !this.layout) {
      this.tip.hidden = true;
      return;
    }
    const { n, x, pad } = this.layout;
    const at = (values) => values[values.length - n + this.hover] ?? 0;
    const ago = n - 1 - this.hover;
    this.tip.textContent = `${ago === 0 ? 'now' : `${ago} s ago`}: ${formatInt(at(this.verified))} verified, ${formatInt(at(this.rejected))} rejected`;
    this.tip.style.left = `${Math.min(Math.max(x(this.hover), 100), this.canvas.clientWidth - 100)}px`;
    this.tip.style.top = `${pad.top + 30}px`;
    this.tip.hidden = false;
  }
}

/** A y axis for counts: ends on a round number, 2 to 5 whole steps. */
function niceScale(top) {
  const raw = top / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw));
  return { max: Math.ceil(top / step) * step, step };
}

function withAlpha(color, alpha) {
  const hex = color.match(/^#([0-9a-f]{6})$/i);
  if (!hex) return color;
  const v = parseInt(hex[1], 16);
  return `rgb(${v >> 16} ${(v >> 8) & 255} ${v & 255} / ${alpha})`;
}

const chart = new Chart($('chart'), $('chart-tip'), $('chart-summary'));
fillRelayInfo();
poll(refreshStats, 1000);
poll(refreshWorkers, 3000);
// Keep "x s ago" honest even when the relay stops answering.
setInterval(() => latest && renderRecentJobs(latest.recent_jobs), 5000);
