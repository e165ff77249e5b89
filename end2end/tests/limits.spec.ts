import { test, expect } from '@playwright/test';
import { confirmed, messageBox, openChat, uniq } from './helpers';

// Against the instance with rate limits on: 3 posts per sender per 30 s
// (one comes back every 10 s).
const limited = () => process.env.E2E_LIMITED_URL!;

test('posting too fast says "slow down", keeps the text and sends it by itself later', async ({ page }) => {
  test.setTimeout(60_000);
  const room = uniq('limits').toLowerCase().replace(/[^a-z0-9-]/g, '').slice(0, 30);
  await openChat(page, uniq('fast'), room, limited());
  const texts = [1, 2, 3, 4].map((i) => uniq(`burst-${i}`));
  for (const t of texts) {
    await messageBox(page).fill(t);
    await messageBox(page).press('Enter');
  }
  // The fourth is refused for now: the page says so and keeps it.
  const waiting = page.locator('li.msg.pending.failed', { hasText: texts[3] });
  await expect(waiting).toHaveCount(1);
  await expect(waiting.locator('.send-error')).toContainText(/Slow down: sending again in \d+ s/);
  for (const t of texts.slice(0, 3)) await expect(confirmed(page, t)).toHaveCount(1);
  // Nobody has to press anything: it goes out once the wait is over.
  await expect(confirmed(page, texts[3])).toHaveCount(1, { timeout: 25_000 });
  await expect(page.locator('li.msg.pending')).toHaveCount(0);
});

test('the API answers 429 with Retry-After, and the page carries a strict CSP', async ({ request }) => {
  const sender = uniq('api');
  let refused;
  for (let i = 0; i < 5; i++) {
    const res = await request.post(`${limited()}/api/messages`, {
      data: { room: 'limits-api', sender, content: `n${i}` },
    });
    if (res.status() === 429) {
      refused = res;
      break;
    }
    expect(res.status()).toBe(201);
  }
  expect(refused, 'the fourth post in a burst is refused').toBeTruthy();
  expect(Number(refused!.headers()['retry-after'])).toBeGreaterThan(0);
  expect((await refused!.json()).error).toContain('too fast');

  const page = await request.get(`${limited()}/r/lobby`);
  const csp = page.headers()['content-security-policy'];
  expect(csp).toMatch(/script-src 'nonce-[A-Za-z0-9_-]+' 'strict-dynamic' 'wasm-unsafe-eval'/);
  expect(csp).toContain("frame-ancestors 'none'");
  const nonce = /'nonce-([^']+)'/.exec(csp)![1];
  expect(await page.text()).toContain(`nonce="${nonce}"`);
  expect(page.headers()['x-content-type-options']).toBe('nosniff');
  expect(page.headers()['x-frame-options']).toBe('DENY');
});
