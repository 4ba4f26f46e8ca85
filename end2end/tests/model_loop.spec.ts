import { expect, Page, test } from '@playwright/test';
import * as path from 'node:path';
import { Concord, signIn, repo } from './concord';

// Real all-MiniLM-L6-v2 from scripts/setup.sh. Topics with descriptions, so zero-shot has
// something to go on; some texts carry no topic words, so zero-shot gets a few wrong.
const TOPICS = [
  { name: 'sports', description: 'games, teams, players, goals and matches', key: '1' },
  { name: 'cooking', description: 'recipes, food, ingredients and kitchens', key: '2' },
  { name: 'finance', description: 'money, markets, banks, prices and investing', key: '3' },
];
const TEXTS: [string, number][] = [
  ['The striker scored twice in the cup final.', 0], ['The goalkeeper saved a penalty in extra time.', 0],
  ['Our team lost the match after a late red card.', 0], ['She won the marathon in record time.', 0],
  ['The coach dropped two players before the derby.', 0], ['He hit a home run in the ninth inning.', 0],
  ['Fans booed the referee at half time.', 0], ['The tennis final went to five sets.', 0],
  ['Simmer the onions in butter until golden.', 1], ['Knead the dough and let it rise for an hour.', 1],
  ['Add a pinch of salt to the boiling pasta water.', 1], ['Roast the chicken at 200 degrees for forty minutes.', 1],
  ['Whisk the eggs with sugar until pale.', 1], ['Chop the garlic finely and fry it in olive oil.', 1],
  ['The soup needs more pepper and fresh basil.', 1], ['Bake the cake until a skewer comes out clean.', 1],
  ['The central bank raised interest rates again.', 2], ['Stocks fell sharply after the earnings report.', 2],
  ['She moved her savings into an index fund.', 2], ['The mortgage payment went up by two hundred dollars.', 2],
  ['Bond yields climbed as inflation surprised investors.', 2], ['The startup raised ten million in a funding round.', 2],
  ['He paid off his credit card debt this year.', 2], ['The currency lost value against the dollar.', 2],
];

// How long each model job may take in the UI: pre-annotation, training a head and a rollback
// are seconds to a minute; fine-tuning the encoder is minutes on a small CPU.
const JOB_WAIT = 120_000;
const FINE_TUNE_WAIT = 300_000;
// The rest of the test: annotating the 24 items through the UI and the command-line jobs at
// the end (a prediction, a head and one fine-tuning epoch).
const UI_AND_CLI = 300_000;

/** Share of items whose exported suggestion is the true topic, and the version that made them. */
async function suggestionAccuracy(page: Page, base: string, id: number): Promise<[number, number]> {
  const r = await page.request.get(`${base}/projects/${id}/export?format=jsonl`);
  const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l));
  const correct = lines.filter((l, i) => l.suggestion && l.suggestion.labels[0] === TOPICS[TEXTS[i][1]].name).length;
  return [correct / TEXTS.length, lines[0].suggestion.model_version];
}

test('zero-shot suggestions, corrections train a better version from the UI, versions roll back', async ({ page }) => {
  // The waits below add up to far more than the configured per-test timeout: four job waits
  // (pre-annotate, train, the rollback and its job) and the fine-tuning one, plus the rest.
  test.setTimeout(4 * JOB_WAIT + FINE_TUNE_WAIT + UI_AND_CLI);
  const concord = Concord.fresh();
  concord.cli(['user', 'add', '--admin', 'admin'], 'admin-password\n');
  concord.cli(['user', 'add', 'ann'], 'a-long-password\n');
  const token = concord.cli(['token', 'add', 'admin']).trim();
  await concord.start(['--models', path.join(repo, 'models')]);
  try {
    const base = concord.base;
    const api = async (method: string, url: string, body?: unknown, raw?: string) => {
      const r = await fetch(`${base}/api/v1${url}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
      });
      expect(r.status, `${method} ${url}`).toBeLessThan(300);
      return r.json();
    };
    const project = await api('POST', '/projects', {
      name: 'Topics', task: 'classification',
      labels: TOPICS.map((t) => ({ name: t.name, description: t.description, hotkey: t.key })),
      // This test trains from the UI and counts the versions that makes: the loop that trains
      // itself (on by default) would add its own after 20 labels.
      auto_train: { enabled: false },
    });
    const id = project.id;
    expect(project.settings.blind).toBe(false);
    await api('POST', `/projects/${id}/items`, undefined, TEXTS.map(([t], i) => JSON.stringify({ id: String(i + 1), text: t })).join('\n') + '\n');
    await api('POST', `/projects/${id}/members`, { user: 'ann', role: 'annotator' });

    // The admin pre-annotates from the project page: a zero-shot version appears.
    await signIn(page, base, 'admin', 'admin-password');
    await page.goto(`${base}/projects/${id}`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect(page.getByTestId('model-status')).toContainText('all-MiniLM-L6-v2');
    await page.getByTestId('pre-annotate').click();
    await expect(page.locator('[data-testid=model-jobs] tr[data-state=done]')).toHaveCount(1, { timeout: JOB_WAIT });
    await expect(page.locator('[data-testid=model-versions] tr[data-version="1"]')).toHaveAttribute('data-active', 'true');
    await expect(page.locator('[data-testid=model-versions] tr[data-version="1"]')).toContainText('zero-shot');
    const [zeroShot, v1] = await suggestionAccuracy(page, base, id);
    expect(v1).toBe(1);

    // The annotator sees each suggestion pre-selected and corrects where needed.
    await signIn(page, base, 'ann', 'a-long-password');
    await page.goto(`${base}/projects/${id}/annotate`);
    await page.locator('body[data-hydrated=true]').waitFor();
    const text = page.getByTestId('item-text');
    // Active learning opens the queue with representative items and says why.
    await expect(page.getByTestId('why')).toContainText('representative of');
    for (let n = 0; n < TEXTS.length; n++) {
      await expect(text).toHaveAttribute('data-item-id', /\d+/);
      const itemId = (await text.getAttribute('data-item-id'))!;
      await expect(page.getByTestId('suggestion')).toHaveAttribute('data-version', '1');
      const truth = TOPICS[TEXTS[Number(itemId) - 1][1]];
      // The zero-shot suggestion is pre-selected only once the answers given to it validate
      // it (Enter alone would then accept it); until then it is a hint and nothing is selected.
      const preselect = await page.getByTestId('suggestion').getAttribute('data-preselect');
      expect(['true', 'false']).toContain(preselect);
      expect(await page.locator('.label-button[aria-pressed=true]').count()).toBe(preselect === 'true' ? 1 : 0);
      await page.keyboard.press(truth.key);
      await expect(page.locator(`[data-label=${truth.name}]`)).toHaveAttribute('aria-pressed', 'true');
      await page.keyboard.press('Enter');
      if (n < TEXTS.length - 1) await expect(text).not.toHaveAttribute('data-item-id', itemId);
    }
    await expect(page.getByTestId('queue-empty')).toBeVisible();
    await expect(page.getByTestId('save-status')).toHaveText('All changes saved');

    // The corrections train version 2 from the UI; its suggestions are better.
    await signIn(page, base, 'admin', 'admin-password');
    await page.goto(`${base}/projects/${id}`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await page.getByTestId('train').click();
    await expect(page.locator('[data-testid=model-versions] tr[data-version="2"]')).toHaveAttribute('data-active', 'true', { timeout: JOB_WAIT });
    await expect(page.locator('[data-testid=model-jobs] tr[data-state=done]')).toHaveCount(2);
    const accuracyCell = page.locator('[data-testid=model-versions] tr[data-version="2"] [data-testid=version-accuracy]');
    expect(Number(await accuracyCell.textContent())).toBeGreaterThan(0.5);
    const [trained, v2] = await suggestionAccuracy(page, base, id);
    expect(v2).toBe(2);
    expect(trained >= zeroShot).toBe(true);
    expect(trained > zeroShot || trained === 1).toBe(true);

    // Full fine-tuning from the UI makes version 3 (its own encoder, every item re-embedded);
    // the versions compare label by label.
    await page.getByTestId('fine-tune').click();
    const v3 = page.locator('[data-testid=model-versions] tr[data-version="3"]');
    await expect(v3).toHaveAttribute('data-active', 'true', { timeout: FINE_TUNE_WAIT });
    await expect(v3).toContainText('fine-tune');
    await expect(page.locator('[data-testid=model-jobs] tr[data-state=done]')).toHaveCount(3);
    const [tuned, v3Made] = await suggestionAccuracy(page, base, id);
    expect(v3Made).toBe(3);
    expect(tuned).toBeGreaterThanOrEqual(0.75);
    const comparison = page.getByTestId('label-comparison');
    await comparison.locator('summary').click();
    await expect(comparison.locator('thead th')).toHaveText(['Label', 'v3', 'v2']);
    for (const topic of TOPICS) {
      const cells = comparison.locator(`tr[data-label="${topic.name}"] td`);
      await expect(cells).toHaveCount(3);
      for (const i of [1, 2]) {
        const f1 = Number(await cells.nth(i).textContent());
        expect(f1 >= 0 && f1 <= 1).toBe(true);
      }
    }

    // Roll back to the zero-shot version.
    await page.getByTestId('activate-1').click();
    await expect(page.locator('[data-testid=model-versions] tr[data-version="1"]')).toHaveAttribute('data-active', 'true', { timeout: JOB_WAIT });
    await expect(page.locator('[data-testid=model-jobs] tr[data-state=done]')).toHaveCount(4, { timeout: JOB_WAIT });
    const [again, v] = await suggestionAccuracy(page, base, id);
    expect([again, v]).toEqual([zeroShot, 1]);

    // The same jobs from the command line, with the server stopped.
    await concord.stop();
    const models = path.join(repo, 'models');
    const predicted = JSON.parse(concord.cli(['predict', 'Topics', '--models', models]));
    expect(predicted.suggestions).toBe(TEXTS.length);
    const fourth = JSON.parse(concord.cli(['train', 'Topics', '--models', models]));
    expect(fourth.version).toBe(4);
    expect(fourth.trainer).toBe('head');
    expect(fourth.train_size + fourth.test_size).toBe(TEXTS.length);
    expect(fourth.accuracy).toBeGreaterThan(0.5);
    const fifth = JSON.parse(concord.cli(['train', 'Topics', '--models', models, '--trainer', 'fine-tune', '--epochs', '1']));
    expect([fifth.version, fifth.trainer]).toEqual([5, 'fine_tune']);
  } finally {
    await concord.dispose();
  }
});
