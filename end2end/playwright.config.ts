import { defineConfig } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// The real server binary, on a fresh SQLite file, with fast broadcasts.
const port = Number(process.env.E2E_PORT ?? 3100);
const baseURL = `http://127.0.0.1:${port}`;
process.env.E2E_BASE_URL = baseURL;
const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache', 'chat-target');
const serverBin = process.env.SERVER_BIN ?? path.join(targetDir, 'release', 'chat');
const siteRoot = process.env.SITE_ROOT ?? path.resolve(__dirname, '..', 'target', 'site');
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-e2e-'));

// Two instances on one PostgreSQL database serve the cross-instance journeys.
// scripts/test creates that database and sets E2E_PG_URL.
const pgUrl = process.env.E2E_PG_URL;
if (!pgUrl) {
  throw new Error(
    'E2E_PG_URL is not set: run ./scripts/test, or set it to an empty PostgreSQL database ' +
      '(e.g. postgres://postgres@127.0.0.1:5432/chat_e2e)',
  );
}
process.env.E2E_PG_URL_A = `http://127.0.0.1:${port + 1}`;
process.env.E2E_PG_URL_B = `http://127.0.0.1:${port + 2}`;
// One more instance with the production rate limits, for the journeys that
// test them; the others run without (every test posts from 127.0.0.1).
process.env.E2E_LIMITED_URL = `http://127.0.0.1:${port + 3}`;
// The moderator token of the first instance (the moderation journeys).
export const moderatorToken = 'e2e-moderator-token-0123456789';
process.env.E2E_MODERATOR_TOKEN = moderatorToken;
const noLimits = {
  RATE_POSTS_PER_IP: '0',
  RATE_POSTS_PER_SENDER: '0',
  RATE_WS_CONNECTS_PER_IP: '0',
};


function server(p: number, databaseUrl: string, limits: Record<string, string> = noLimits) {
  return {
    command: serverBin,
    url: `http://127.0.0.1:${p}/health`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: (process.env.E2E_SERVER_LOGS ? 'pipe' : 'ignore') as 'pipe' | 'ignore',
    stderr: 'pipe' as const,
    env: {
      LEPTOS_SITE_ADDR: `127.0.0.1:${p}`,
      LEPTOS_SITE_ROOT: siteRoot,
      DATABASE_URL: databaseUrl,
      BROADCAST_MIN_SECS: '1',
      BROADCAST_MAX_SECS: '2',
      SHUTDOWN_DRAIN_SECS: '0',
      RUST_LOG: 'warn',
      ...limits,
    },
  };
}

export const chromiumArgs = [

  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  workers: 2,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: chromiumArgs,
    },
  },
  webServer: [
    server(port, `sqlite://${dataDir}/e2e.db`, { ...noLimits, MODERATOR_TOKEN: moderatorToken }),
    // Two instances on one PostgreSQL database, for the cross-instance
    // journeys (scripts/test creates the database and sets E2E_PG_URL).
    server(port + 1, pgUrl),
    server(port + 2, pgUrl),
    // 3 posts per 30 s: one post comes back every 10 s, so a burst typed
    // on a busy machine cannot earn one back before its fourth post.
    server(port + 3, `sqlite://${dataDir}/limited.db`, { RATE_POSTS_PER_SENDER: '3/30s' }),

  ],
});

