import { test, expect } from '@playwright/test';
import { apiPost, confirmed, openChat } from './helpers';

test('grouping, day separators, safe links and long words', async ({ page }) => {
  const room = `e2e-display-${Date.now().toString(36)}`;
  await apiPost(page, room, 'alice', 'first from alice');
  await apiPost(page, room, 'alice', 'second from alice');
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
