import { test, expect } from '@playwright/test';
import { apiPost, confirmed, openChat } from './helpers';

test('messages that arrive while scrolled up get a divider, a jump button and a title count', async ({ page }) => {
  const room = `e2e-unread-${Date.now().toString(36)}`;
  for (let i = 1; i <= 40; i++) await apiPost(page, room, 'poster', `before ${i}`);
  await openChat(page, `reader-${room.slice(-6)}`, room);
  await expect(page).toHaveTitle(`#${room} · Chat`);
  await expect(page.locator('li.divider')).toHaveCount(0);

  await page.locator('.scroller').evaluate((el) => el.scrollTo({ top: -800 }));
  await expect(page.getByRole('button', { name: 'Jump to latest ↓' })).toBeVisible();
  await apiPost(page, room, 'other', 'unread one');
  await apiPost(page, room, 'other', 'unread two');
  await expect(page.getByRole('button', { name: '2 new messages ↓' })).toBeVisible();
  await expect(page).toHaveTitle(`(2) #${room} · Chat`);
  // The divider sits right before the first unread message.
  const items = page.locator('ol.messages > li');
  const texts = await items.allTextContents();
  const at = texts.findIndex((t) => t.includes('New messages'));
  expect(at).toBeGreaterThan(0);
  expect(texts[at + 1]).toContain('unread one');

  await page.getByRole('button', { name: '2 new messages ↓' }).click();
  await expect(confirmed(page, 'unread two')).toBeInViewport();
  await expect(page).toHaveTitle(`#${room} · Chat`);
  await expect(page.getByRole('button', { name: /new message|Jump to latest/ })).toBeHidden();
});

test('messages that arrive while the tab is hidden are counted in the title', async ({ page }) => {
  const room = `e2e-hidden-${Date.now().toString(36)}`;
  await openChat(page, `reader-${room.slice(-6)}`, room);
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));
  });
  await apiPost(page, room, 'other', 'while away');
  await expect(page).toHaveTitle(`(1) #${room} · Chat`);
  await expect(page.locator('li.divider')).toHaveCount(1);
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
    document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));

  });
  await expect(page).toHaveTitle(`#${room} · Chat`);
});
