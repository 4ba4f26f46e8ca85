import { expect, test } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Concord, signIn } from './concord';

// Five tweets; each row is what annotators a, b and c answer. Rows 2 and 4 are planted
// disagreements, rows 1, 3 and 5 are unanimous.
const TWEETS = ['great day', 'meh', 'awful', 'not sure', 'fine'];
const PLANTED: [string, string, string][] = [
  ['pos', 'pos', 'pos'],
  ['pos', 'neg', 'neu'],
  ['neg', 'neg', 'neg'],
  ['neu', 'neu', 'pos'],
  ['pos', 'pos', 'pos'],
];
const HOTKEY: Record<string, string> = { pos: '1', neg: '2', neu: '3' };
// The reviewer's decisions on the two disagreements.
const DECISION: Record<string, string> = { '2': 'neg', '4': 'neu' };

test('three annotators label blind with overlap 3, a reviewer resolves the disagreements by keyboard, the export carries gold', async ({ page }) => {
  const concord = Concord.fresh();
  concord.cli(['user', 'add', '--admin', 'admin'], 'admin-password\n');
  for (const who of ['a', 'b', 'c', 'rita']) concord.cli(['user', 'add', who], 'a-long-password\n');
  const tokens: Record<string, string> = {};
  for (const who of ['admin', 'a']) tokens[who] = concord.cli(['token', 'add', who]).trim();
  const ratingsFile = path.join(concord.home, 'ratings.csv');
  fs.writeFileSync(ratingsFile, 'a,b,c\n' + PLANTED.map((r) => r.join(',')).join('\n') + '\n');
  const expected = JSON.parse(concord.cli(['agreement', '--ratings', ratingsFile, '--json']));

  await concord.start();
  try {
    const base = concord.base;
    const api = async (who: string, method: string, url: string, body?: unknown, raw?: string) =>
      fetch(`${base}/api/v1${url}`, {
        method,
        headers: { authorization: `Bearer ${tokens[who]}`, 'content-type': 'application/json' },
        body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
      });
    const created = await (await api('admin', 'POST', '/projects', {
      name: 'Team', task: 'classification', overlap: 3,
      labels: [{ name: 'pos' }, { name: 'neg' }, { name: 'neu' }],
    })).json();
    const id = created.id;
    expect(created.settings.blind).toBe(true);
    const other = (await (await api('admin', 'POST', '/projects', {
      name: 'Secret', task: 'classification', labels: [{ name: 'x' }, { name: 'y' }],
    })).json()).id;
    const items = TWEETS.map((t, i) => JSON.stringify({ id: String(i + 1), text: t })).join('\n') + '\n';
    expect((await api('admin', 'POST', `/projects/${id}/items`, undefined, items)).status).toBe(200);

    // The admin adds the team in the UI: three annotators, then one of them promoted.
    await signIn(page, base, 'admin', 'admin-password');
    await page.goto(`${base}/projects/${id}`);
    await page.locator('body[data-hydrated=true]').waitFor();
    for (const who of ['a', 'b', 'c', 'rita']) {
      await page.getByTestId('member-name').fill(who);
      await page.getByTestId('member-role').selectOption('annotator');
      await page.getByTestId('member-submit').click();
      await expect(page.locator(`tr[data-member=${who}]`)).toContainText('annotator');
    }
    await page.getByLabel('Role of rita').selectOption('reviewer');
    await page.locator('tr[data-member=rita]').getByRole('button', { name: 'Apply' }).click();
    await expect(page.locator('tr[data-member=rita] td').nth(1)).toHaveText('reviewer');

    // Each annotator labels every item by keyboard; blind: nobody sees the others' answers.
    for (const [col, who] of ['a', 'b', 'c'].entries()) {
      await signIn(page, base, who, 'a-long-password');
      await page.goto(`${base}/projects/${id}/annotate`);
      await page.locator('body[data-hydrated=true]').waitFor();
      const text = page.getByTestId('item-text');
      for (let n = 0; n < TWEETS.length; n++) {
        await expect(text).toHaveAttribute('data-item-id', /\d+/);
        const itemId = (await text.getAttribute('data-item-id'))!;
        await expect(page.getByTestId('others')).toHaveCount(0);
        const label = PLANTED[Number(itemId) - 1][col];
        await page.keyboard.press(HOTKEY[label]);
        await expect(page.locator(`[data-label=${label}]`)).toHaveAttribute('aria-pressed', 'true');
        await page.keyboard.press('Enter');
        if (n < TWEETS.length - 1) await expect(text).not.toHaveAttribute('data-item-id', itemId);
      }
      await expect(page.getByTestId('queue-empty')).toBeVisible();
      await expect(page.getByTestId('save-status')).toHaveText('All changes saved');
    }

    // The reviewer sees the crate's coefficients on the dashboard.
    await signIn(page, base, 'rita', 'a-long-password');
    await page.goto(`${base}/projects/${id}/agreement`);
    await page.locator('body[data-hydrated=true]').waitFor();
    for (const [name, key] of [["Krippendorff's α (nominal)", 'alpha_nominal'], ["Fleiss' κ", 'fleiss_kappa'], ["Gwet's AC1", 'gwet_ac1']]) {
      const cell = page.locator(`[data-testid=coefficients] tr[data-name="${name}"] td.num`);
      expect(Number(await cell.getAttribute('data-value')), name).toBeCloseTo(expected.report[key].coefficient.value, 12);
    }

    // The review queue holds exactly the two disagreements; the reviewer settles them by keyboard.
    await page.goto(`${base}/projects/${id}/review`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect(page.getByTestId('review-summary')).toHaveAttribute('data-waiting', '2');
    const reviewText = page.getByTestId('review-text');
    for (const [n, itemId] of ['2', '4'].entries()) {
      await expect(reviewText).toHaveAttribute('data-item-id', itemId);
      await expect(page.getByTestId('review-state')).toHaveText('disagreement');
      const row = PLANTED[Number(itemId) - 1];
      for (const [col, who] of ['a', 'b', 'c'].entries()) {
        await expect(page.locator(`[data-testid=review-answers] tr[data-annotator=${who}] [data-testid=answer-labels]`)).toHaveText(row[col]);
      }
      const gold = DECISION[itemId];
      await page.keyboard.press(HOTKEY[gold]);
      await expect(page.locator(`[data-label=${gold}]`)).toHaveAttribute('aria-pressed', 'true');
      // The second decision also becomes a gold question (Shift+Enter).
      await page.keyboard.press(n === 1 ? 'Shift+Enter' : 'Enter');
    }
    await expect(page.getByTestId('review-empty')).toBeVisible();
    await expect(page.getByTestId('review-summary')).toHaveAttribute('data-waiting', '0');
    await expect(page.getByTestId('review-summary')).toContainText('2 resolved by review');
    await expect(page.getByTestId('review-summary')).toContainText('3 accepted unanimously');
    // Backspace brings the last decision back, with its gold label.
    await page.keyboard.press('Backspace');
    await expect(reviewText).toHaveAttribute('data-item-id', '4');
    await expect(page.getByTestId('review-gold')).toContainText('neu');
    await expect(page.getByTestId('gold-question')).toBeChecked();

    // The export carries the gold labels and where they came from.
    const response = await page.request.get(`${base}/projects/${id}/export?format=jsonl`);
    expect(response.status()).toBe(200);
    const lines = (await response.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.id, l.gold, l.gold_source, l.gold_question])).toEqual([
      ['1', 'pos', 'unanimous', false],
      ['2', 'neg', 'review', false],
      ['3', 'neg', 'unanimous', false],
      ['4', 'neu', 'review', true],
      ['5', 'pos', 'unanimous', false],
    ]);

    // An annotator who types the reviewer's URL, or another project's, is refused; so is their token.
    await signIn(page, base, 'a', 'a-long-password');
    for (const url of [`/projects/${id}/review`, `/projects/${id}/agreement`, `/projects/${other}`, `/projects/${other}/annotate`]) {
      await page.goto(`${base}${url}`);
      await expect(page.getByRole('alert'), url).toContainText('you do not have access');
      await expect(page.getByTestId('review-text')).toHaveCount(0);
      await expect(page.getByTestId('item-text')).toHaveCount(0);
    }
    for (const [method, url] of [
      ['GET', `/projects/${id}/review/next`],
      ['GET', `/projects/${id}/review/summary`],
      ['PUT', `/projects/${id}/items/2/gold`],
      ['GET', `/projects/${id}/export`],
      ['GET', `/projects/${other}`],
      ['GET', `/projects/${other}/next`],
    ]) {
      const r = await api('a', method, url, method === 'PUT' ? { labels: ['pos'] } : undefined);
      expect(r.status, `${method} ${url}`).toBe(403);
    }
  } finally {
    await concord.dispose();
  }
});
