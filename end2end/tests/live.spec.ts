import { test, expect } from '@playwright/test';
import { confirmed, newPage, openChat, send, uniq } from './helpers';

test('a message posted in one browser appears live in another, and as own in the first', async ({ browser }) => {
  const a = await newPage(browser);
  const b = await newPage(browser);
  await openChat(a.page, 'alice');
  await openChat(b.page, 'bob');

  const text = uniq('hello-from-alice');
  await send(a.page, text);

  // B sees it without reloading.
  await expect(confirmed(b.page, text)).toHaveCount(1);
  const inB = b.page.locator('li.msg', { hasText: text });
  await expect(inB.locator('.sender')).toHaveText('alice');
  await expect(inB).not.toHaveClass(/own/);

  // A sees it confirmed (not pending), marked as its own, once.
  await expect(confirmed(a.page, text)).toHaveCount(1);
  await expect(a.page.locator('li.msg.pending')).toHaveCount(0);
  await expect(a.page.locator('li.msg', { hasText: text })).toHaveClass(/own/);
  // The box is cleared for the next message.
  await expect(a.page.getByRole('textbox', { name: 'Message', exact: true })).toHaveValue('');

  await a.context.close();
  await b.context.close();
});

test('Shift+Enter makes a new line instead of sending', async ({ page }) => {
  await openChat(page, 'carol');
  const box = page.getByRole('textbox', { name: 'Message', exact: true });
  const first = uniq('line-one');
  await box.fill(first);
  await box.press('Shift+Enter');
  await box.pressSequentially('line two');
  await expect(box).toHaveValue(`${first}\nline two`);
  await box.press('Enter');
  await expect(page.locator('li.msg:not(.pending) .body', { hasText: first })).toHaveText(`${first}\nline two`);
});

test('the page is labelled, a live log, and remembers the name', async ({ page }) => {
  await openChat(page, 'dora');
  await expect(page.getByRole('log')).toHaveAttribute('aria-live', 'polite');
  await expect(page.getByRole('button', { name: 'Send' })).toBeVisible();
  await send(page, uniq('remember-me'));
  await expect(page.locator('li.msg.pending')).toHaveCount(0);
  await page.reload();
  await expect(page.getByLabel('Name')).toHaveValue('dora');
});

test('invalid input is refused in the page and the text is kept', async ({ page }) => {
  await openChat(page, '');
  await page.getByLabel('Name').fill('');
  const text = uniq('no-name-yet');
  await send(page, text);
  await expect(page.getByRole('alert').filter({ hasText: 'Please enter a name.' })).toBeVisible();
  await expect(page.getByRole('textbox', { name: 'Message', exact: true })).toHaveValue(text);
  await expect(page.locator('li.msg', { hasText: text })).toHaveCount(0);

  await page.getByLabel('Name').fill('erin');
  await page.getByRole('textbox', { name: 'Message', exact: true }).fill('x'.repeat(2001));
  await expect(page.locator('.counter')).toHaveText('2001 / 2000');
  await expect(page.getByRole('button', { name: 'Send' })).toBeDisabled();
});

test('a failed send shows a readable error and Retry, and the text is not lost', async ({ page }) => {
  await openChat(page, 'unlucky');
  // The next post fails as if the database were down.
  let fail = true;
  await page.route('**/api/post_message', async (route) => {
    if (fail) {
      await route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ Unavailable: null }),
      });
    } else {
      await route.continue();
    }
  });
  const text = uniq('retry-me');
  await send(page, text);
  const pending = page.locator('li.msg.pending', { hasText: text });
  await expect(pending).toHaveClass(/failed/);
  await expect(pending.getByRole('alert')).toContainText('temporarily unavailable');
  await expect(confirmed(page, text)).toHaveCount(0);

  fail = false;
  await pending.getByRole('button', { name: 'Retry' }).click();
  await expect(confirmed(page, text)).toHaveCount(1);
  await expect(page.locator('li.msg.pending')).toHaveCount(0);
});
