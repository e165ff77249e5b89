import { test, expect, type Page } from '@playwright/test';
import { messageBox, nameTaken, newPage, openChat, send, confirmed } from './helpers';

/** A name nobody else in this database holds (names stay held by the
 * session that used them; other journeys use plain "alice" and "bob"). */
function person(name: string): string {
  return `${name}-${Math.random().toString(36).slice(2, 7)}`;
}

async function presence(page: Page) {
  return page.locator('details.presence');
}

test('presence: who is in the room, live; typing shows and goes away', async ({ browser }) => {
  const room = `e2e-people-${Date.now().toString(36)}`;
  const [alice, bob] = [person('alice'), person('bob')];
  const a = await newPage(browser);
  const b = await newPage(browser);
  await openChat(a.page, alice, room);
  await a.page.getByLabel('Name').press('Tab'); // commit the name (change event)
  await openChat(b.page, bob, room);
  await b.page.getByLabel('Name').press('Tab');
  await nameTaken(a.page, bob);
  await nameTaken(a.page, alice);

  const pa = await presence(a.page);
  await expect(pa.locator('summary')).toContainText('2 here');
  await pa.locator('summary').click();
  await expect(pa.getByRole('listitem')).toHaveText([alice, bob]);
  // Escape closes the list.
  await a.page.keyboard.press('Escape');
  await expect(pa).not.toHaveAttribute('open', '');

  // Typing in B shows in A, then disappears 5 s after the last keystroke.
  await messageBox(b.page).pressSequentially('hel');
  await expect(a.page.locator('.typing')).toHaveText(`${bob} is typing…`);
  await expect(a.page.locator('.typing')).toHaveText('', { timeout: 8000 });
  await expect(b.page.locator('.typing')).toHaveText('');

  // Sending clears the indicator at once.
  await messageBox(b.page).pressSequentially('lo');
  await expect(a.page.locator('.typing')).toHaveText(`${bob} is typing…`);
  await messageBox(b.page).press('Enter');
  await expect(confirmed(a.page, 'hello')).toHaveCount(1);
  await expect(a.page.locator('.typing')).toHaveText('');

  // B leaves: A sees one person.
  await b.context.close();
  await expect(pa.locator('summary')).toContainText('1 here');
  await a.context.close();
});

const pgA = process.env.E2E_PG_URL_A;
const pgB = process.env.E2E_PG_URL_B;

test('presence and typing across two server instances', async ({ browser }) => {

  const room = `e2e-cluster-${Date.now().toString(36)}`;
  const [anna, ben] = [person('anna'), person('ben')];
  const a = await newPage(browser, { baseURL: pgA });
  const b = await newPage(browser, { baseURL: pgB });
  await openChat(a.page, anna, room);
  await a.page.getByLabel('Name').press('Tab');
  await openChat(b.page, ben, room);
  await b.page.getByLabel('Name').press('Tab');
  await nameTaken(a.page, anna);
  await nameTaken(b.page, ben);
  await expect(a.page.locator('details.presence summary')).toContainText('2 here');
  await expect(b.page.locator('details.presence summary')).toContainText('2 here');
  await messageBox(a.page).pressSequentially('hi');
  await expect(b.page.locator('.typing')).toHaveText(`${anna} is typing…`);
  await send(a.page, 'across instances');
  await expect(confirmed(b.page, 'across instances')).toHaveCount(1);
  await a.context.close();
  await expect(b.page.locator('details.presence summary')).toContainText('1 here');
  await b.context.close();
});
