import { test, expect, type WebSocketRoute } from '@playwright/test';
import { confirmed, openChat, uniq } from './helpers';

test('after the WebSocket is cut, messages posted meanwhile appear exactly once, in order', async ({ page, request }) => {
  // Reconnects back off exponentially (up to 15 s, with jitter) while the
  // network is down; give the slowest schedule room.
  test.setTimeout(60_000);
  let allow = true;
  const routes: WebSocketRoute[] = [];
  await page.routeWebSocket(/\/ws/, (ws) => {
    if (!allow) {
      ws.close({ code: 4000, reason: 'test: network down' });
      return;
    }
    ws.connectToServer();
    routes.push(ws);
  });
  await openChat(page, 'rita');

  // Cut the connection and keep it down.
  allow = false;
  for (const ws of routes) await ws.close({ code: 4000, reason: 'test: cut' });
  await expect(page.locator('.conn')).toHaveAttribute('data-state', 'reconnecting');

  const texts = [uniq('missed-1'), uniq('missed-2'), uniq('missed-3')];
  for (const content of texts) {
    const res = await request.post('/api/messages', { data: { sender: 'offline-poster', content } });
    expect(res.status()).toBe(201);
  }
  await page.waitForTimeout(300);
  for (const t of texts) await expect(confirmed(page, t)).toHaveCount(0);

  // Back online: the client resumes from its last seq.
  allow = true;
  await expect(page.locator('.conn')).toHaveAttribute('data-state', 'live', { timeout: 40_000 });

  for (const t of texts) await expect(confirmed(page, t)).toHaveCount(1);
  const bodies = await page.locator('li.msg .body').allTextContents();
  const positions = texts.map((t) => bodies.indexOf(t));
  expect(positions).toEqual([...positions].sort((x, y) => x - y));

  // And live delivery works again on the new connection.
  const after = uniq('after-reconnect');
  await request.post('/api/messages', { data: { sender: 'offline-poster', content: after } });
  await expect(confirmed(page, after)).toHaveCount(1);
  for (const t of texts) await expect(confirmed(page, t)).toHaveCount(1);
});
