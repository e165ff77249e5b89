import { test, expect } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import * as path from 'node:path';
import { apiPost, messageBox, openChat } from './helpers';

const shots = path.resolve(__dirname, '..', '..', 'docs', 'screenshots');

for (const scheme of ['light', 'dark'] as const) {
  test(`the room page has no axe violations (${scheme})`, async ({ page }) => {
    await page.emulateMedia({ colorScheme: scheme });
    const room = `e2e-a11y-${scheme}`;
    await apiPost(page, room, 'hanako', 'こんにちは！ Welcome to the room 🌸');
    await apiPost(page, room, 'sam', 'Docs are at https://example.com/guide');
    await apiPost(page, room, 'sam', 'See you there.');
    await openChat(page, `you-${scheme}`, room);
    await page.getByLabel('Name').press('Tab');
    await messageBox(page).fill('Hi everyone!');
    await messageBox(page).press('Enter');
    await expect(page.locator('li.msg.pending')).toHaveCount(0);
    const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
    expect(results.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(', ')}`)).toEqual([]);
    await page.setViewportSize({ width: 1000, height: 640 });
    await page.screenshot({ path: path.join(shots, `room-${scheme}.png`) });
  });
}

test('keyboard only: tab order, visible focus, Escape closes the rooms menu', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 760 });
  await openChat(page);

  // The first Tab reaches the skip link; following it lands in the message box.
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Skip to the message box' })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(messageBox(page)).toBeFocused();

  // The rooms menu opens from its button and closes with Escape.
  const menu = page.getByRole('button', { name: 'Rooms' });
  await menu.focus();
  const outline = await menu.evaluate((el) => getComputedStyle(el).outlineStyle);
  expect(outline).not.toBe('none');
  await page.keyboard.press('Enter');
  await expect(menu).toHaveAttribute('aria-expanded', 'true');
  await expect(page.getByRole('navigation', { name: 'Rooms' })).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(menu).toHaveAttribute('aria-expanded', 'false');
  await expect(page.getByRole('navigation', { name: 'Rooms' })).toBeHidden();
});
