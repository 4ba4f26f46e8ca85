import { expect, Locator, Page, test } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { apiAs, Concord, repo, signIn } from './concord';

// Five WNUT-16 tweets (dev set, CoNLL). `spans_bob.conll` is another tool's annotation of them
// by "bob", imported as bob's answers: the WNUT tags, except that bob calls the beer
// "Hoegaarden" a company. "ann" annotates all five by keyboard in Concord's span editor, a
// reviewer settles the one disagreement, and the CoNLL export must equal the WNUT tags
// (`spans_expected.conll`).
const FIXTURES = path.join(__dirname, 'fixtures');
const BOB_FILE = path.join(FIXTURES, 'spans_bob.conll');
const EXPECTED_FILE = path.join(FIXTURES, 'spans_expected.conll');

// Entity types in creation order: hotkeys are assigned 1, 2, 3, 4.
const TYPES = [
  ['person', 'a named person', '1'],
  ['geo-loc', 'a place', '2'],
  ['company', 'a company or brand', '3'],
  ['product', 'a product', '4'],
] as const;
const KEY: Record<string, string> = Object.fromEntries(TYPES.map(([name, , key]) => [name, key]));

// Each tweet by a word only it has, with the one span ann ends with: first token, last token
// and label (the WNUT tags).
const TWEETS = {
  sacramento: { word: 'Sacramento', final: ['Sacramento', 'Sacramento', 'geo-loc'] },
  uk: { word: 'UK', final: ['UK', 'UK', 'geo-loc'] },
  hoegaarden: { word: 'Hoegaarden', final: ['Hoegaarden', 'Hoegaarden', 'product'] },
  betsey: { word: 'Betsey', final: ['Betsey', 'Johnson', 'person'] },
  rob: { word: 'Rob', final: ['Rob', 'Rob', 'person'] },
} as const;
type Tweet = keyof typeof TWEETS;

// Model jobs (the pattern pre-annotation embeds the five items with the real encoder).
const JOB_WAIT = 120_000;

/** The span editor of the page, its tokens' texts, and token `i`. */
function editor(page: Page) {
  const root = page.getByTestId('span-editor');
  return {
    root,
    tokens: async () => root.locator('span.tok').allTextContents(),
    token: (i: number) => root.locator(`span.tok[data-i="${i}"]`),
    spans: root.page().locator('ol[data-testid=spans] > li'),
  };
}

/** Which tweet the editor shows (by its own word), once it shows one of `left`. */
async function currentTweet(page: Page, left: Set<Tweet>): Promise<Tweet> {
  const ed = editor(page);
  let found: Tweet | undefined;
  await expect(async () => {
    const tokens = await ed.tokens();
    found = [...left].find((t) => tokens.includes(TWEETS[t].word));
    expect(found, `the editor shows one of ${[...left]}: ${tokens.join(' ')}`).toBeDefined();
  }).toPass();
  return found!;
}

/** Moves the token cursor to the first token reading `word`, by keyboard only (Home, →). */
async function cursorTo(page: Page, word: string) {
  const ed = editor(page);
  const index = (await ed.tokens()).indexOf(word);
  expect(index, `token ${word}`).toBeGreaterThanOrEqual(0);
  await page.keyboard.press('Home');
  for (let i = 0; i < index; i++) await page.keyboard.press('ArrowRight');
  await expect(ed.token(index)).toHaveClass(/\bcursor\b/);
}

/** The code-point range of tokens `first`..`last` (inclusive) in the text the tokens make. */
async function rangeOf(page: Page, first: string, last: string): Promise<[number, number]> {
  const tokens = await editor(page).tokens();
  const a = tokens.indexOf(first);
  const b = tokens.indexOf(last, a);
  const before = (n: number) => [...tokens.slice(0, n).join(' ')].length + (n > 0 ? 1 : 0);
  return [before(a), before(b) + [...tokens[b]].length];
}

/** Expects exactly one span in the list: `first`..`last` as `label`, of `kind`. */
async function expectOnlySpan(page: Page, first: string, last: string, label: string, kind = 'own'): Promise<Locator> {
  const ed = editor(page);
  const [start, end] = await rangeOf(page, first, last);
  await expect(ed.spans).toHaveCount(1);
  const li = ed.spans.first();
  await expect(li).toHaveAttribute('data-start', String(start));
  await expect(li).toHaveAttribute('data-end', String(end));
  await expect(li).toHaveAttribute('data-label', label);
  await expect(li).toHaveAttribute('data-kind', kind);
  return li;
}

/** Ann's keyboard work on one tweet; each exercises other keys of the editor. */
async function annotate(page: Page, tweet: Tweet) {
  const ed = editor(page);
  switch (tweet) {
    case 'sacramento':
      // Create: the cursor's token and a label key.
      await cursorTo(page, 'Sacramento');
      await page.keyboard.press(KEY['geo-loc']);
      await expectOnlySpan(page, 'Sacramento', 'Sacramento', 'geo-loc');
      break;
    case 'uk': {
      // Accept a suggestion: the project's term pattern "uk" (ignoring case) suggests it.
      const suggestion = await expectOnlySpan(page, 'UK', 'UK', 'geo-loc', 'suggested');
      await page.keyboard.press('Tab');
      await expect(suggestion).toHaveAttribute('data-selected', 'true');
      await page.keyboard.press('+');
      await expectOnlySpan(page, 'UK', 'UK', 'geo-loc');
      break;
    }
    case 'hoegaarden': {
      // Relabel: a company first, then (walked to with Tab) a product.
      await cursorTo(page, 'Hoegaarden');
      await page.keyboard.press(KEY.company);
      await expectOnlySpan(page, 'Hoegaarden', 'Hoegaarden', 'company');
      await page.keyboard.press('Escape');
      await expect(ed.spans.first()).not.toHaveAttribute('data-selected', 'true');
      await page.keyboard.press('Tab');
      await expect(ed.spans.first()).toHaveAttribute('data-selected', 'true');
      await page.keyboard.press(KEY.product);
      await expectOnlySpan(page, 'Hoegaarden', 'Hoegaarden', 'product');
      break;
    }
    case 'betsey': {
      // Move both boundaries: "favorite Betsey" (Shift+→ extends), then `]` moves its start
      // one token right and `}` its end one token right: "Betsey Johnson".
      await cursorTo(page, 'favorite');
      await page.keyboard.press('Shift+ArrowRight');
      const i = (await ed.tokens()).indexOf('Betsey');
      await expect(ed.token(i)).toHaveClass(/\bsel\b/);
      await expect(ed.token(i - 1)).toHaveClass(/\bsel\b/);
      await page.keyboard.press(KEY.person);
      const li = await expectOnlySpan(page, 'favorite', 'Betsey', 'person');
      await expect(li).toHaveAttribute('data-selected', 'true');
      await page.keyboard.press(']');
      await expectOnlySpan(page, 'Betsey', 'Betsey', 'person');
      await page.keyboard.press('}');
      await expectOnlySpan(page, 'Betsey', 'Johnson', 'person');
      break;
    }
    case 'rob':
      // Delete a wrong span; delete the right one too, and undo that.
      await cursorTo(page, 'decorating');
      await page.keyboard.press(KEY.product);
      await expectOnlySpan(page, 'decorating', 'decorating', 'product');
      await page.keyboard.press('Delete');
      await expect(ed.spans).toHaveCount(0);
      await cursorTo(page, 'Rob');
      await page.keyboard.press(KEY.person);
      await expectOnlySpan(page, 'Rob', 'Rob', 'person');
      await page.keyboard.press('Delete');
      await expect(ed.spans).toHaveCount(0);
      await page.keyboard.press('Control+z');
      await expectOnlySpan(page, 'Rob', 'Rob', 'person');
      break;
  }
}

/** CoNLL as lines of token and tag (separators and trailing blank lines normalised). */
function conllLines(text: string): string[] {
  return text
    .replace(/\s+$/, '')
    .split(/\r?\n/)
    .map((line) => line.trim().split(/\s+/).filter((f) => f !== '').join('\t'));
}

test('span project: CoNLL in, five tweets annotated by keyboard, a disagreement reviewed, CoNLL out as expected', async ({ page }) => {
  test.setTimeout(JOB_WAIT + 180_000);
  const concord = Concord.fresh();
  concord.cli(['user', 'add', '--admin', 'admin'], 'admin-password\n');
  for (const who of ['ann', 'bob']) concord.cli(['user', 'add', who], 'a-long-password\n');
  const tokens = { admin: concord.cli(['token', 'add', 'admin']).trim() };
  await concord.start(['--models', path.join(repo, 'models')]);
  try {
    const base = concord.base;
    const api = apiAs(base, tokens);

    // The admin creates the span project in the UI: the labels are the entity types.
    await signIn(page, base, 'admin', 'admin-password');
    await page.goto(`${base}/`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Tweets');
    await page.getByTestId('new-project-task').selectOption('spans');
    await page.getByLabel('Labels, one per line').fill(TYPES.map(([name, description]) => `${name}: ${description}`).join('\n'));
    await page.getByRole('button', { name: 'Create project' }).click();
    await expect(page.getByTestId('project-name')).toHaveText('Tweets');
    const id = Number(page.url().match(/\/projects\/(\d+)/)![1]);
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect(page.getByTestId('project-workflow')).toContainText('spans');
    for (const [name, , key] of TYPES) {
      await expect(page.locator('ul.labels li', { hasText: name })).toContainText(key);
    }

    // Two answers per item, suggestions shown (not blind), items in import order.
    await page.getByTestId('settings-overlap').fill('2');
    await page.getByTestId('settings-queue-order').selectOption('import');
    await page.getByTestId('settings-submit').click();
    await expect(page.getByText('Settings saved.', { exact: true })).toBeVisible();
    for (const who of ['ann', 'bob']) await api('admin', 'POST', `/projects/${id}/members`, { user: who, role: 'annotator' });

    // Bob's annotations from another tool come in as his answers.
    await page.getByTestId('import-file').setInputFiles({ name: 'tweets.conll', mimeType: 'text/plain', buffer: fs.readFileSync(BOB_FILE) });
    await page.getByTestId('import-format').selectOption('conll');
    await page.getByTestId('import-labels-as').selectOption('annotator');
    await page.getByTestId('import-labels-name').fill('bob');
    await page.getByTestId('import-submit').click();
    await expect(page.getByTestId('import-result')).toContainText('Imported 5 items');
    await page.locator('body[data-hydrated=true]').waitFor();

    // Span settings: an invalid regular expression is refused with the pattern named; a
    // case-insensitive term for places is saved, and pre-annotates the items at once (a
    // "patterns" version, made with the real encoder).
    const spanForm = page.getByTestId('span-settings-form');
    const person = spanForm.locator('fieldset[data-label="person"]');
    const place = spanForm.locator('fieldset[data-label="geo-loc"]');
    await person.getByTestId('pattern-regexes').fill('(unclosed');
    await page.getByTestId('span-settings-submit').click();
    await expect(page.getByTestId('span-settings-error')).toContainText('(unclosed');
    expect((await api('admin', 'GET', `/projects/${id}`)).settings.patterns).toEqual([]);
    await person.getByTestId('pattern-regexes').fill('');
    await place.getByTestId('pattern-terms').fill('uk');
    await place.getByTestId('pattern-case-insensitive').check();
    await page.getByTestId('span-settings-submit').click();
    await expect(page.getByTestId('span-settings-saved')).toBeVisible();
    const saved = await api('admin', 'GET', `/projects/${id}`);
    expect(saved.settings.patterns).toEqual([{ label: 'geo-loc', kind: 'term', pattern: 'uk', case_insensitive: true }]);
    expect(saved.settings.overlapping_spans).toBe(false);
    expect(saved.settings.accept_threshold).toBe(80);
    expect([saved.settings.overlap, saved.settings.blind, saved.settings.queue_order]).toEqual([2, false, 'import']);
    await page.reload();
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect(page.locator('[data-testid=model-jobs] tr[data-state=done]')).toHaveCount(1, { timeout: JOB_WAIT });
    await expect(page.locator('[data-testid=model-versions] tr[data-version="1"]')).toHaveAttribute('data-active', 'true');
    // The form shows what is stored.
    await expect(page.getByTestId('span-settings-form').locator('fieldset[data-label="geo-loc"]').getByTestId('pattern-terms')).toHaveValue('uk');

    // Ann annotates the five tweets with the keyboard only.
    await signIn(page, base, 'ann', 'a-long-password');
    await page.goto(`${base}/projects/${id}/annotate`);
    await page.locator('body[data-hydrated=true]').waitFor();
    const left = new Set(Object.keys(TWEETS) as Tweet[]);
    while (left.size > 0) {
      const tweet = await currentTweet(page, left);
      await editor(page).root.focus();
      await annotate(page, tweet);
      await expectOnlySpan(page, ...TWEETS[tweet].final);
      await page.keyboard.press('Enter');
      left.delete(tweet);
    }
    await expect(page.getByTestId('queue-empty')).toBeVisible();

    // Four tweets are unanimous and settled; Hoegaarden waits for review with both answers,
    // and the reviewer takes ann's.
    await signIn(page, base, 'admin', 'admin-password');
    await page.goto(`${base}/projects/${id}/review`);
    await page.locator('body[data-hydrated=true]').waitFor();
    await expect(page.getByTestId('review-summary')).toHaveAttribute('data-waiting', '1');
    await expect(page.getByTestId('review-state')).toHaveText('disagreement');
    await expect(page.getByTestId('review-summary')).toContainText('4 accepted unanimously');
    await expect.poll(() => editor(page).tokens()).toContain('Hoegaarden');
    const answers = page.getByTestId('review-answers');
    await expect(answers.locator('[data-annotator=ann] li[data-label=product]')).toHaveCount(1);
    await expect(answers.locator('[data-annotator=bob] li[data-label=company]')).toHaveCount(1);
    const takeAnn = await answers.locator('[data-annotator=ann] [data-take-key]').getAttribute('data-take-key');
    await editor(page).root.focus();
    await page.keyboard.press(takeAnn!);
    await expectOnlySpan(page, 'Hoegaarden', 'Hoegaarden', 'product');
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('review-empty')).toBeVisible();
    await expect(page.getByTestId('review-summary')).toHaveAttribute('data-waiting', '0');

    // The CoNLL export is the WNUT-16 gold of the five tweets.
    const response = await page.request.get(`${base}/projects/${id}/export?format=conll`);
    expect(response.status()).toBe(200);
    expect(conllLines(await response.text())).toEqual(conllLines(fs.readFileSync(EXPECTED_FILE, 'utf8')));
  } finally {
    await concord.dispose();
  }
});
