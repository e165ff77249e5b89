import { test, expect } from '@playwright/test';
import { confirmed, openChat, send, uniq } from './helpers';

test('reload shows the history, oldest first, rendered on the server', async ({ page, request }) => {
  await openChat(page, 'frank');
  const first = uniq('history-1');
  const second = uniq('history-2');
  await send(page, first);
  await expect(confirmed(page, first)).toHaveCount(1);
  await send(page, second);
  await expect(confirmed(page, second)).toHaveCount(1);

  // The server-rendered HTML already holds both messages.
  const html = await (await request.get('/')).text();
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
