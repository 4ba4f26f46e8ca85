import { expect, test } from '@playwright/test';
import { Concord, signIn } from './concord';

const ITEMS = [
  { id: 'r1', text: 'I loved every minute of it.' },
  { id: 'r2', text: 'Dull, slow and far too long.' },
  { id: 'r3', text: '<script>window.__pwned = 1</script><b>not bold</b> & friends' },
  { id: 'r4', text: 'It opens on Friday.' },
].map((i) => JSON.stringify(i)).join('\n') + '\n';

test('admin sets up a project, an annotator labels by keyboard, it all survives a restart', async ({ page }) => {
  const concord = Concord.fresh();
  concord.cli(['user', 'add', '--admin', 'admin'], 'admin-password\n');
  await concord.start();
  try {
    let base = concord.base;
    await signIn(page, base, 'admin', 'admin-password');

    // An annotator account, made in the UI.
    await page.goto(`${base}/users`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await page.getByTestId('account-name').fill('ann');
    await page.getByTestId('account-password').fill('annotator-pw');
    await page.getByTestId('account-submit').click();
    await expect(page.getByTestId('accounts')).toContainText('ann');

    // A project with three labels and guidelines.
    await page.goto(`${base}/`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Reviews');
    await page.getByLabel('Labels, one per line').fill('positive: likes it\nnegative: dislikes it\nneutral');
    await page.getByLabel('Guidelines (Markdown)').fill('# How to label\n\nJudge the **author**.');
    await page.getByRole('button', { name: 'Create project' }).click();
    await expect(page.getByTestId('project-name')).toHaveText('Reviews');
    const projectUrl = page.url();

    // Import a small JSONL file through the form.
    await page.getByTestId('import-file').setInputFiles({ name: 'reviews.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from(ITEMS) });
    await page.getByTestId('import-submit').click();
    await expect(page.getByTestId('import-result')).toHaveText('Imported 4 items (0 duplicate texts, 0 skipped).');
    await expect(page.getByTestId('project-progress')).toContainText('0 / 4 items done');

    // Make ann an annotator of the project.
    await page.locator('body[data-hydrated=true]').waitFor();
    await page.getByTestId('member-name').fill('ann');
    await page.getByTestId('member-role').selectOption('annotator');
    await page.getByTestId('member-submit').click();
    await expect(page.locator('table.members')).toContainText('ann');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect(page).toHaveURL(/\/login$/);

    // The annotator works with the keyboard only.
    await signIn(page, base, 'ann', 'annotator-pw');
    await page.goto(`${projectUrl}/annotate`);
    await page.locator('body[data-hydrated=true]').waitFor();
    const text = page.getByTestId('item-text');
    await expect(text).toHaveText('I loved every minute of it.');
    await page.keyboard.press('1');
    await expect(page.locator('[data-label=positive]')).toHaveAttribute('aria-pressed', 'true');
    await page.keyboard.press('Enter');
    await expect(text).toHaveText('Dull, slow and far too long.');
    await page.keyboard.press('1');
    await page.keyboard.press('Enter');
    // Oops: go back and fix the second answer.
    await expect(text).toContainText('<script>');
    await page.keyboard.press('Backspace');
    await expect(text).toHaveText('Dull, slow and far too long.');
    await expect(page.locator('[data-label=positive]')).toHaveAttribute('aria-pressed', 'true');
    await page.keyboard.press('2');
    await page.keyboard.press('Enter');
    // The HTML-looking item is shown as text and runs nothing.
    await expect(text).toHaveText('<script>window.__pwned = 1</script><b>not bold</b> & friends');
    expect(await text.locator('b').count()).toBe(0);
    expect(await page.evaluate(() => (window as any).__pwned)).toBeUndefined();
    await page.keyboard.press('?');
    await expect(page.getByTestId('guidelines')).toBeVisible();
    await expect(page.getByTestId('guidelines')).toContainText('Judge the author.');
    await page.keyboard.press('Escape');
    await expect(page.getByTestId('guidelines')).toBeHidden();
    await page.keyboard.press('3');
    await page.keyboard.press('Enter');
    await expect(text).toHaveText('It opens on Friday.');
    await expect(page.getByTestId('save-status')).toHaveText('All changes saved');
    await expect(page.getByTestId('progress')).toContainText('3 by you');

    // Restart the server; the session and the annotations are still there.
    await concord.stop();
    await concord.start();
    base = concord.base;
    await page.goto(`${base}/`);
    await expect(page.getByTestId('signed-in-as')).toHaveText('ann');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect(page).toHaveURL(/\/login$/);
    await signIn(page, base, 'admin', 'admin-password');
    await page.goto(projectUrl.replace(/^http:\/\/[^/]+/, base));
    await expect(page.getByTestId('project-progress')).toContainText('3 / 4 items done');

    const response = await page.request.get(`${base}/projects/1/export?format=jsonl`);
    expect(response.status()).toBe(200);
    const lines = (await response.text()).trim().split('\n').map((l) => JSON.parse(l));
    const byId = Object.fromEntries(lines.map((l) => [l.id, l]));
    expect(byId.r1.annotations.map((a: any) => [a.annotator, a.labels])).toEqual([['ann', ['positive']]]);
    expect(byId.r2.annotations.map((a: any) => [a.annotator, a.labels])).toEqual([['ann', ['negative']]]);
    expect(byId.r3.annotations.map((a: any) => [a.annotator, a.labels])).toEqual([['ann', ['neutral']]]);
    expect(byId.r4.annotations).toEqual([]);
    expect(byId.r2.annotations[0].time_spent_ms).toBeGreaterThan(0);
  } finally {
    await concord.dispose();
  }
});
