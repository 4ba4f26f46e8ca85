import { expect, Page, test } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { apiAs, Concord, signIn } from './concord';

// A relations project over three sentences. "ann" marks the entities and their relations with
// the keyboard only (a type that does not allow its ends is refused with a message; one
// relation is made the wrong way round with the wrong type, then reversed and relabelled; a
// span is deleted with its relation and brought back with Ctrl+Z). "bob" answers over the API
// and disagrees on one relation; the reviewer adds the missing relation to the majority
// proposal by keyboard; the Label Studio export must equal `relations_expected.json`, written
// by hand from the format.
const EXPECTED_FILE = path.join(__dirname, 'fixtures', 'relations_expected.json');

const SENTENCES = [
  ['s1', 'Anna Smith works for Acme Corp in Berlin .'],
  ['s2', 'Bob Jones joined Globex in Paris .'],
  ['s3', 'Carla lives in Rome .'],
] as const;

// Bob's answers (spans in canonical order; relations by index). On s1 he says Anna Smith, not
// Acme Corp, is located in Berlin.
const BOB: Record<string, { spans: [number, number, string][]; relations: [number, number, string][] }> = {
  s1: { spans: [[0, 10, 'PER'], [21, 30, 'ORG'], [34, 40, 'LOC']], relations: [[0, 1, 'works_for'], [0, 2, 'located_in']] },
  s2: { spans: [[0, 9, 'PER'], [17, 23, 'ORG'], [27, 32, 'LOC']], relations: [[0, 1, 'works_for'], [1, 2, 'located_in']] },
  s3: { spans: [[0, 5, 'PER'], [15, 19, 'LOC']], relations: [[0, 1, 'located_in']] },
};

function editor(page: Page) {
  const root = page.getByTestId('span-editor');
  return {
    root,
    tokens: async () => root.locator('span.tok').allTextContents(),
    spans: page.locator('ol[data-testid=spans] > li'),
    relations: page.locator('ol[data-testid=relations] > li'),
    status: page.getByTestId('span-status'),
  };
}

/** Marks tokens `first`..`last` (indices) with the entity key `key`, by keyboard only. */
async function mark(page: Page, first: number, last: number, key: string) {
  await page.keyboard.press('Escape');
  await page.keyboard.press('Home');
  for (let i = 0; i < first; i++) await page.keyboard.press('ArrowRight');
  for (let i = first; i < last; i++) await page.keyboard.press('Shift+ArrowRight');
  await page.keyboard.press(key);
}

/** Selects the `n`th span (1-based, document order) by Tab from the text's start. */
async function selectSpan(page: Page, n: number) {
  await page.keyboard.press('Escape');
  await page.keyboard.press('Escape');
  await page.keyboard.press('Home');
  for (let i = 0; i < n; i++) await page.keyboard.press('Tab');
  await expect(editor(page).spans.nth(n - 1)).toHaveAttribute('data-selected', 'true');
}

/** Expects the relation list to hold exactly `rows` ([head, type, tail]), in any order. */
async function expectRelations(page: Page, rows: [string, string, string][]) {
  const list = editor(page).relations;
  await expect(list).toHaveCount(rows.length);
  for (const [head, label, tail] of rows) {
    await expect(list.and(page.locator(`[data-head="${head}"][data-label="${label}"][data-tail="${tail}"]`))).toHaveCount(1);
  }
}

/** Ann's keyboard work on one sentence. */
async function annotate(page: Page, id: string) {
  const ed = editor(page);
  switch (id) {
    case 's1':
      await mark(page, 0, 1, 'p');
      await mark(page, 4, 5, 'o');
      await mark(page, 7, 7, 'l');
      await expect(ed.spans).toHaveCount(3);
      // From Anna Smith: `>` goes to the nearest span (Acme Corp); located_in needs a LOC tail.
      await selectSpan(page, 1);
      await page.keyboard.press('>');
      await expect(page.getByTestId('relation-menu')).toBeVisible();
      await expect(page.locator('[data-testid=relation-menu] button[data-relation-type=located_in]')).toBeDisabled();
      await page.keyboard.press('i');
      await expect(ed.status).toHaveText('located_in needs a tail of type LOC: “Acme Corp” is ORG');
      await expectRelations(page, []);
      await page.keyboard.press('w');
      await expectRelations(page, [['Anna Smith', 'works_for', 'Acme Corp']]);
      await expect(page.locator('[data-testid=relation-arcs] path.arc')).toHaveCount(1);
      // From Acme Corp: Berlin is nearest.
      await page.keyboard.press('Tab');
      await expect(ed.spans.nth(1)).toHaveAttribute('data-selected', 'true');
      await page.keyboard.press('>');
      await page.keyboard.press('i');
      await expectRelations(page, [['Anna Smith', 'works_for', 'Acme Corp'], ['Acme Corp', 'located_in', 'Berlin']]);
      // Only the selected span's relations are drawn: both of Acme Corp's.
      await expect(page.locator('[data-testid=relation-arcs] path.arc')).toHaveCount(2);
      break;
    case 's2':
      await mark(page, 0, 1, 'p');
      await mark(page, 3, 3, 'o');
      await mark(page, 5, 5, 'l');
      // From Globex the wrong way round and of the wrong type: ← picks Bob Jones, k types it.
      await selectSpan(page, 2);
      await page.keyboard.press('>');
      await page.keyboard.press('ArrowLeft');
      await page.keyboard.press('k');
      await expectRelations(page, [['Globex', 'knows', 'Bob Jones']]);
      // `\` selects it, `~` reverses it, `w` relabels it.
      await page.keyboard.press('\\');
      await expect(ed.relations.first()).toHaveAttribute('data-selected', 'true');
      await page.keyboard.press('~');
      await expectRelations(page, [['Bob Jones', 'knows', 'Globex']]);
      await page.keyboard.press('w');
      await expectRelations(page, [['Bob Jones', 'works_for', 'Globex']]);
      await selectSpan(page, 2);
      await page.keyboard.press('>');
      await page.keyboard.press('i');
      await expectRelations(page, [['Bob Jones', 'works_for', 'Globex'], ['Globex', 'located_in', 'Paris']]);
      break;
    case 's3':
      await mark(page, 0, 0, 'p');
      await mark(page, 3, 3, 'l');
      await selectSpan(page, 1);
      await page.keyboard.press('>');
      await page.keyboard.press('i');
      await expectRelations(page, [['Carla', 'located_in', 'Rome']]);
      // Deleting a span deletes its relations; Ctrl+Z brings both back.
      await selectSpan(page, 2);
      await page.keyboard.press('Delete');
      await expect(ed.spans).toHaveCount(1);
      await expectRelations(page, []);
      await page.keyboard.press('Control+z');
      await expect(ed.spans).toHaveCount(2);
      await expectRelations(page, [['Carla', 'located_in', 'Rome']]);
      break;
  }
}

/** What the comparison keeps of a Label Studio export: everything but times and tokens. */
function comparable(tasks: any[]) {
  return tasks.map((t) => ({
    id: t.id,
    data: t.data,
    annotations: t.annotations.map((a: any) => ({
      ground_truth: a.ground_truth,
      annotator: a.concord?.annotator ?? null,
      result: a.result,
    })),
    predictions: t.predictions,
  }));
}

test('relations project: relations by keyboard, a disagreement resolved in review, Label Studio JSON out as expected', async ({ page }) => {
  test.setTimeout(180_000);
  const concord = Concord.fresh();
  concord.cli(['user', 'add', '--admin', 'admin'], 'admin-password\n');
  for (const who of ['ann', 'bob']) concord.cli(['user', 'add', who], 'a-long-password\n');
  const tokens = {
    admin: concord.cli(['token', 'add', 'admin']).trim(),
    bob: concord.cli(['token', 'add', 'bob']).trim(),
  };
  await concord.start();
  try {
    const base = concord.base;
    const api = apiAs(base, tokens);
    const project = await api('admin', 'POST', '/projects', {
      name: 'People and places',
      task: 'relations',
      labels: [
        { name: 'PER', hotkey: 'p' },
        { name: 'ORG', hotkey: 'o' },
        { name: 'LOC', hotkey: 'l' },
      ],
      relation_labels: [
        { name: 'works_for', head: ['PER'], tail: ['ORG'], hotkey: 'w' },
        { name: 'located_in', head: ['ORG', 'PER'], tail: ['LOC'], hotkey: 'i' },
        { name: 'knows', hotkey: 'k' },
      ],
      overlap: 2,
    });
    const id = project.id;
    expect(project.relation_labels.map((r: any) => r.name)).toEqual(['works_for', 'located_in', 'knows']);
    await api('admin', 'PATCH', `/projects/${id}/settings`, { queue_order: 'import' });
    await api('admin', 'POST', `/projects/${id}/items`, undefined,
      SENTENCES.map(([item, text]) => JSON.stringify({ id: item, text })).join('\n') + '\n');
    for (const who of ['ann', 'bob']) await api('admin', 'POST', `/projects/${id}/members`, { user: who, role: 'annotator' });

    // Bob answers over the API.
    for (let n = 0; n < SENTENCES.length; n++) {
      const item = await api('bob', 'GET', `/projects/${id}/next`);
      const answer = BOB[item.id];
      await api('bob', 'POST', `/projects/${id}/annotations`, {
        item_id: item.id,
        spans: answer.spans.map(([start, end, label]) => ({ start, end, label })),
        relations: answer.relations.map(([from, to, label]) => ({ from, to, label })),
        time_spent_ms: 1000,
      });
    }

    // Ann annotates by keyboard only.
    await signIn(page, base, 'ann', 'a-long-password');
    await page.goto(`${base}/projects/${id}/annotate`);
    await page.locator('body[data-hydrated=true]').waitFor();
    // The key list names the relation keys, and so does the `?` panel.
    await expect(page.getByTestId('relation-keys').first()).toContainText('start a relation from the selected span');
    await editor(page).root.focus();
    await page.keyboard.press('?');
    await expect(page.getByTestId('guidelines').getByTestId('relation-keys')).toContainText('reverse the selected relation');
    await expect(page.getByTestId('guidelines').getByTestId('relation-keys')).toBeVisible();
    await page.keyboard.press('?');
    const left = new Set(SENTENCES.map(([item]) => item as string));
    while (left.size > 0) {
      const text = page.getByTestId('item-text');
      await expect(text).toHaveAttribute('data-item-id', /s\d/);
      const item = (await text.getAttribute('data-item-id'))!;
      expect(left.has(item), `${item} is shown once`).toBe(true);
      await editor(page).root.focus();
      await annotate(page, item);
      await page.keyboard.press('Enter');
      left.delete(item);
      if (left.size > 0) await expect(page.getByTestId('item-text')).not.toHaveAttribute('data-item-id', item);
    }
    await expect(page.getByTestId('queue-empty')).toBeVisible();
    await expect(page.getByTestId('save-status')).toHaveText('All changes saved');

    // s2 and s3 are unanimous; s1 waits for review with both answers side by side.
    await signIn(page, base, 'admin', 'admin-password');
    await page.goto(`${base}/projects/${id}/review`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect(page.getByTestId('review-summary')).toHaveAttribute('data-waiting', '1');
    await expect(page.getByTestId('review-state')).toHaveText('disagreement');
    const answers = page.getByTestId('review-answers');
    await expect(answers.locator('[data-annotator=ann] .relation-lines li[data-head="Acme Corp"][data-label=located_in].diff')).toHaveCount(1);
    await expect(answers.locator('[data-annotator=bob] .relation-lines li[data-head="Anna Smith"][data-label=located_in].diff')).toHaveCount(1);
    await expect(answers.locator('[data-annotator=bob] .relation-lines li[data-label=works_for]:not(.diff)')).toHaveCount(1);
    // The starting point is the majority: three spans, and only the relation both gave.
    await expect(editor(page).spans).toHaveCount(3);
    await expectRelations(page, [['Anna Smith', 'works_for', 'Acme Corp']]);
    // The reviewer sides with ann by keyboard: Acme Corp is located in Berlin.
    await editor(page).root.focus();
    await selectSpan(page, 2);
    await page.keyboard.press('>');
    await page.keyboard.press('i');
    await expectRelations(page, [['Anna Smith', 'works_for', 'Acme Corp'], ['Acme Corp', 'located_in', 'Berlin']]);
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('review-empty')).toBeVisible();
    await expect(page.getByTestId('review-summary')).toHaveAttribute('data-waiting', '0');

    // The agreement dashboard's relation figures, computed by hand: ann and bob each gave 5
    // relations and share 4 (bob's located_in on s1 has another head), so micro F1 = 4/5;
    // works_for 2 of 2, located_in 2 of 3 each. Gold made in review from their own answers is
    // not independent of them, so the "against gold" column stays empty.
    await page.goto(`${base}/projects/${id}/agreement`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect(page.getByTestId('relation-coverage')).toContainText('3 items compared (at least two answers) with 10 relations');
    const headline = page.getByTestId('relation-coefficients');
    await expect(headline.locator('tr[data-name^="Relation F1 (micro"] td.num')).toHaveText('0.800');
    await expect(headline.locator('tr[data-name^="Relation F1 (macro"] td.num')).toHaveText('0.833');
    const types = page.getByTestId('relation-types');
    await expect(types.locator('tr[data-label=works_for] td.num').nth(1)).toHaveText('1.000');
    await expect(types.locator('tr[data-label=located_in] td.num').nth(1)).toHaveText('0.667');
    await expect(page.getByTestId('relation-pairs').locator('tbody tr')).toHaveCount(1);
    await expect(page.getByTestId('relation-pairs').locator('tbody tr td').nth(4)).toHaveText('4');
    const annotators = page.getByTestId('relation-annotators');
    for (const who of ['ann', 'bob']) {
      const row = annotators.locator('tbody tr', { hasText: who });
      await expect(row.locator('td').nth(2)).toHaveText('5');
      await expect(row.locator('td').nth(3)).toHaveText('0.800');
      await expect(row.locator('td').nth(4)).toHaveText('');
    }

    // The Label Studio export: gold, each annotator and (none here) the suggestion.
    const response = await page.request.get(`${base}/projects/${id}/export?format=label-studio`);
    expect(response.status()).toBe(200);
    const exported = comparable(JSON.parse(await response.text()));
    const expected = JSON.parse(fs.readFileSync(EXPECTED_FILE, 'utf8'));
    expect(exported).toEqual(expected);
  } finally {
    await concord.dispose();
  }
});
