// The credential lifecycle on the Accounts page (/users), driven as a person would: API tokens
// with an expiry (created, listed without their secret, revoked), disabled accounts, changing
// one's own password, and "sign out everywhere". Each claim is checked where it takes effect:
// the REST API for tokens, the sign-in form and other browser sessions for passwords.
import { APIRequestContext, expect, Locator, Page, test } from '@playwright/test';
import { Concord, signIn, submitSignIn } from './concord';

const DAY_MS = 86_400_000;

/** A fresh server with one administrator, `admin`, made by the CLI. */
async function serverWithAdmin(): Promise<Concord> {
  const concord = Concord.fresh();
  concord.cli(['user', 'add', '--admin', 'admin'], 'admin-password\n');
  return concord;
}

/** Opens the Accounts page from the top bar and waits until it answers input. */
async function openAccounts(page: Page, base: string, link: 'Accounts' | 'Account') {
  await page.goto(base);
  await page.locator('body[data-hydrated=true]').waitFor();
  await page.getByRole('navigation').getByRole('link', { name: link, exact: true }).click();
  await expect(page).toHaveURL(/\/users$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(link === 'Accounts' ? 'Accounts' : 'Your account');
  await page.locator('body[data-hydrated=true]').waitFor();
}

/** The sign-in form refuses `name` with `password`: an error shows and nobody is signed in. */
async function signInRefused(page: Page, base: string, name: string, password: string) {
  await submitSignIn(page, base, name, password);
  // The message is the engine's generic one (the same for a wrong password, an unknown name
  // and a disabled account, so that names cannot be probed).
  await expect(page.getByRole('alert')).toHaveText(/\S/);
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByTestId('signed-in-as')).toHaveCount(0);
}

/** The status of `GET /api/v1/projects` with `token` as the bearer. */
async function projectsStatus(request: APIRequestContext, base: string, token: string): Promise<number> {
  const r = await request.get(`${base}/api/v1/projects`, { headers: { Authorization: `Bearer ${token}` } });
  return r.status();
}

/** Creates a non-admin account through the "New account" form. */
async function createAccountInUi(page: Page, name: string, password: string) {
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Password (8 characters or more)', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByText('Account created.')).toBeVisible();
  await expect(accountRow(page, name)).toHaveAttribute('data-disabled', 'false');
}

/** The row of account `name` in the admin's account list. */
function accountRow(page: Page, name: string): Locator {
  return page.getByTestId('account').filter({ has: page.getByText(new RegExp(`^${name}( \\(admin\\))?( — disabled)?$`)) });
}

/** The row of the token named `name` in the tokens table. */
function tokenRow(page: Page, name: string): Locator {
  return page.getByTestId('tokens').locator('tbody tr').filter({ has: page.getByRole('cell', { name, exact: true }) });
}

/** Milliseconds since the epoch of a "YYYY-MM-DD HH:MM UTC" cell. */
function parseUtcMinute(text: string): number {
  const m = text.match(/^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}) UTC$/);
  expect(m, `"${text}" is a UTC minute`).not.toBeNull();
  return Date.UTC(Number(m![1]), Number(m![2]) - 1, Number(m![3]), Number(m![4]), Number(m![5]));
}

test('an API token made on the Accounts page expires in 7 days, never shows its secret again, and stops working when revoked', async ({ page, request }) => {
  test.setTimeout(60_000);
  const concord = await serverWithAdmin();
  await concord.start();
  try {
    const base = concord.base;
    await signIn(page, base, 'admin', 'admin-password');
    await openAccounts(page, base, 'Accounts');
    await createAccountInUi(page, 'anna', 'anna-password');

    // A token named "ci" that expires after 7 days.
    await page.getByLabel('Token name', { exact: true }).fill('ci');
    await page.getByLabel('Expires after days', { exact: true }).fill('7');
    const before = Date.now();
    await page.getByRole('button', { name: 'Create token' }).click();
    const shown = page.getByTestId('token');
    await expect(shown).toHaveText(/^\S{16,}$/);
    const after = Date.now();
    const secret = (await shown.textContent())!;

    // After a reload the token is listed with its expiry, and its secret is nowhere on the page.
    await page.reload();
    await page.locator('body[data-hydrated=true]').waitFor();
    const row = tokenRow(page, 'ci');
    await expect(row).toHaveCount(1);
    const headers = await page.getByTestId('tokens').locator('thead th').allTextContents();
    const expires = headers.indexOf('Expires');
    expect(expires, headers.join('|')).toBeGreaterThanOrEqual(0);
    await expect(row.locator('td').nth(headers.indexOf('Account'))).toHaveText('admin');
    const expiresMs = parseUtcMinute((await row.locator('td').nth(expires).textContent())!.trim());
    // The cell is cut to the minute.
    expect(expiresMs).toBeGreaterThanOrEqual(before + 7 * DAY_MS - 60_000);
    expect(expiresMs).toBeLessThanOrEqual(after + 7 * DAY_MS);
    await expect(page.getByTestId('token')).toHaveCount(0);
    expect(await page.content()).not.toContain(secret);

    // The secret works against the REST API…
    expect(await projectsStatus(request, base, secret)).toBe(200);

    // …until it is revoked in the table.
    await row.getByRole('button', { name: 'Revoke' }).click();
    await expect(tokenRow(page, 'ci')).toHaveCount(0);
    expect(await projectsStatus(request, base, secret)).toBe(401);
    await page.reload();
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect(page.getByText('No API tokens.')).toBeVisible();
  } finally {
    await concord.dispose();
  }
});

test('a disabled account cannot sign in and its API tokens answer 401; enabled again, it signs in', async ({ page, browser, request }) => {
  test.setTimeout(60_000);
  const concord = await serverWithAdmin();
  const adminToken = concord.cli(['token', 'add', 'admin']).trim();
  await concord.start();
  const annaContext = await browser.newContext();
  try {
    const base = concord.base;
    const annaPage = await annaContext.newPage();
    await signIn(page, base, 'admin', 'admin-password');
    await openAccounts(page, base, 'Accounts');
    await createAccountInUi(page, 'anna', 'anna-password');

    // A token of anna's made before she is disabled, by the admin over the REST API.
    const made = await request.post(`${base}/api/v1/tokens`, {
      headers: { Authorization: `Bearer ${adminToken}` },
      data: { name: 'script', user: 'anna' },
    });
    expect(made.status(), await made.text()).toBe(201);
    const annaToken: string = (await made.json()).token;
    expect(await projectsStatus(request, base, annaToken)).toBe(200);
    await signIn(annaPage, base, 'anna', 'anna-password');

    await accountRow(page, 'anna').getByRole('button', { name: 'Disable' }).click();
    await expect(accountRow(page, 'anna')).toHaveAttribute('data-disabled', 'true');
    await expect(accountRow(page, 'anna')).toContainText('disabled');
    await expect(page.getByText("Account updated; a disabled account's sessions ended.")).toBeVisible();

    // Her open session ended, her password no longer signs in, her token is refused.
    await annaPage.reload();
    await expect(annaPage).toHaveURL(/\/login$/);
    await signInRefused(annaPage, base, 'anna', 'anna-password');
    expect(await projectsStatus(request, base, annaToken)).toBe(401);

    await accountRow(page, 'anna').getByRole('button', { name: 'Enable' }).click();
    await expect(accountRow(page, 'anna')).toHaveAttribute('data-disabled', 'false');
    await expect(accountRow(page, 'anna')).not.toContainText('disabled');
    await signIn(annaPage, base, 'anna', 'anna-password');
  } finally {
    await annaContext.close();
    await concord.dispose();
  }
});

test('changing one\'s own password on the page: the old one stops signing in, the new one signs in, this session stays', async ({ page }) => {
  test.setTimeout(60_000);
  const concord = await serverWithAdmin();
  concord.cli(['user', 'add', 'anna'], 'old-password\n');
  await concord.start();
  try {
    const base = concord.base;
    await signIn(page, base, 'anna', 'old-password');
    await openAccounts(page, base, 'Account');
    // An annotator sees no account administration.
    await expect(page.getByTestId('accounts')).toHaveCount(0);

    // A wrong current password changes nothing.
    await page.getByLabel('Current password', { exact: true }).fill('not-my-password');
    await page.getByLabel('New password (8 characters or more)', { exact: true }).fill('new-password');
    await page.getByRole('button', { name: 'Change password' }).click();
    await expect(page.getByRole('alert')).toContainText('current password');
    await expect(page.getByText('Password changed.')).toHaveCount(0);

    await page.getByLabel('Current password', { exact: true }).fill('old-password');
    await page.getByLabel('New password (8 characters or more)', { exact: true }).fill('new-password');
    await page.getByRole('button', { name: 'Change password' }).click();
    await expect(page.getByText('Password changed.')).toBeVisible();

    // This session stays signed in.
    await page.reload();
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect(page.getByTestId('signed-in-as')).toHaveText('anna');

    await signInRefused(page, base, 'anna', 'old-password');
    await signIn(page, base, 'anna', 'new-password');
  } finally {
    await concord.dispose();
  }
});

test('"sign out everywhere" ends the session in another browser too', async ({ page, browser }) => {
  test.setTimeout(60_000);
  const concord = await serverWithAdmin();
  concord.cli(['user', 'add', 'anna'], 'anna-password\n');
  await concord.start();
  const otherContext = await browser.newContext();
  try {
    const base = concord.base;
    const other = await otherContext.newPage();
    await signIn(other, base, 'anna', 'anna-password');
    await other.goto(`${base}/users`);
    await expect(other.getByTestId('signed-in-as')).toHaveText('anna');

    await signIn(page, base, 'anna', 'anna-password');
    await openAccounts(page, base, 'Account');
    await page.getByRole('button', { name: 'Sign out everywhere' }).click();
    await expect(page).toHaveURL(/\/login$/);

    await other.reload();
    await expect(other).toHaveURL(/\/login$/);
    await expect(other.getByTestId('signed-in-as')).toHaveCount(0);
  } finally {
    await otherContext.close();
    await concord.dispose();
  }
});
