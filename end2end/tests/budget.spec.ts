import { test, expect, request } from '@playwright/test';
import { uniq } from './helpers';

// What a first visit costs over the wire, counted by Chromium itself
// (DevTools Protocol: bytes received per request, headers included), and
// what a second visit asks again. Sizes are deterministic for a build, so
// these are budgets, not timings. KB = 1000 bytes.
//
// The project's targets, held here: 250 KB of WASM and 320 KB for a first
// visit (249.0 KB and 265.2 KB now: docs/benchmarks.md, "WASM size"). The
// WASM counts as its brotli file (the body); its headers count in the visit.
const WASM_BUDGET = 250_000;
const FIRST_VISIT_BUDGET = 320_000;

// `bytes`: what crossed the wire, headers included; `body`: the response's
// own length (its Content-Length), for sizes of the files themselves.
type Seen = {
  url: string;
  type: string;
  status: number;
  encoding: string;
  cache: string;
  bytes: number;
  body: number;
  cached: boolean;
};

async function visit(page: import('@playwright/test').Page, path: string): Promise<Seen[]> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const seen = new Map<string, Seen>();
  cdp.on('Network.responseReceived', (e) => {
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
    seen.set(e.requestId, {
      url: e.response.url,
      type: e.type,
      status: e.response.status,
      encoding: h['content-encoding'] ?? '',
      cache: h['cache-control'] ?? '',
      bytes: 0,
      body: Number(h['content-length'] ?? NaN),
      cached: e.response.fromDiskCache || e.response.fromMemoryCache,
    });
  });
  cdp.on('Network.requestServedFromCache', (e) => {
    const s = seen.get(e.requestId);
    if (s) s.cached = true;
  });
  cdp.on('Network.loadingFinished', (e) => {
    const s = seen.get(e.requestId);
    if (s) s.bytes = e.encodedDataLength;
  });
  await page.goto(path);
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.locator('.conn')).toHaveAttribute('data-state', 'live');
  await page.waitForLoadState('networkidle');
  await cdp.detach();
  return [...seen.values()].filter((s) => s.url.startsWith('http'));
}

test('a first visit to a room with 50 messages stays within the transfer budget', async ({ browser, baseURL }) => {
  const room = uniq('b').slice(0, 32).toLowerCase();
  const api = await request.newContext({ baseURL });
  for (let i = 0; i < 50; i++) {
    const res = await api.post('/api/messages', {
      data: { room, sender: 'seeder', content: `message ${i}: a line of ordinary length, like people write` },
    });
    expect(res.status()).toBe(201);
  }
  await api.dispose();

  const context = await browser.newContext();
  const page = await context.newPage();
  const first = await visit(page, `/r/${room}`);
  const byName = (re: RegExp) => first.filter((s) => re.test(new URL(s.url).pathname));

  const [html] = byName(new RegExp(`^/r/${room}$`));
  expect(html, 'the page itself').toBeTruthy();
  expect(html.cache).toBe('no-cache');
  expect(html.encoding, 'HTML compressed on the fly').toMatch(/^(br|gzip)$/);

  const [wasm] = byName(/^\/pkg\/chat\.[^/]+\.wasm$/);
  expect(wasm, 'the WASM, under a hashed name').toBeTruthy();
  expect(wasm.encoding).toBe('br');
  expect(wasm.cache).toContain('immutable');
  expect(wasm.body, `the WASM as brotli: ${wasm.body} bytes`).toBeLessThanOrEqual(WASM_BUDGET);
  expect(wasm.bytes, 'the WASM over the wire: its body and headers').toBeGreaterThan(wasm.body);
  for (const asset of [...byName(/^\/pkg\/chat\.[^/]+\.js$/), ...byName(/^\/pkg\/chat\.[^/]+\.css$/)]) {
    expect(asset.encoding, asset.url).toBe('br');
    expect(asset.cache, asset.url).toContain('max-age=31536000');
  }

  const total = first.reduce((sum, s) => sum + s.bytes, 0);
  const lines = first.map((s) => `${s.bytes}\t${s.encoding || '-'}\t${new URL(s.url).pathname}`).join('\n');
  console.log(`first visit: ${total} bytes\n${lines}`);
  expect(total, `everything a first visit transfers:\n${lines}`).toBeLessThanOrEqual(FIRST_VISIT_BUDGET);

  // A revisit takes the assets from the browser's cache: only the page
  // itself (and what is not an asset) crosses the wire again.
  await page.goto('about:blank');
  const again = await visit(page, `/r/${room}`);
  const fetched = again.filter((s) => new URL(s.url).pathname.startsWith('/pkg/') && !s.cached && s.bytes > 0);
  expect(fetched.map((s) => `${s.status} ${s.bytes} ${s.url}`), 'assets fetched again on a revisit').toEqual([]);
  await context.close();
});

test('assets answer without compression to a client that takes none, JSON is compressed for one that does, and a missing asset is not cached', async ({ baseURL }) => {
  const api = await request.newContext({ baseURL, extraHTTPHeaders: { 'accept-encoding': 'identity' } });
  const page = await api.get('/');
  expect(page.headers()['content-encoding']).toBeUndefined();
  const wasm = /\/pkg\/chat\.[^"']+\.wasm/.exec(await page.text());
  expect(wasm, 'the page names a hashed WASM').toBeTruthy();
  const raw = await api.get(wasm![0]);
  expect(raw.status()).toBe(200);
  expect(raw.headers()['content-encoding']).toBeUndefined();
  expect(raw.headers()['content-type']).toBe('application/wasm');
  // JSON is compressed on the fly for a client that takes it.
  const compressing = await request.newContext({ baseURL, extraHTTPHeaders: { 'accept-encoding': 'br' } });
  const seeded = await compressing.post('/api/messages', { data: { room: 'lobby', sender: 'seeder', content: 'compress me' } });
  expect(seeded.status()).toBe(201);
  const json = await compressing.get('/api/messages?room=lobby&limit=50');
  expect(json.status()).toBe(200);
  expect(json.headers()['content-encoding']).toBe('br');
  expect(json.headers()['cache-control']).toBe('no-cache');
  await compressing.dispose();
  const missing = await api.get('/pkg/chat.nothing.wasm');
  expect(missing.status()).toBe(404);
  expect(missing.headers()['cache-control']).toBe('no-cache');
  await api.dispose();
});
