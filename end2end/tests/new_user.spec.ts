// What a first-time user meets: `concord serve --demo`, the setup link from the log, the demo
// team project; and a project with a single annotator.
import { expect, test } from '@playwright/test';
import * as path from 'node:path';
import { apiAs, Concord, repo, signIn } from './concord';

const DEMO_ANNOTATORS = ['demo-amara', 'demo-bruno', 'demo-chen', 'demo-dana'];

test('--demo: the setup link makes the admin, who finds a team project with agreement, review and model figures', async ({ page }) => {
  test.setTimeout(300_000);
  const concord = Concord.fresh();
  await concord.start(['--demo', '--models', path.join(repo, 'models')]);
  try {
    const base = concord.base;
    const setup = concord.log.match(/\/setup\?token=([0-9a-f]+)/);
    expect(setup, concord.log).not.toBeNull();
    const password = concord.log.match(/share the password ([0-9a-f]+)/);
    expect(password, concord.log).not.toBeNull();

    // The one-time setup link still works although the demo made (annotator) accounts.
    await page.goto(`${base}/setup?token=${setup![1]}`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('newcomer');
    await page.getByLabel('Password (8 characters or more)').fill('newcomer-password');
    await page.getByRole('button', { name: 'Create administrator' }).click();
    await expect(page.getByTestId('signed-in-as')).toHaveText('newcomer');

    await page.getByRole('link', { name: 'Demo: tweet sentiment' }).click();
    await page.locator('body[data-hydrated=true]').waitFor();
    // Members: the four annotators by name; no nameless row for whoever created the project.
    const rows = page.locator('[data-testid=members] tbody tr');
    await expect(rows).toHaveCount(DEMO_ANNOTATORS.length);
    for (const who of DEMO_ANNOTATORS) {
      await expect(page.locator(`tr[data-member=${who}] td`).first()).toHaveText(who);
    }
    await expect(page.locator('tr[data-member=""]')).toHaveCount(0);

    // Agreement: four annotators' real disagreements, the confusion matrix of the first two,
    // and (once the zero-shot job has run) the model version as a rater.
    await page.getByTestId('agreement-link').click();
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect(page.getByTestId('coverage')).toContainText('250 of 300 items answered');
    await expect(page.getByTestId('coverage')).toContainText('4 annotators');
    const alpha = Number(await page.locator('[data-testid=coefficients] tr[data-name="Krippendorff\'s α (nominal)"] td.num').getAttribute('data-value'));
    expect(alpha).toBeGreaterThan(0.2);
    expect(alpha).toBeLessThan(0.8);
    await expect(page.getByTestId('confusion').locator('thead')).toContainText('demo-');
    await expect(page.locator('[data-testid=annotators] tbody tr')).toHaveCount(4);
    await expect(async () => {
      await page.reload();
      await expect(page.getByTestId('model-raters')).toBeVisible({ timeout: 2_000 });
    }).toPass({ timeout: 150_000, intervals: [3_000] });
    const modelKappa = page.locator('[data-testid=model-raters] tbody tr').first().locator('td.num').nth(1);
    expect(Number(await modelKappa.getAttribute('data-value'))).not.toBeNaN();

    // Review: the disagreements wait for a reviewer.
    await page.goto(`${base}/projects/1/review`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect.poll(async () => Number(await page.getByTestId('review-summary').getAttribute('data-waiting'))).toBeGreaterThan(20);
    await expect(page.getByTestId('review-state')).toHaveText('disagreement');
    await expect(page.locator('[data-testid=review-answers] tbody tr')).toHaveCount(3);

    // One can sign in as a demo annotator with the password from the log.
    await signIn(page, base, 'demo-amara', password![1]);
  } finally {
    await concord.dispose();
  }
});

test('one annotator: the agreement dashboard says a confusion matrix needs two, with no error', async ({ page }) => {
  const concord = Concord.fresh();
  concord.cli(['user', 'add', '--admin', 'admin'], 'admin-password\n');
  concord.cli(['user', 'add', 'solo'], 'solo-password\n');
  const tokens: Record<string, string> = {};
  for (const who of ['admin', 'solo']) tokens[who] = concord.cli(['token', 'add', who]).trim();
  await concord.start();
  try {
    const base = concord.base;
    const api = apiAs(base, tokens);
    const id = (await api('admin', 'POST', '/projects', {
      name: 'Solo', task: 'classification', labels: [{ name: 'pos' }, { name: 'neg' }],
    })).id;
    await api('admin', 'POST', `/projects/${id}/items`, undefined, ['good', 'bad', 'fine'].map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
    await api('admin', 'POST', `/projects/${id}/members`, { user: 'solo', role: 'annotator' });
    for (const label of ['pos', 'neg']) {
      const item = await api('solo', 'GET', `/projects/${id}/next`);
      await api('solo', 'POST', `/projects/${id}/annotations`, { item_id: item.id, labels: [label] });
    }

    await signIn(page, base, 'admin', 'admin-password');
    await page.goto(`${base}/projects/${id}/agreement`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect(page.getByTestId('coverage')).toContainText('2 of 3 items answered');
    await expect(page.getByTestId('confusion-needs-two')).toContainText('this project has answers from one (solo)');
    await expect(page.locator('main')).not.toContainText('not found');
    await expect(page.getByTestId('confusion')).toHaveCount(0);
  } finally {
    await concord.dispose();
  }
});
