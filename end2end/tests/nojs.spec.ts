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
  await page.getByLabel('Name').fill('nojs-user');
  // Only spaces: passes the browser's `required`, refused by the server.
  await page.getByRole('textbox', { name: 'Message', exact: true }).fill('   ');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'Please write a message.' })).toBeVisible();
  expect(new URL(page.url()).searchParams.get('error')).toBe('content_empty');
});
