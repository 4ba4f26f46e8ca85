import { expect, Page, test } from '@playwright/test';
import * as path from 'node:path';
import { apiAs, Concord, repo, signIn } from './concord';

// Suggestions earn pre-selection (real all-MiniLM-L6-v2 from scripts/setup.sh): a zero-shot
// suggestion nobody has checked yet is shown as a hint, not selected, so Enter does not submit
// it; once a version trained on confirmed labels clears the bar on its held-out items, the
// same page pre-selects its suggestion and Enter accepts it. The project page shows each
// version's live record and whether it is validated, and a reviewer bulk-accepts the
// validated version's suggestions as gold and undoes the batch.

const TOPICS = [
  { name: 'sports', description: 'games, teams, players, goals and matches', key: '1' },
  { name: 'cooking', description: 'recipes, food, ingredients and kitchens', key: '2' },
  { name: 'finance', description: 'money, markets, banks, prices and investing', key: '3' },
];
const SUBJECTS = [
  ['The striker', 'Our goalkeeper', 'The home team', 'The captain', 'The winger'],
  ['The chef', 'My grandmother', 'The baker', 'Our cook', 'The pastry team'],
  ['The central bank', 'The investor', 'The hedge fund', 'Our bank', 'The treasury'],
];
const PREDICATES = [
  ['scored twice in the cup final', 'was sent off in the derby', 'won the league title on penalties',
    'trained hard before the match', 'celebrated a late goal with the fans', 'lost the semi-final in extra time'],
  ['simmered the onions in butter', 'kneaded the dough and let it rise', 'roasted the chicken with garlic and thyme',
    'whisked the eggs with sugar for the cake', 'seasoned the soup with fresh basil', 'baked bread in a hot oven'],
  ['raised interest rates to fight inflation', 'sold its bonds as yields climbed', 'moved savings into an index fund',
    'reported higher quarterly earnings', 'cut the mortgage rate by half a point', 'bought shares after the market fell'],
];
// Items 1..90, interleaved so that every prefix holds each topic: [text, topic].
const ITEMS: [string, number][] = [];
for (let s = 0; s < 5; s++) {
  for (let p = 0; p < 6; p++) {
    for (let t = 0; t < 3; t++) ITEMS.push([`${SUBJECTS[t][s]} ${PREDICATES[t][p]}.`, t]);
  }
}
// The annotator's answers that train the validated version (through the API); the rest stay
// for the page and the bulk acceptance.
const ANSWERED = 75;
const JOB_WAIT = 120_000;

test('an unvalidated suggestion is a hint; once validated the same page pre-selects it', async ({ page }) => {
  test.setTimeout(6 * JOB_WAIT);
  const concord = Concord.fresh();
  concord.cli(['user', 'add', '--admin', 'admin'], 'admin-password\n');
  concord.cli(['user', 'add', 'ann'], 'a-long-password\n');
  const tokens = {
    admin: concord.cli(['token', 'add', 'admin']).trim(),
    ann: concord.cli(['token', 'add', 'ann']).trim(),
  };
  await concord.start(['--models', path.join(repo, 'models')]);
  try {
    const base = concord.base;
    const api = apiAs(base, tokens);
    /** Waits until none of the project's jobs is queued or running; fails on a failed one. */
    const settle = async (id: number) => {
      await expect.poll(async () => {
        const jobs: { state: string; error?: string }[] = await api('admin', 'GET', `/projects/${id}/jobs`);
        const failed = jobs.find((j) => j.state === 'failed');
        if (failed) throw new Error(`a job failed: ${failed.error}`);
        return jobs.length > 0 && jobs.every((j) => j.state === 'done' || j.state === 'cancelled');
      }, { timeout: JOB_WAIT, intervals: [250] }).toBe(true);
    };
    const project = await api('admin', 'POST', '/projects', {
      name: 'Topics', task: 'classification',
      labels: TOPICS.map((t) => ({ name: t.name, description: t.description, hotkey: t.key })),
    });
    const id = project.id;
    await api('admin', 'POST', `/projects/${id}/items`, undefined,
      ITEMS.map(([t], i) => JSON.stringify({ id: String(i + 1), text: t })).join('\n') + '\n');
    await api('admin', 'POST', `/projects/${id}/members`, { user: 'ann', role: 'annotator' });
    await api('admin', 'POST', `/projects/${id}/predict`);
    await settle(id);

    // Zero-shot, with no answer yet: shown, not selected, and the page says why.
    await signIn(page, base, 'ann', 'a-long-password');
    await openAnnotation(page, base, id);
    const suggestion = page.getByTestId('suggestion');
    await expect(suggestion).toHaveAttribute('data-preselect', 'false');
    await expect(page.getByTestId('suggestion-evidence')).toContainText('not pre-selected');
    const suggested = (await page.getByTestId('suggested-label').textContent())!.trim();
    expect(TOPICS.map((t) => t.name)).toContain(suggested);
    await expect(page.locator('.label-button[aria-pressed=true]')).toHaveCount(0);
    // Enter submits nothing: the item stays, and the page asks for a label.
    const text = page.getByTestId('item-text');
    const first = (await text.getAttribute('data-item-id'))!;
    await page.keyboard.press('Enter');
    await expect(page.getByRole('alert')).toContainText('Pick a label first');
    await expect(text).toHaveAttribute('data-item-id', first);

    // The annotator's answers (through the API) train a version measured on its held-out fifth.
    for (let n = 1; n <= ANSWERED; n++) {
      await api('ann', 'POST', `/projects/${id}/annotations`, { item_id: String(n), labels: [TOPICS[ITEMS[n - 1][1]].name] });
    }
    await api('admin', 'POST', `/projects/${id}/train`);
    await settle(id);
    const versions: { version: number; active: boolean; evidence: { validated: boolean; sentence: string } }[] =
      await api('admin', 'GET', `/projects/${id}/models`);
    const active = versions.find((v) => v.active)!;
    expect(active.evidence.validated, active.evidence.sentence).toBe(true);

    // The same page now pre-selects the suggestion, and Enter accepts it.
    await openAnnotation(page, base, id);
    await expect(suggestion).toHaveAttribute('data-version', String(active.version));
    await expect(suggestion).toHaveAttribute('data-preselect', 'true');
    await expect(page.getByTestId('suggestion-evidence')).toContainText('pre-selected: held-out');
    const label = (await page.getByTestId('suggested-label').textContent())!.trim();
    await expect(page.locator('.label-button[aria-pressed=true]')).toHaveCount(1);
    await expect(page.locator(`.label-button[data-label=${label}]`)).toHaveAttribute('aria-pressed', 'true');
    const shown = (await text.getAttribute('data-item-id'))!;
    expect(Number(shown)).toBeGreaterThan(ANSWERED);
    await page.keyboard.press('Enter');
    await expect(text).not.toHaveAttribute('data-item-id', shown);
    await expect(page.getByTestId('save-status')).toHaveText('All changes saved');

    // The project page: the active version is validated; the zero-shot one has its live record.
    await signIn(page, base, 'admin', 'admin-password');
    await page.goto(`${base}/projects/${id}`);
    await page.locator('body[data-hydrated=true]').waitFor();
    const row = page.locator(`[data-testid=model-versions] tr[data-version="${active.version}"]`);
    await expect(row.getByTestId('version-validated')).toHaveAttribute('data-validated', 'true');
    // The answer just given took the pre-selected suggestion: the page counts it in the live
    // acceptance rate, but anchored by the pre-selection it is no evidence for the version.
    await expect(row.getByTestId('version-acceptance')).toHaveText('1.00 (1 / 1)');
    const after: { version: number; evidence: { live_accepted: number; live_corrected: number } }[] =
      await api('admin', 'GET', `/projects/${id}/models`);
    const evidence = after.find((v) => v.version === active.version)!.evidence;
    expect(evidence.live_accepted + evidence.live_corrected).toBe(0);
    const zeroShot = page.locator('[data-testid=model-versions] tr[data-version="1"]');
    await expect(zeroShot.getByTestId('version-acceptance')).toContainText(/\(\d+ \/ \d+\)/);

    // A reviewer bulk-accepts the validated version's suggestions for the 14 items left, then
    // undoes the batch.
    await page.goto(`${base}/projects/${id}/review`);
    await page.locator('body[data-hydrated=true]').waitFor();
    const bulk = page.getByTestId('bulk-accept');
    await bulk.getByTestId('bulk-threshold').fill('0');
    await bulk.getByTestId('bulk-preview').click();
    const left = ITEMS.length - ANSWERED - 1;
    await expect(bulk.getByTestId('bulk-slice')).toHaveAttribute('data-items', String(left));
    await expect(bulk.getByTestId('bulk-slice')).toContainText('held-out');
    await bulk.getByTestId('bulk-accept-button').click();
    await expect(bulk.getByTestId('bulk-batches').locator('tbody tr')).toHaveCount(1);
    const sources = async () => {
      const r = await page.request.get(`${base}/projects/${id}/export?format=jsonl`);
      return (await r.text()).trim().split('\n').map((l) => JSON.parse(l).gold_source as string | null);
    };
    expect((await sources()).filter((s) => s === 'bulk_accept')).toHaveLength(left);
    await bulk.getByTestId('bulk-undo').click();
    await expect(bulk.getByTestId('bulk-message')).toContainText(`Undone: ${left} items`);
    await expect(bulk.getByTestId('bulk-batches')).toHaveCount(0);
    expect((await sources()).filter((s) => s === 'bulk_accept')).toHaveLength(0);
  } finally {
    await concord.dispose();
  }
});

/** Opens the project's annotation page and waits for an item. */
async function openAnnotation(page: Page, base: string, id: number) {
  await page.goto(`${base}/projects/${id}/annotate`);
  await page.locator('body[data-hydrated=true]').waitFor();
  await expect(page.getByTestId('item-text')).toHaveAttribute('data-item-id', /\d+/);
}
