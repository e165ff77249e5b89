import { test, expect } from '@playwright/test';
import { confirmed, newPage, openChat, send, uniq } from './helpers';

test('CJK, emoji and markup show as plain text, live and after reload', async ({ browser }) => {
  const a = await newPage(browser);
  const b = await newPage(browser);
  let dialogs = 0;
  for (const p of [a.page, b.page]) p.on('dialog', async (d) => { dialogs++; await d.dismiss(); });
  await openChat(a.page, '山田花子');
  await openChat(b.page, 'bob');

  const cjk = `こんにちは世界 🌸🍣 ${uniq('漢字')}`;
  const script = `<script>alert(1)</script> ${uniq('xss')}`;
  await send(a.page, cjk);
  await send(a.page, script);

  for (const p of [a.page, b.page]) {
    await expect(confirmed(p, cjk)).toHaveCount(1);
    await expect(confirmed(p, script)).toHaveCount(1);
    await expect(p.locator('li.msg .body script')).toHaveCount(0);
  }
  await expect(b.page.locator('li.msg', { hasText: cjk }).locator('.sender')).toHaveText('山田花子');
  await b.page.reload();
  await expect(confirmed(b.page, cjk)).toHaveCount(1);
  await expect(confirmed(b.page, script)).toHaveCount(1);
  expect(dialogs).toBe(0);
  await a.context.close();
  await b.context.close();
});
