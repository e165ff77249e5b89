import { test, expect } from '@playwright/test';
import { apiPost, confirmed, messageBox, newPage, openChat, send, uniq, waitLive } from './helpers';

test('rooms: join by name, shareable URL, back/forward, one WebSocket for the page', async ({ page }) => {
  const sockets: string[] = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await openChat(page, uniq('roomer'));
  const room = uniq('e2e').toLowerCase().replace(/[^a-z0-9-]/g, '').slice(0, 30);

  await page.getByLabel('Join or create a room').fill(room);
  await page.getByRole('button', { name: 'Go' }).click();
  await expect(page).toHaveURL(new RegExp(`/r/${room}$`));
  await waitLive(page, room);
  await expect(page.getByRole('heading', { level: 1 })).toContainText(room);
  const text = uniq('in-new-room');
  await send(page, text);
  await expect(confirmed(page, text)).toHaveCount(1);

  // Back to the lobby and forward again, without reloads.
  await page.goBack();
  await waitLive(page, 'lobby');
  await expect(confirmed(page, text)).toHaveCount(0);
  await page.goForward();
  await waitLive(page, room);
  await expect(confirmed(page, text)).toHaveCount(1);
  expect(sockets.length, `one WebSocket for the whole page: ${sockets}`).toBe(1);

  // Live messages still arrive in the room after switching back and forth.
  const live = uniq('live-after-switch');
  await apiPost(page, room, 'other', live);
  await expect(confirmed(page, live)).toHaveCount(1);

  // The URL is shareable: a fresh page opens the room with its history.
  const other = await page.context().newPage();
  await other.goto(`/r/${room}`);
  await expect(confirmed(other, text)).toHaveCount(1);

  // Invalid names are refused in the page.
  await page.getByLabel('Join or create a room').fill('Bad Name!');
  await page.getByRole('button', { name: 'Go' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'Room names are' })).toBeVisible();
});

test('the room list shows active rooms, newest first, with unread counts for this browser', async ({ browser }) => {
  const a = await newPage(browser);
  const room1 = `e2e-r1-${Date.now().toString(36)}`;
  const room2 = `e2e-r2-${Date.now().toString(36)}`;
  await apiPost(a.page, room1, 'x', 'first room');
  await apiPost(a.page, room2, 'x', 'second room');
  // Visit room1 (marks it seen), then go to the lobby.
  await openChat(a.page, uniq('reader'), room1);
  await a.page.getByRole('link', { name: `#lobby` }).click();
  await waitLive(a.page, 'lobby');
  // Two new messages arrive in room1 meanwhile.
  await apiPost(a.page, room1, 'x', 'news 1');
  await apiPost(a.page, room1, 'x', 'news 2');
  await a.page.reload();
  const links = a.page.locator('nav.rooms .room-links a');
  await expect(a.page.getByRole('link', { name: `#${room1}, 2 unread` })).toBeVisible();
  const names = await links.locator('.name').allTextContents();
  expect(names.indexOf(room1)).toBeLessThan(names.indexOf(room2));
  await a.page.getByRole('link', { name: `#${room1}, 2 unread` }).click();
  await waitLive(a.page, room1);
  await expect(confirmed(a.page, 'news 2')).toHaveCount(1);
  await a.page.getByRole('link', { name: '#lobby' }).click();
  await expect(a.page.getByRole('link', { name: `#${room1}` , exact: true })).toBeVisible();
  await a.context.close();
});

test('broadcasts reach a page whatever room it shows', async ({ page }) => {
  await openChat(page, uniq('listener'), `e2e-quiet-${Date.now().toString(36)}`);
  const broadcasts = page.locator('li.msg.broadcast');
  const before = await broadcasts.count();
  await expect.poll(() => broadcasts.count(), { timeout: 10_000 }).toBeGreaterThan(before);
  await expect(messageBox(page)).toBeVisible();
});

for (const width of [1200, 1024, 760]) {
  test(`rooms: the join button is whole in the sidebar at ${width} px`, async ({ page }) => {
    await page.setViewportSize({ width, height: 800 });
    await openChat(page);
    const sidebar = await page.locator('nav.rooms').boundingBox();
    const go = page.getByRole('button', { name: 'Go' });
    const button = await go.boundingBox();
    expect(sidebar && button, 'both are laid out').toBeTruthy();
    // Fully inside the sidebar, and wide enough to show "Go".
    expect(button!.x).toBeGreaterThanOrEqual(sidebar!.x);
    expect(button!.x + button!.width).toBeLessThanOrEqual(sidebar!.x + sidebar!.width);
    expect(await go.evaluate((b) => b.scrollWidth <= b.clientWidth)).toBe(true);
  });
}

test('a missing page reached inside the app says so, under the app title', async ({ page }) => {
  await openChat(page);
  await expect(page).toHaveTitle('#lobby · Chat');
  // A same-origin link the router follows without loading a new document.
  await page.evaluate(() => {
    (window as unknown as { sameDocument: boolean }).sameDocument = true;
    const link = document.createElement('a');
    link.href = '/no/such/page';
    document.body.append(link);
    link.click();
  });
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
  await expect(page).toHaveTitle('Chat');
  // And back: the room's title again.
  await page.goBack();
  await waitLive(page, 'lobby');
  await expect(page).toHaveTitle('#lobby · Chat');
});
