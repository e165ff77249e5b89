import { test, expect, type Locator, type Page } from '@playwright/test';
import { confirmed, messageBox, nameTaken, newPage, openChat, send, uniq } from './helpers';

function roomName(label: string): string {
  return uniq(label).toLowerCase().replace(/[^a-z0-9-]/g, '').slice(0, 30);
}

/** Opens the actions menu of the message with `text`. */
async function menu(page: Page, text: string) {
  const item = page.locator('li.msg', { hasText: text });
  const summary = item.getByLabel('Message actions').first();
  // The button shows while the pointer is over the message. Broadcasts keep
  // arriving (every 1-2 s here) and scroll the list, which can move the
  // message out from under the pointer between hovering and clicking: aim
  // again, as a person would, until the menu is open.
  const details = item.locator('details.actions');
  await expect(async () => {
    if ((await details.getAttribute('open')) === null) {
      await page.mouse.move(0, 0);
      await item.hover();
      await summary.click({ timeout: 1000 });
    }
    await expect(details).toHaveAttribute('open', '', { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  return item;
}

/** Taps a reaction button until `after` shows. A tap can land beside the
 * button when a broadcast scrolls the list (see `menu`); a person taps again,
 * and only while the button is still there, so it never toggles twice. */
async function tap(button: Locator, after: Locator) {
  await expect(async () => {
    if ((await button.count()) > 0) await button.click({ timeout: 1000 });
    await expect(after).toBeVisible({ timeout: 3000 });
  }).toPass({ timeout: 15_000 });
}

test('a name held by someone else is refused in the page, and renaming works', async ({ browser }) => {
  const room = roomName('holds');
  const taken = uniq('holder').slice(0, 20);
  const a = await newPage(browser);
  const b = await newPage(browser);
  await openChat(a.page, taken, room);
  await a.page.getByLabel('Name').press('Tab');
  await nameTaken(a.page, taken);

  // Another browser tries the same name, in other letters' case.
  await openChat(b.page, taken.toUpperCase(), room);
  await b.page.getByLabel('Name').press('Tab');
  await expect(b.page.locator('#composer-error')).toContainText('in use by someone else');
  // Posting under it is refused too; the text stays.
  const text = uniq('not-as-you');
  await send(b.page, text);
  await expect(b.page.locator('li.msg.pending.failed', { hasText: text })).toHaveCount(1);
  await expect(b.page.locator('.send-error')).toContainText('in use by someone else');
  // A free name works, and the message goes out with it (Retry).
  const other = uniq('other').slice(0, 20);
  await b.page.getByLabel('Name').fill(other);
  await b.page.getByLabel('Name').press('Tab');
  await nameTaken(b.page, other);
  await expect(b.page.locator('#composer-error')).toHaveText('');
  await send(b.page, uniq('as-me'));
  await expect(b.page.locator('li.msg.own:not(.pending)')).toHaveCount(1);
  await a.context.close();
  await b.context.close();
});

test('Up in an empty composer edits your last message; Escape cancels; others see the edit', async ({ browser }) => {
  const room = roomName('edit');
  const a = await newPage(browser);
  const b = await newPage(browser);
  await openChat(a.page, uniq('editor').slice(0, 20), room);
  await openChat(b.page, uniq('watcher').slice(0, 20), room);
  const text = uniq('typo-here');
  await send(a.page, text);
  await expect(confirmed(a.page, text)).toHaveCount(1);
  await expect(confirmed(b.page, text)).toHaveCount(1);

  // Up, then Escape: nothing changes.
  await messageBox(a.page).press('ArrowUp');
  const editor = a.page.getByLabel('Edit message');
  await expect(editor).toBeFocused();
  await expect(editor).toHaveValue(text);
  await editor.press('Escape');
  await expect(editor).toHaveCount(0);
  await expect(messageBox(a.page)).toBeFocused();

  // Up again, change it, Enter saves.
  await messageBox(a.page).press('ArrowUp');
  const fixed = `${text} (fixed)`;
  await a.page.getByLabel('Edit message').fill(fixed);
  await a.page.getByLabel('Edit message').press('Enter');
  for (const page of [a.page, b.page]) {
    const item = page.locator('li.msg', { hasText: fixed });
    await expect(item.locator('.body')).toHaveText(fixed);
    await expect(item.locator('.edited')).toHaveText('(edited)');
  }
  // After a reload it is still the edited text.
  await b.page.reload();
  await expect(b.page.locator('li.msg', { hasText: fixed }).locator('.edited')).toHaveText('(edited)');
  await a.context.close();
  await b.context.close();
});

test('deleting your message asks first, then leaves a tombstone for everyone', async ({ browser }) => {
  const room = roomName('delete');
  const a = await newPage(browser);
  const b = await newPage(browser);
  await openChat(a.page, uniq('deleter').slice(0, 20), room);
  await openChat(b.page, uniq('seer').slice(0, 20), room);
  const text = uniq('regret');
  await send(a.page, text);
  await expect(confirmed(b.page, text)).toHaveCount(1);

  let item = await menu(a.page, text);
  await item.getByRole('button', { name: 'Delete' }).click();
  const confirm = a.page.getByRole('alertdialog', { name: 'Delete this message?' });
  await expect(confirm).toBeVisible();
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await expect(confirmed(a.page, text)).toHaveCount(1);

  item = await menu(a.page, text);
  await item.getByRole('button', { name: 'Delete' }).click();
  await a.page.getByRole('alertdialog', { name: 'Delete this message?' }).getByRole('button', { name: 'Delete' }).click();
  for (const page of [a.page, b.page]) {
    await expect(page.locator('li.msg', { hasText: text })).toHaveCount(0);
    await expect(page.locator('li.msg.deleted .tombstone')).toHaveText('Message deleted');
  }
  // Others have no Delete in their menu for it... nor any menu on a tombstone.
  await expect(b.page.locator('li.msg.deleted details.actions')).toHaveCount(0);
  await a.context.close();
  await b.context.close();
});

test('reactions show live in another browser, with counts and aria-pressed', async ({ browser }) => {
  const room = roomName('react');
  const a = await newPage(browser);
  const b = await newPage(browser);
  await openChat(a.page, uniq('poster').slice(0, 20), room);
  await openChat(b.page, uniq('fan').slice(0, 20), room);
  const text = uniq('react-to-this');
  await send(a.page, text);
  await expect(confirmed(b.page, text)).toHaveCount(1);

  const item = await menu(b.page, text);
  const chip = (page: Page, label: string) =>
    page.locator('li.msg', { hasText: text }).getByRole('button', { name: label });
  await tap(item.getByRole('button', { name: 'React with 👍' }), chip(b.page, '👍 1 person'));
  await expect(chip(b.page, '👍 1 person')).toHaveAttribute('aria-pressed', 'true');
  const theirs = chip(a.page, '👍 1 person');
  await expect(theirs).toHaveAttribute('aria-pressed', 'false');
  // A joins in from the chip: 2, pressed for A.
  await tap(theirs, chip(a.page, '👍 2 people'));
  await expect(chip(a.page, '👍 2 people')).toHaveAttribute('aria-pressed', 'true');
  await expect(chip(b.page, '👍 2 people')).toHaveAttribute('aria-pressed', 'true');
  // B takes it back.
  await tap(chip(b.page, '👍 2 people'), chip(b.page, '👍 1 person'));
  await expect(chip(a.page, '👍 1 person')).toHaveAttribute('aria-pressed', 'true');
  await expect(chip(b.page, '👍 1 person')).toHaveAttribute('aria-pressed', 'false');
  await a.context.close();
  await b.context.close();
});

test('a moderator bans an author: their page is disconnected and their posts refused', async ({ browser }) => {
  const room = roomName('ban');
  const spammer = await newPage(browser);
  const moderator = await newPage(browser);
  await openChat(spammer.page, uniq('spammer').slice(0, 20), room);
  const spam = uniq('buy-now');
  await send(spammer.page, spam);
  await expect(confirmed(spammer.page, spam)).toHaveCount(1);

  // Becoming a moderator.
  await moderator.page.goto('/moderate');
  await moderator.page.getByLabel('Moderator token').fill('not the token at all');
  await moderator.page.getByRole('button', { name: 'Become a moderator' }).click();
  await expect(moderator.page.getByRole('alert')).toContainText('not the moderator token');
  await moderator.page.getByLabel('Moderator token').fill(process.env.E2E_MODERATOR_TOKEN!);
  await moderator.page.getByRole('button', { name: 'Become a moderator' }).click();
  await expect(moderator.page.getByRole('status')).toContainText('You are now a moderator');

  await openChat(moderator.page, uniq('mod').slice(0, 20), room);
  const item = await menu(moderator.page, spam);
  await item.getByRole('button', { name: 'Ban author…' }).click();
  const dialog = moderator.page.getByRole('alertdialog', { name: 'Ban this author?' });
  await expect(dialog.getByRole('checkbox')).toBeChecked();
  await dialog.getByRole('button', { name: 'Ban' }).click();

  // The spammer's socket is closed and cannot come back; their message is gone.
  await expect(spammer.page.locator('.conn')).toHaveAttribute('data-state', 'reconnecting');
  await expect(moderator.page.locator('li.msg', { hasText: spam })).toHaveCount(0);
  const again = uniq('more-spam');
  await send(spammer.page, again);
  await expect(spammer.page.locator('.send-error')).toContainText('banned');
  await expect(moderator.page.locator('li.msg', { hasText: again })).toHaveCount(0);
  await spammer.context.close();
  await moderator.context.close();
});
