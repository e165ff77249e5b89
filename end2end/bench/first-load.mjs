// Benchmark (not a test): time from navigation until a first visit is
// hydrated and live, in Debian's Chromium, with and without CPU throttling.
//
//   node end2end/bench/first-load.mjs --url http://127.0.0.1:3000/r/bench --runs 10 --throttle 1,4
//
// Every run is a fresh browser context (empty cache, no session cookie).
// "Hydrated" is `main.chat[data-hydrated=true]` (set by the app's first
// effect); "live" is `.conn[data-state=live]` (the WebSocket's `ready`).
// Prints per-setting median, p90 and max, and the bytes received.
import { chromium } from '@playwright/test';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const url = arg('url', 'http://127.0.0.1:3000/r/lobby');
const runs = Number(arg('runs', '10'));
const throttles = arg('throttle', '1,4').split(',').map(Number);
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const args = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const browser = await chromium.launch({ executablePath, args });
for (const rate of throttles) {
  const hydrated = [];
  const live = [];
  let bytes = 0;
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Emulation.setCPUThrottlingRate', { rate });
    let received = 0;
    cdp.on('Network.loadingFinished', (e) => (received += e.encodedDataLength));
    const start = Date.now();
    await page.goto(url, { waitUntil: 'commit' });
    await page.locator('main.chat[data-hydrated="true"]').waitFor({ timeout: 60_000 });
    const h = Date.now() - start;
    await page.locator('.conn[data-state="live"]').waitFor({ timeout: 60_000 });
    const l = Date.now() - start;
    // Navigation start as the page saw it, to leave out Playwright's own overhead.
    const navToNow = await page.evaluate(() => performance.now());
    const overhead = Date.now() - start - navToNow;
    hydrated.push(h - Math.max(0, overhead));
    live.push(l - Math.max(0, overhead));
    bytes = received;
    await context.close();
  }
  hydrated.sort((a, b) => a - b);
  live.sort((a, b) => a - b);
  const fmt = (xs) => `median ${pct(xs, 50).toFixed(0)} ms  p90 ${pct(xs, 90).toFixed(0)} ms  max ${xs[xs.length - 1].toFixed(0)} ms`;
  console.log(`cpu ${rate}x  hydrated: ${fmt(hydrated)}  |  live: ${fmt(live)}  |  ${bytes} bytes received (n=${runs})`);
}
await browser.close();
