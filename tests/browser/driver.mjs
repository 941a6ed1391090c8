// Drives one headless Chromium for the Rust end-to-end tests (tests/src/harness/browser.rs).
// Commands arrive as JSON lines on stdin, answers leave as JSON lines on stdout:
//   {"id":1,"op":"goto","url":"…"}                      → {"id":1,"ok":true}
//   {"id":2,"op":"click","selector":"#contribute"}
//   {"id":3,"op":"eval","js":"window.hyphaeGrid.state"} → {"id":3,"ok":true,"value":"running"}
//   {"id":4,"op":"wait","js":"…truthy expression…","timeout":30000}
//   {"id":5,"op":"screenshot","path":"/…/donate.png","fullPage":true}
//   {"id":6,"op":"viewport","width":390,"height":844}
//   {"id":7,"op":"color-scheme","scheme":"dark"}
// Failures answer {"id":…,"ok":false,"error":"…"}. Page console output and errors go to stderr.
// playwright-core comes from $HYPHAE_NODE_MODULES (installed by `cargo xtask test`).

import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.HYPHAE_NODE_MODULES;
if (!modules) {
  console.error('HYPHAE_NODE_MODULES is not set (cargo xtask test sets it)');
  process.exit(2);
}
const { chromium } = await import(pathToFileURL(join(modules, 'playwright-core', 'index.mjs')).href);

// HYPHAE_BROWSER_WEBGPU=off launches Chromium as it ships on Linux: without WebGPU.
const webgpu = process.env.HYPHAE_BROWSER_WEBGPU !== 'off';
const browser = await chromium.launch({
  executablePath: process.env.HYPHAE_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    ...(webgpu ? ['--enable-unsafe-webgpu'] : []),
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-quic',
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
page.on('console', (m) => console.error(`[page ${m.type()}] ${m.text()}`));
page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
page.on('worker', (w) => {
  console.error(`[page] worker started: ${w.url()}`);
  w.on('console', (m) => console.error(`[worker ${m.type()}] ${m.text()}`));
});

const ops = {
  goto: (c) => page.goto(c.url, { waitUntil: 'load' }).then(() => undefined),
  click: (c) => page.click(c.selector, { timeout: c.timeout ?? 10000 }),
  eval: (c) => page.evaluate(c.js),
  wait: (c) => page.waitForFunction(c.js, undefined, { timeout: c.timeout ?? 30000, polling: 100 }).then(() => undefined),
  screenshot: (c) => page.screenshot({ path: c.path, fullPage: c.fullPage ?? true }).then(() => undefined),
  viewport: (c) => page.setViewportSize({ width: c.width, height: c.height }),
  'color-scheme': (c) => page.emulateMedia({ colorScheme: c.scheme }),
};

const input = createInterface({ input: process.stdin });
for await (const line of input) {
  if (!line.trim()) continue;
  let command;
  try {
    command = JSON.parse(line);
    const op = ops[command.op];
    if (!op) throw new Error(`unknown op ${command.op}`);
    const value = await op(command);
    process.stdout.write(JSON.stringify({ id: command.id, ok: true, value: value ?? null }) + '\n');
  } catch (error) {
    process.stdout.write(JSON.stringify({ id: command?.id ?? null, ok: false, error: String(error?.message ?? error) }) + '\n');
  }
}
await browser.close();
