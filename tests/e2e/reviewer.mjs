// The reviewer's page end to end in Debian's Chromium (headless), driven by Playwright.
// Run by tests/suite/ui.rs, which starts the server and checks the store afterwards.
// Env: BASE_URL, ADMIN_KEY, OUT_DIR (screenshots), CHROMIUM (executable), TRANSCRIPT (a file).
// Prints one JSON line: the grade made on the page, the grade reviewed, the queue's counts
// before and after the review.
import { chromium } from 'playwright-core';

const { BASE_URL: base, ADMIN_KEY: key, OUT_DIR: out, CHROMIUM: exe, TRANSCRIPT: transcript } = process.env;
const ANSWER = 'A shallow copy makes a new outer list, but the nested lists inside are the same objects, '
  + 'so mutating an inner list shows up in both. copy.deepcopy copies everything recursively and keeps a '
  + 'memo dictionary, so cycles are copied once.';

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const browser = await chromium.launch({
  executablePath: exe,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  const outside = [];
  const errors = [];
  page.on('request', r => {
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.hostname !== '127.0.0.1') outside.push(r.url());
  });
  page.on('pageerror', e => errors.push(String(e)));
  page.on('response', r => { if (r.status() >= 400 && r.status() !== 401) errors.push(`${r.status()} ${r.url()}`); });
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  const shot = name => page.screenshot({ path: `${out}/${name}.png`, fullPage: true });
  const count = async id => Number(await page.textContent(`[data-testid=${id}]`));

  // 1. Grade an answer: search the questions and pick one with the keyboard, paste, Ctrl+Enter.
  await page.goto(base + '/');
  await page.waitForSelector('#q-search:focus');
  await page.keyboard.type('difference between deepcopy and shallow copy');
  // The results for the whole query (searches run as one types; wait for the last one's).
  await page.waitForFunction(() => document.querySelector('#q-results button strong')?.textContent === 'core.copy');
  await page.keyboard.press('Enter');
  check((await page.textContent('#q-picked')).includes('core.copy'), 'the first match is core.copy');
  check(await page.evaluate(() => document.activeElement.id) === 'answer', 'picking moves to the answer');
  await page.keyboard.type(ANSWER);
  await page.keyboard.press('Control+Enter');
  await page.waitForSelector('[data-testid=score]');
  check(await page.locator('[data-testid=answer] mark').count() >= 2, 'evidence is highlighted in the answer');
  check(await page.locator('[data-testid=criteria] tbody tr').count() === 5, 'one row per criterion of core.copy (5)');
  const graded = (await page.textContent('[data-testid=grade-id]')).trim();
  await shot('grade');

  // 2. Upload a transcript and see its report.
  await page.goto(base + '/#/transcript');
  await page.waitForSelector('#transcript-file');
  await page.setInputFiles('#transcript-file', transcript);
  await page.click('#transcript-button');
  await page.waitForSelector('[data-testid=report]');
  check(await page.locator('[data-testid=report] tbody tr').count() >= 3, 'the report lists the questions');
  await shot('transcript');

  // 3. The queue needs the admin key.
  await page.fill('#key-input', key);
  await page.press('#key-input', 'Enter');
  await page.goto(base + '/#/queue');
  await page.waitForSelector('[data-testid=count-reviewed]');
  const before = { reviewed: await count('count-reviewed'), unreviewed: await count('count-unreviewed'), queue: await count('count-queue') };
  check(before.unreviewed >= 10, `the stored grades are in the queue: ${JSON.stringify(before)}`);
  await shot('queue');

  // 4. Review the first grade in the queue, by keyboard: j/k and Enter, then 3 (missed) on the
  //    first criterion and 1 (met) on the second, a note, Ctrl+Enter.
  await page.keyboard.press('j');
  await page.keyboard.press('k');
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid=review-criteria]');
  const reviewed = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  await page.keyboard.press('3');
  await page.keyboard.press('1');
  const pressed = await page.$$eval('[data-testid=review-criteria] tr.criterion',
    rows => rows.map(r => r.querySelector('button[aria-pressed=true]').dataset.verdict));
  check(pressed[0] === 'missed' && pressed[1] === 'met', `verdicts set by keyboard: ${pressed}`);
  await page.fill('#reviewer', 'e2e-reviewer');
  await page.fill('#review-note', 'Checked by the end-to-end test.');
  await page.keyboard.press('Control+Enter');
  await page.waitForSelector('[data-testid=reviews]');
  await shot('review');

  // 5. The queue's counts moved.
  await page.goto(base + '/#/queue');
  await page.waitForFunction(n => Number(document.querySelector('[data-testid=count-reviewed]')?.textContent) === n, before.reviewed + 1);
  const after = { reviewed: await count('count-reviewed'), unreviewed: await count('count-unreviewed'), queue: await count('count-queue') };
  check(after.unreviewed === before.unreviewed - 1, `one fewer to review: ${JSON.stringify({ before, after })}`);

  // 6. The rubric's page shows its agreement with reviewers.
  const g = await (await page.request.get(`${base}/v1/grades/${reviewed}`, { headers: { Authorization: `Bearer ${key}` } })).json();
  await page.goto(`${base}/#/rubric/${g.grade.rubric_id}`);
  await page.waitForSelector('[data-testid=agreement] strong');
  check((await page.textContent('[data-testid=agreement]')).includes('reviewed grades'), 'agreement shown');
  await shot('rubric');

  check(outside.length === 0, `requests left 127.0.0.1: ${outside}`);
  check(errors.length === 0, `errors on the page: ${errors}`);
  console.log(JSON.stringify({ graded, reviewed, before, after, rubric: g.grade.rubric_id }));
} finally {
  await browser.close();
}
