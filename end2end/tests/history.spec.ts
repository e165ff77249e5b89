import { test, expect } from '@playwright/test';
import { apiPost, confirmed, openChat, send, uniq } from './helpers';

test('reload shows the history, oldest first, rendered on the server', async ({ page, request }) => {
  await openChat(page, 'frank');
  const first = uniq('history-1');
  const second = uniq('history-2');
  await send(page, first);
  await expect(confirmed(page, first)).toHaveCount(1);
  await send(page, second);
  await expect(confirmed(page, second)).toHaveCount(1);

  // The server-rendered HTML already holds both messages.
  const html = await (await request.get('/r/lobby')).text();
  expect(html).toContain(first);
  expect(html).toContain(second);
  expect(html.indexOf(first)).toBeLessThan(html.indexOf(second));

  await page.reload();
  await expect(confirmed(page, first)).toHaveCount(1);
  await expect(confirmed(page, second)).toHaveCount(1);
  const bodies = await page.locator('li.msg .body').allTextContents();
  expect(bodies.indexOf(first)).toBeLessThan(bodies.indexOf(second));
  // The newest message is in view (the list starts scrolled to the bottom).
  await expect(confirmed(page, second)).toBeInViewport();
});

test('scrolling to the top loads older messages without jumping, until the start', async ({ page }) => {
  const room = `e2e-hist-${Date.now().toString(36)}`;
  for (let i = 1; i <= 75; i++) await apiPost(page, room, 'poster', `old message ${i}`);
  await openChat(page, 'history-reader', room);
  // The page renders the latest 50.
  await expect(page.locator('li.msg:not(.broadcast)')).toHaveCount(50);
  await expect(confirmed(page, 'old message 26')).toHaveCount(1);
  await expect(confirmed(page, 'old message 25')).toHaveCount(0);

  const anchor = confirmed(page, 'old message 26');
  await anchor.scrollIntoViewIfNeeded();
  const scroller = page.locator('.scroller');
  // Scroll to the very top: older messages load.
  await scroller.evaluate((el) => el.scrollTo({ top: -el.scrollHeight }));
  await expect(confirmed(page, 'old message 1')).toHaveCount(1);
  await expect(page.locator('li.msg:not(.broadcast)')).toHaveCount(75);
  await expect(page.getByText(`This is the start of #${room}.`)).toBeVisible();
  const bodies = await page.locator('li.msg:not(.broadcast) .body').allTextContents();
  expect(bodies.slice(0, 3)).toEqual(['old message 1', 'old message 2', 'old message 3']);

  // Loading did not move what the reader was looking at.
  const y1 = (await anchor.boundingBox())!.y;
  await scroller.evaluate((el) => el.scrollBy(0, 10));
  await scroller.evaluate((el) => el.scrollBy(0, -10));
  const y2 = (await anchor.boundingBox())!.y;
  expect(Math.abs(y2 - y1)).toBeLessThan(2);
});

test('new messages keep the view at the bottom only when the reader is there', async ({ page }) => {
  const room = `e2e-pin-${Date.now().toString(36)}`;
  for (let i = 1; i <= 40; i++) await apiPost(page, room, 'poster', `filler ${i}`);
  await openChat(page, 'pinned', room);
  // At the bottom: a new message is shown.
  await apiPost(page, room, 'poster', 'arrives at bottom');
  await expect(confirmed(page, 'arrives at bottom')).toBeInViewport();

  // Scrolled up: new messages do not move the view.
  const scroller = page.locator('.scroller');
  await scroller.evaluate((el) => el.scrollTo({ top: -600 }));
  const anchor = confirmed(page, 'filler 20');
  await anchor.scrollIntoViewIfNeeded();
  const before = (await anchor.boundingBox())!.y;
  await apiPost(page, room, 'poster', 'arrives while reading');
  await expect(confirmed(page, 'arrives while reading')).toHaveCount(1);
  await page.waitForTimeout(200);
  const after = (await anchor.boundingBox())!.y;
  expect(Math.abs(after - before)).toBeLessThan(2);
  await expect(confirmed(page, 'arrives while reading')).not.toBeInViewport();
});
