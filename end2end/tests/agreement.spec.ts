import { expect, test } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { apiAs, Concord } from './concord';

// Planted answers of two annotators on four items (item i answered [a, b]).
const PLANTED: [string, string][] = [
  ['pos', 'pos'],
  ['neg', 'neg'],
  ['pos', 'neg'],
  ['neg', 'neg'],
];

test('the agreement dashboard shows the statistics crate\'s numbers and the confusion matrix follows the chosen pair', async ({ page }) => {
  const concord = Concord.fresh();
  concord.cli(['user', 'add', '--admin', 'admin'], 'admin-password\n');
  concord.cli(['user', 'add', 'a'], 'annotator-pw\n');
  concord.cli(['user', 'add', 'b'], 'annotator-pw\n');
  const tokens: Record<string, string> = {};
  for (const who of ['admin', 'a', 'b']) tokens[who] = concord.cli(['token', 'add', who]).trim();
  // The same ratings as a file, for the CLI's own computation.
  const ratingsFile = path.join(concord.home, 'ratings.csv');
  fs.writeFileSync(ratingsFile, 'a,b\n' + PLANTED.map((r) => r.join(',')).join('\n') + '\n');
  const expected = JSON.parse(concord.cli(['agreement', '--ratings', ratingsFile, '--json']));
  const alpha: number = expected.report.alpha_nominal.coefficient.value;

  await concord.start();
  try {
    const base = concord.base;
    const api = apiAs(base, tokens);
    const project = await api('admin', 'POST', '/projects', {
      name: 'Pairs', task: 'classification', overlap: 2, labels: [{ name: 'pos' }, { name: 'neg' }],
    });
    const id = project.id;
    await api('admin', 'POST', `/projects/${id}/items`, undefined,
      PLANTED.map((_, i) => JSON.stringify({ text: `tweet ${i + 1}` })).join('\n') + '\n');
    for (const [col, who] of ['a', 'b'].entries()) {
      await api('admin', 'POST', `/projects/${id}/members`, { user: who, role: 'annotator' });
      for (let n = 0; n < PLANTED.length; n++) {
        const item = await api(who, 'GET', `/projects/${id}/next`);
        const row = Number(item.id) - 1;
        await api(who, 'POST', `/projects/${id}/annotations`, { item_id: item.id, labels: [PLANTED[row][col]] });
      }
    }

    await page.goto(`${base}/login`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('admin');
    await page.getByLabel('Password').fill('admin-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByTestId('signed-in-as')).toHaveText('admin');
    await page.goto(`${base}/projects/${id}`);
    await page.getByTestId('agreement-link').click();
    await page.locator('body[data-hydrated=true]').waitFor();
    const alphaCell = page.locator('[data-testid=coefficients] tr[data-name="Krippendorff\'s α (nominal)"] td.num');
    expect(Number(await alphaCell.getAttribute('data-value'))).toBeCloseTo(alpha, 12);
    await expect(page.getByTestId('coverage')).toContainText('4 of 4 items answered');
    // a (rows) × b (columns): a said pos where b said neg once.
    await expect(page.getByTestId('confusion')).toContainText('a \\ b');
    await expect(page.getByTestId('confusion').locator('tbody tr').first()).toContainText('pos11');
    // Swap the pair: b's answers become the rows.
    await page.getByTestId('confusion-first').selectOption('b');
    await page.getByTestId('confusion-second').selectOption('a');
    await expect(page.getByTestId('confusion')).toContainText('b \\ a');
    await expect(page.getByTestId('confusion').locator('tbody tr').first()).toContainText('pos10');

    // An annotator who types the dashboard URL is refused.
    await page.context().clearCookies();
    await page.goto(`${base}/login`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('a');
    await page.getByLabel('Password').fill('annotator-pw');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByTestId('signed-in-as')).toHaveText('a');
    await page.goto(`${base}/projects/${id}/agreement`);
    await expect(page.getByRole('alert')).toBeVisible();
    await expect(page.getByTestId('coefficients')).toHaveCount(0);
  } finally {
    await concord.dispose();
  }
});
