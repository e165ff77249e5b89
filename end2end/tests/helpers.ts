import { expect, request, type Page, type Browser, type BrowserContext } from '@playwright/test';

/** A token that makes a test's messages unique in the shared lobby. */
export function uniq(label: string): string {
  return `${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Opens a room (the lobby by default) and waits until it is hydrated and live. */
export async function openChat(page: Page, name?: string, room?: string, base = ''): Promise<void> {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  if (process.env.E2E_DEBUG) {
    page.on('pageerror', (e) => console.log('PAGEERROR', String(e).slice(0, 400)));
    page.on('console', (m) => console.log('CONSOLE', m.type(), m.text().slice(0, 300)));
  }
  // The Content-Security-Policy must let the hydrated app run untouched.
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy/i.test(m.text())) errors.push(m.text());
  });
  await page.goto(`${base}${room ? `/r/${room}` : '/'}`);

  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.locator('.conn')).toHaveAttribute('data-state', 'live');
  if (name !== undefined) {
    await page.getByLabel('Name').fill(name);
  }
  expect(errors, 'no uncaught errors in the page').toEqual([]);
}

export async function send(page: Page, text: string): Promise<void> {
  const box = page.getByRole('textbox', { name: 'Message', exact: true });
  await box.fill(text);
  await box.press('Enter');
}

/** The confirmed message bubbles whose text is exactly `text`. */
export function confirmed(page: Page, text: string) {
  return page.locator('li.msg:not(.pending) .body', { hasText: text }).filter({ hasText: new RegExp(`^${escapeRe(text)}$`) });
}

export function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export async function newPage(browser: Browser, options = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  return { context, page };
}

export function messageBox(page: Page) {
  return page.getByRole('textbox', { name: 'Message', exact: true });
}

/** Posts through the JSON API as another person would: a guest API client,
 * not with the page's session cookie (which would make it the page's own). */
export async function apiPost(page: Page, room: string, sender: string, content: string): Promise<void> {
  const baseURL = page.url().startsWith('http') ? new URL(page.url()).origin : process.env.E2E_BASE_URL;
  const api = await request.newContext({ baseURL });
  const res = await api.post('/api/messages', { data: { room, sender, content } });
  expect(res.status(), await res.text()).toBe(201);
  await api.dispose();
}

/** Waits until the page's session holds its name and the socket shows it
 * (presence lists it), so typing signals carry it. */
export async function nameTaken(page: Page, name: string): Promise<void> {
  await expect(page.locator('details.presence ul')).toContainText(name);
}

/** Waits until the room page on screen is live again (after navigating). */
export async function waitLive(page: Page, room: string): Promise<void> {
  await expect(page.locator(`main.chat[data-room="${room}"]`)).toHaveAttribute('data-ready', 'true');
  await expect(page.locator('.conn')).toHaveAttribute('data-state', 'live');
}
