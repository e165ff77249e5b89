import { test, expect } from '@playwright/test';
import { openChat } from './helpers';

test('server broadcasts appear live and look different', async ({ page }) => {
  await openChat(page);
  const broadcasts = page.locator('li.msg.broadcast');
  const newest = async () =>
    Math.max(0, ...(await broadcasts.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))))));
  const before = await newest();
  // The test server broadcasts every 1-2 s.
  await expect.poll(newest, { timeout: 15_000 }).toBeGreaterThan(before);
  const latest = broadcasts.last();
  await expect(latest.locator('.sender')).toContainText('server');
  await expect(latest).not.toHaveClass(/own/);
});
