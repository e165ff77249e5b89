import { test, expect, request } from '@playwright/test';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { confirmed, openChat } from './helpers';

// A page open while the database is restored to an older backup ends up
// showing exactly the restored history and what was posted after it,
// without anyone reloading it. The restore is the real command
// (`chat restore`, run with SERVER_BIN against the server's SQLite file
// while it serves); the server notices the new epoch within a second and
// closes its sockets, and the page reloads its room from the server.
//
// This journey runs its own SQLite instance of the same binary: restoring
// the shared SQLite server's database would take away messages the other
// journeys, running in parallel, have just posted.

const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache', 'chat-target');
const serverBin = process.env.SERVER_BIN ?? path.join(targetDir, 'release', 'chat');
const siteRoot = process.env.SITE_ROOT ?? path.resolve(__dirname, '..', '..', 'target', 'site');
const port = Number(process.env.E2E_PORT ?? 3100) + 10;
const base = `http://127.0.0.1:${port}`;

let dir: string;
let databaseUrl: string;
let server: ChildProcess | undefined;

test.beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-e2e-restore-'));
  databaseUrl = `sqlite://${dir}/chat.db`;
  server = spawn(serverBin, [], {
    env: {
      ...process.env,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: siteRoot,
      DATABASE_URL: databaseUrl,
      BROADCAST_MIN_SECS: '0',
      SHUTDOWN_DRAIN_SECS: '0',
      RATE_POSTS_PER_IP: '0',
      RATE_POSTS_PER_SENDER: '0',
      RATE_WS_CONNECTS_PER_IP: '0',
      RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const api = await request.newContext({ baseURL: base });
  await expect
    .poll(async () => (await api.get('/health').catch(() => null))?.status(), { timeout: 30_000 })
    .toBe(200);
  await api.dispose();
});

test.afterAll(async () => {
  server?.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
});

/** `chat <args>` against the instance's database; returns what it printed. */
function chat(...args: string[]): string {
  return execFileSync(serverBin, args, {
    env: { ...process.env, DATABASE_URL: databaseUrl },
    encoding: 'utf8',
  });
}

async function post(content: string): Promise<void> {
  const api = await request.newContext({ baseURL: base });
  const res = await api.post('/api/messages', { data: { sender: 'writer', content } });
  expect(res.status(), await res.text()).toBe(201);
  await api.dispose();
}

test('a page open across a restore shows the restored history and what followed, without a reload', async ({
  page,
}) => {
  await openChat(page, 'reader', undefined, base);
  const kept = ['kept one', 'kept two', 'kept three'];
  for (const text of kept) await post(text);
  for (const text of kept) await expect(confirmed(page, text)).toHaveCount(1);

  const backup = path.join(dir, 'backup.db');
  expect(chat('backup', backup)).toContain('3 message(s)');

  const lost = ['lost one', 'lost two'];
  for (const text of lost) await post(text);
  for (const text of lost) await expect(confirmed(page, text)).toHaveCount(1);
  const epoch = await page.locator('main.chat').getAttribute('data-epoch');
  expect(epoch).toMatch(/^[0-9a-f]{32}$/);
  // Proof that the page is never reloaded: this survives only in this document.
  await page.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));

  expect(chat('restore', backup)).toContain('new epoch');
  await post('after one');

  // The page notices, drops what the restore took away and loads the room again.
  await expect(page.locator('main.chat')).not.toHaveAttribute('data-epoch', epoch!);
  await expect(confirmed(page, 'after one')).toHaveCount(1);
  for (const text of lost) await expect(confirmed(page, text)).toHaveCount(0);
  await expect(page.locator('main.chat')).toHaveAttribute('data-ready', 'true');
  await expect(page.locator('.conn')).toHaveAttribute('data-state', 'live');

  // Live again: a later post arrives once, after the others.
  await post('after two');
  await expect(confirmed(page, 'after two')).toHaveCount(1);
  await expect(page.locator('li.msg:not(.pending) .body')).toHaveText([...kept, 'after one', 'after two']);
  expect(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);
});
