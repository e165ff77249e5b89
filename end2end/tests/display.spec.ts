import { test, expect, type Page } from '@playwright/test';
import { apiPost, confirmed, openChat } from './helpers';

/** Posts two messages from alice in a fresh room, again in another room if a
 * server broadcast (shown interleaved by time) happened to fall between them. */
async function alicePair(page: Page): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const room = `e2e-display-${Date.now().toString(36)}-${attempt}`;
    const times: number[] = [];
    for (const content of ['first from alice', 'second from alice']) {
      const res = await page.request.post('/api/messages', { data: { room, sender: 'alice', content } });
      expect(res.status()).toBe(201);
      times.push(Date.parse((await res.json()).created_at));
    }
    const res = await page.request.get('/api/messages?room=announcements&limit=20');
    const between = (await res.json()).messages.some(
      (m: { created_at: string }) => Date.parse(m.created_at) >= times[0] && Date.parse(m.created_at) <= times[1],
    );
    if (!between || attempt >= 5) return room;
  }
}

test('grouping, day separators, safe links and long words', async ({ page }) => {
  const room = await alicePair(page);
  await apiPost(page, room, 'bob', 'see https://example.com/docs?x=1. and javascript:alert(1)');
  await apiPost(page, room, 'bob', 'x'.repeat(300));
  await openChat(page, 'viewer', room);

  // Consecutive messages of one sender share one header.
  const second = page.locator('li.msg', { hasText: 'second from alice' });
  await expect(second).toHaveClass(/grouped/);
  await expect(second.locator('.meta')).toBeHidden();
  await expect(page.locator('li.msg', { hasText: 'first from alice' })).not.toHaveClass(/grouped/);
  await expect(page.locator('li.msg', { hasText: 'see https' })).not.toHaveClass(/grouped/);

  // A day separator, in the browser's time zone.
  await expect(page.locator('li.day').first()).toHaveText('Today');

  // http(s) links are links that open safely; nothing else is.
  const link = page.locator('li.msg .body a');
  await expect(link).toHaveCount(1);
  await expect(link).toHaveAttribute('href', 'https://example.com/docs?x=1');
  await expect(link).toHaveAttribute('rel', 'noopener noreferrer');
  await expect(link).toHaveAttribute('target', '_blank');
  await expect(confirmed(page, 'see https://example.com/docs?x=1. and javascript:alert(1)')).toHaveCount(1);

  // A very long word wraps inside its bubble.
  const long = page.locator('li.msg', { hasText: 'xxxxxxxxxx' });
  const bubble = (await long.boundingBox())!;
  const list = (await page.locator('ol.messages').boundingBox())!;
  expect(bubble.x + bubble.width).toBeLessThanOrEqual(list.x + list.width + 1);
});
