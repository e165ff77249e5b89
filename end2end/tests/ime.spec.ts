import { test, expect } from '@playwright/test';
import { openChat, uniq } from './helpers';

test('Enter while an IME is composing does not send', async ({ page }) => {
  await openChat(page, 'kenji');
  const box = page.getByRole('textbox', { name: 'Message', exact: true });
  const text = uniq('にほんご');
  await box.fill(text);

  // What Chromium delivers when Enter confirms a Japanese conversion:
  // isComposing is true (and keyCode 229 on some platforms).
  for (const init of [
    { key: 'Enter', isComposing: true },
    { key: 'Enter', keyCode: 229 },
  ]) {
    const sent = await box.evaluate((el, init) => {
      const ev = new KeyboardEvent('keydown', { ...init, bubbles: true, cancelable: true });
      if ('keyCode' in init) Object.defineProperty(ev, 'keyCode', { value: (init as { keyCode: number }).keyCode });
      el.dispatchEvent(ev);
      return ev.defaultPrevented;
    }, init);
    expect(sent, `keydown ${JSON.stringify(init)} must not be handled as send`).toBe(false);
  }

  // A real composition through the browser's IME interface, confirmed with Enter.
  const cdp = await page.context().newCDPSession(page);
  await box.focus();
  await cdp.send('Input.imeSetComposition', { text: 'へんかん', selectionStart: 4, selectionEnd: 4 });
  await page.keyboard.press('Enter');
  await cdp.send('Input.insertText', { text: 'へんかん' });

  await page.waitForTimeout(500);
  await expect(page.locator('li.msg', { hasText: text })).toHaveCount(0);
  await expect(box).toHaveValue(new RegExp(`^${text}`));

  // After the composition, a plain Enter sends.
  await box.press('Enter');
  await expect(page.locator('li.msg:not(.pending)', { hasText: text })).toHaveCount(1);
});
