import { test, expect } from '@playwright/test';
import { uniq } from './helpers';

test.use({ javaScriptEnabled: false });

test('without JavaScript the form still posts and the page comes back with the message', async ({ page }) => {
  await page.goto('/');
  await page.getByLabel('Name').fill('nojs-user');
  const text = uniq('posted-without-js');
  await page.getByRole('textbox', { name: 'Message', exact: true }).fill(text);
  await page.getByRole('button', { name: 'Send' }).click();
  await page.waitForURL((url) => url.pathname === '/r/lobby' && url.search === '');

  await expect(page.locator('li.msg .body', { hasText: text })).toHaveCount(1);
  await expect(page.locator('li.msg', { hasText: text })).toHaveClass(/own/);
  await expect(page.getByLabel('Name')).toHaveValue('nojs-user');
});

test('without JavaScript a refused post shows a readable error and keeps the text', async ({ page }) => {
  await page.goto('/');
  await page.getByLabel('Name').fill('nojs-user-2');
  // Only spaces: passes the browser's `required`, refused by the server.
  await page.getByRole('textbox', { name: 'Message', exact: true }).fill('   ');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'Please write a message.' })).toBeVisible();
  expect(new URL(page.url()).searchParams.get('error')).toBe('content_empty');
});

test('without JavaScript your own message can be deleted', async ({ page }) => {
  const room = uniq('nojs-del').toLowerCase().replace(/[^a-z0-9-]/g, '').slice(0, 30);
  await page.goto(`/r/${room}`);
  await page.getByLabel('Name').fill('nojs-deleter');
  const text = uniq('delete-me');
  await page.getByRole('textbox', { name: 'Message', exact: true }).fill(text);
  await page.getByRole('button', { name: 'Send' }).click();
  const item = page.locator('li.msg', { hasText: text });
  await expect(item).toHaveClass(/own/);
  // The menu is a <details>: it opens without JavaScript, and Delete is a form.
  await item.hover();
  await item.getByLabel('Message actions').first().click();
  await item.getByRole('button', { name: 'Delete' }).click();
  await page.waitForURL((url) => url.pathname === `/r/${room}`);
  await expect(page.locator('li.msg.deleted .tombstone')).toHaveText('Message deleted');
  await expect(page.locator('li.msg', { hasText: text })).toHaveCount(0);
});
