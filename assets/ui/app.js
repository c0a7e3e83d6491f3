// The reviewer's page: grade an answer, upload a transcript, work through the review queue,
// and see how each rubric agrees with its reviewers. Plain ES modules, no build step, no
// third-party code; every text from the server goes in through textContent, never as HTML.

const main = document.getElementById('main');
const statusBox = document.getElementById('status');

// ---- small helpers -------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function say(text, kind = 'ok') {
  statusBox.replaceChildren(text ? h('div', { class: kind }, text) : '');
}

function fmt(x) {
  return Number.isFinite(x) ? (Math.round(x * 10) / 10).toFixed(1) : '–';
}

function when(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

const KEY = 'grader.key';
function key() { return sessionStorage.getItem(KEY) || ''; }

/** fetch JSON; a problem+json answer becomes an Error carrying its detail and status. */
async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (key()) headers['Authorization'] = 'Bearer ' + key();
  const resp = await fetch(path, Object.assign({}, opts, { headers }));
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!resp.ok) {
    const detail = body && (body.detail || body.title) || `${resp.status} ${resp.statusText}`;
    const err = new Error(detail);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function problemText(e) {
  if (e.status === 401 || e.status === 403) return `${e.message} — enter an admin key at the top right.`;
  return e.message;
}

// ---- evidence highlighting -----------------------------------------------------------------

/** The answer with each criterion's evidence marked. Matching ignores case, runs of
 *  whitespace and curly quotes, as the server's check does. */
function highlighted(answer, criteria) {
  const norm = [];
  const map = [];
  let lastSpace = false;
  for (let i = 0; i < answer.length; i++) {
    let c = answer[i].toLowerCase();
    if ('\u2018\u2019\u201b`'.includes(c)) c = "'";
    if ('\u201c\u201d\u201f'.includes(c)) c = '"';
    if (/\s/.test(c)) {
      if (lastSpace) continue;
      c = ' ';
      lastSpace = true;
    } else lastSpace = false;
    norm.push(c);
    map.push(i);
  }
  const normText = norm.join('');
  const spans = [];
  (criteria || []).forEach((c, n) => {
    if (!c.evidence) return;
    const q = c.evidence.toLowerCase().replace(/[\u2018\u2019\u201b`]/g, "'")
      .replace(/[\u201c\u201d\u201f]/g, '"').replace(/\s+/g, ' ').trim();
    const at = q ? normText.indexOf(q) : -1;
    if (at < 0) return;
    const start = map[at];
    const end = map[at + q.length - 1] + 1;
    if (spans.some(s => start < s.end && end > s.start)) return;
    spans.push({ start, end, verdict: c.verdict, label: n + 1, id: c.id });
  });
  spans.sort((a, b) => a.start - b.start);
  const out = h('div', { class: 'answer', 'data-testid': 'answer' });
  let pos = 0;
  for (const s of spans) {
    out.append(answer.slice(pos, s.start));
    out.append(h('mark', { class: 'm-' + s.verdict, title: `${s.id}: ${s.verdict}` },
      answer.slice(s.start, s.end), h('sup', {}, s.label)));
    pos = s.end;
  }
  out.append(answer.slice(pos));
  return out;
}

function flagBadges(flags) {
  const bad = ['injection_suspected', 'judges_disagree'];
  const warn = ['evidence_unverified', 'fallback_to_coverage', 'truncated', 'no_content',
    'near_boundary', 'low_agreement'];
  return (flags || []).map(f => h('span', {
    class: 'flag' + (bad.includes(f) ? ' bad' : warn.includes(f) ? ' warn' : ''),
  }, f.replaceAll('_', ' ')));
}

function criteriaTable(grade) {
  return h('table', { 'data-testid': 'criteria' },
    h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'criterion'), h('th', {}, 'weight'),
      h('th', {}, 'verdict'), h('th', {}, 'evidence'), h('th', {}, 'why'))),
    h('tbody', {}, grade.criteria.map((c, i) => h('tr', {},
      h('td', {}, i + 1), h('td', {}, c.id), h('td', {}, c.weight),
      h('td', { class: 'verdict v-' + c.verdict }, c.verdict),
      h('td', {}, c.evidence ? `“${c.evidence}”` : '—', c.evidence && !c.evidence_verified ? ' (not found in the answer)' : ''),
      h('td', { class: 'small muted' }, c.reason)))));
}

function gradeView(grade, answer) {
  const kids = [
    h('div', { class: 'row' },
      h('div', {}, h('div', { class: 'score', 'data-testid': 'score' }, fmt(grade.score), h('small', {}, ` / ${grade.max_score}`)),
        h('div', { class: 'muted small' }, `${grade.rubric_id} · ${grade.judge.kind} (${grade.judge.model}) · ${grade.latency_ms} ms`)),
      h('div', { class: 'fixed' }, flagBadges(grade.flags))),
    h('p', { class: 'muted small' }, 'Grade id ', h('code', { 'data-testid': 'grade-id' }, grade.id), ' · ',
      h('a', { href: '#/review/' + grade.id }, 'review this grade')),
  ];
  if (answer) kids.push(h('h3', {}, 'The answer, with the evidence for each criterion'), highlighted(answer, grade.criteria));
  kids.push(h('h3', {}, 'Per criterion'), criteriaTable(grade));
  if (grade.misconceptions.length) {
    kids.push(h('h3', {}, 'Misconceptions'), h('ul', {}, grade.misconceptions.map(m =>
      h('li', {}, `${m.id} (−${m.penalty}): “${m.evidence}”`))));
  }
  if (grade.gaps.length) kids.push(h('h3', {}, 'Gaps'), h('ul', { 'data-testid': 'gaps' }, grade.gaps.map(g => h('li', {}, g))));
  if (grade.feedback) kids.push(h('h3', {}, 'Feedback'), h('p', {}, grade.feedback));
  return h('section', { class: 'card', 'aria-label': 'Grade' }, kids);
}

// ---- pages ---------------------------------------------------------------------------------

let questionsCache = null;
async function questions() {
  if (!questionsCache) questionsCache = await api('/v1/questions');
  return questionsCache;
}

function pageGrade() {
  let picked = null;
  const search = h('input', { id: 'q-search', type: 'search', placeholder: 'Search the questions, or type your own', autocomplete: 'off', 'aria-controls': 'q-results' });
  const results = h('ul', { id: 'q-results', class: 'results', role: 'listbox', 'aria-label': 'Matching questions' });
  const pickedLine = h('div', { class: 'picked muted small', id: 'q-picked', 'aria-live': 'polite' }, 'No question picked: the text above is matched to a rubric.');
  const answer = h('textarea', { id: 'answer', placeholder: 'Paste the candidate’s answer' });
  const candidate = h('input', { id: 'candidate', type: 'text', placeholder: 'optional: id or e-mail, for purging later' });
  const judge = h('select', { id: 'judge' }, ['auto', 'coverage', 'llm', 'hybrid'].map(j => h('option', { value: j }, j)));
  const go = h('button', { class: 'primary', type: 'submit', id: 'grade-button' }, 'Grade (Ctrl+Enter)');
  const out = h('div', { id: 'grade-result' });

  function pick(q) {
    picked = q;
    pickedLine.textContent = q ? `Picked: ${q.id} — ${q.question}` : 'No question picked: the text above is matched to a rubric.';
    results.replaceChildren();
    if (q) answer.focus();
  }
  function show(list) {
    results.replaceChildren(...list.slice(0, 10).map((q, i) => h('li', {},
      h('button', { type: 'button', role: 'option', 'aria-selected': i === 0 ? 'true' : 'false', onclick: () => pick(q) },
        h('strong', {}, q.id), ' ', q.question))));
  }
  let timer = null;
  search.addEventListener('input', () => {
    picked = null;
    clearTimeout(timer);
    const text = search.value.trim();
    if (!text) { results.replaceChildren(); return; }
    timer = setTimeout(async () => {
      try {
        const list = await api('/v1/questions?q=' + encodeURIComponent(text));
        // An answer to an older query (the user kept typing) must not replace newer results.
        if (search.value.trim() === text) show(list);
      } catch (e) { say(problemText(e), 'error'); }
    }, 200);
  });
  search.addEventListener('keydown', e => {
    const opts = [...results.querySelectorAll('button')];
    if (!opts.length) return;
    let i = opts.findIndex(b => b.getAttribute('aria-selected') === 'true');
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      i = Math.max(0, Math.min(opts.length - 1, i + (e.key === 'ArrowDown' ? 1 : -1)));
      opts.forEach((b, j) => b.setAttribute('aria-selected', j === i ? 'true' : 'false'));
      opts[i].scrollIntoView({ block: 'nearest' });
    } else if (e.key === 'Enter') {
      e.preventDefault();
      opts[Math.max(0, i)].click();
    }
  });

  async function submit(e) {
    if (e) e.preventDefault();
    const body = { answer: answer.value };
    if (picked) body.question_id = picked.id; else body.question = search.value;
    if (judge.value !== 'auto') body.judge = judge.value;
    if (candidate.value.trim()) body.candidate = candidate.value.trim();
    go.disabled = true;
    say('Grading…');
    try {
      const g = await api('/v1/grade', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      out.replaceChildren(gradeView(g, answer.value));
      say('');
      out.querySelector('.score').scrollIntoView({ block: 'start' });
    } catch (err) { say(problemText(err), 'error'); }
    finally { go.disabled = false; }
  }
  const form = h('form', { class: 'card', onsubmit: submit, 'aria-label': 'Grade an answer' },
    h('label', { for: 'q-search' }, 'Question'), search, results, pickedLine,
    h('label', { for: 'answer' }, 'Answer'), answer,
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'candidate' }, 'Candidate'), candidate),
      h('div', { class: 'fixed' }, h('label', { for: 'judge' }, 'Judge'), judge),
      h('div', { class: 'fixed' }, go)));
  form.addEventListener('keydown', e => { if (e.key === 'Enter' && e.ctrlKey) submit(e); });
  main.replaceChildren(h('h2', {}, 'Grade an answer'), form, out);
  search.focus();
}

function pageTranscript() {
  const file = h('input', { id: 'transcript-file', type: 'file', accept: '.txt,.vtt,.srt,.json,text/plain' });
  const text = h('textarea', { id: 'transcript-text', placeholder: 'Interviewer: …\nCandidate: …' });
  const candidate = h('input', { id: 'transcript-candidate', type: 'text', placeholder: 'optional' });
  const go = h('button', { class: 'primary', type: 'submit', id: 'transcript-button' }, 'Grade the transcript (Ctrl+Enter)');
  const out = h('div', { id: 'transcript-result' });
  async function submit(e) {
    if (e) e.preventDefault();
    let body = text.value, name = 'transcript', type = 'text/plain';
    if (file.files.length) {
      const f = file.files[0];
      body = await f.text();
      name = f.name;
      if (name.endsWith('.json')) type = 'application/json';
    }
    if (!body.trim()) { say('Choose a file or paste a transcript first.', 'error'); return; }
    const params = new URLSearchParams({ name });
    if (candidate.value.trim()) params.set('candidate', candidate.value.trim());
    go.disabled = true;
    say('Grading the transcript…');
    try {
      const r = await api('/v1/transcripts?' + params, { method: 'POST', headers: { 'content-type': type }, body });
      out.replaceChildren(reportView(r));
      say('');
    } catch (err) { say(problemText(err), 'error'); }
    finally { go.disabled = false; }
  }
  const form = h('form', { class: 'card', onsubmit: submit, 'aria-label': 'Upload a transcript' },
    h('label', { for: 'transcript-file' }, 'Transcript file (text, WebVTT, SRT or JSON turns)'), file,
    h('label', { for: 'transcript-text' }, '…or paste it'), text,
    h('div', { class: 'row' }, h('div', {}, h('label', { for: 'transcript-candidate' }, 'Candidate'), candidate),
      h('div', { class: 'fixed' }, go)));
  form.addEventListener('keydown', e => { if (e.key === 'Enter' && e.ctrlKey) submit(e); });
  main.replaceChildren(h('h2', {}, 'Grade an interview transcript'), form, out);
  file.focus();
}

function reportView(r) {
  const graded = r.pairs.filter(p => p.grade);
  return h('section', { class: 'card', 'aria-label': 'Report', 'data-testid': 'report' },
    h('div', { class: 'row' },
      h('div', {}, h('div', { class: 'score' }, r.overall == null ? '–' : fmt(r.overall), h('small', {}, ' / 10 overall')),
        h('div', { class: 'muted small' }, `${r.file} · ${graded.length} graded answers · ${r.unmatched} questions not in the rubric set`)),
      h('div', {}, r.strongest.length ? h('div', {}, 'Strongest: ', r.strongest.join(', ')) : null,
        r.weakest.length ? h('div', {}, 'Weakest: ', r.weakest.join(', ')) : null)),
    h('h3', {}, 'Questions'),
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'question'), h('th', {}, 'rubric'), h('th', {}, 'score'), h('th', {}, ''))),
      h('tbody', {}, r.pairs.map(p => h('tr', {},
        h('td', {}, p.question),
        h('td', { class: 'small' }, p.rubric_id || h('span', { class: 'muted' }, 'not in the rubric set')),
        h('td', {}, p.grade ? `${fmt(p.grade.score)} / ${p.grade.max_score}` : (p.error || '—')),
        h('td', {}, p.grade ? h('div', { class: 'bar', role: 'img', 'aria-label': `${fmt(p.grade.score)} of ${p.grade.max_score}` },
          h('span', { style: null, 'data-w': Math.round(100 * p.grade.score / p.grade.max_score) })) : '',
          p.grade ? h('a', { class: 'small', href: '#/review/' + p.grade.id }, 'review') : ''))))),
    r.key_gaps.length ? [h('h3', {}, 'Key gaps'), h('ul', {}, r.key_gaps.map(g => h('li', {}, g)))] : null);
}

// Bar widths: CSP forbids inline styles in markup, but setting them from script is allowed.
const barObserver = new MutationObserver(() => {
  for (const s of document.querySelectorAll('.bar span[data-w]')) {
    s.style.width = s.dataset.w + '%';
    s.removeAttribute('data-w');
  }
});
barObserver.observe(main, { childList: true, subtree: true });

async function refreshBadge() {
  const badge = document.getElementById('queue-badge');
  if (!key()) { badge.hidden = true; return; }
  try {
    const c = await api('/v1/reviews/counts');
    badge.textContent = c.queue;
    badge.hidden = c.queue === 0;
    badge.setAttribute('aria-label', `${c.queue} flagged grades to review`);
  } catch { badge.hidden = true; }
}

async function pageQueue() {
  main.replaceChildren(h('h2', {}, 'Review queue'), h('p', { class: 'muted' }, 'Loading…'));
  const rubric = h('select', { id: 'queue-rubric' }, h('option', { value: '' }, 'all rubrics'));
  const show = h('select', { id: 'queue-show' }, h('option', { value: 'false' }, 'to review'),
    h('option', { value: 'true' }, 'reviewed'), h('option', { value: '' }, 'all'));
  const countsBox = h('div', { class: 'counts', 'data-testid': 'counts', 'aria-live': 'polite' });
  const body = h('tbody', {});
  const more = h('button', { type: 'button', hidden: true }, 'More');
  let cursor = null;
  let selected = 0;

  function select(i) {
    const rows = [...body.querySelectorAll('tr')];
    if (!rows.length) return;
    selected = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach((r, j) => r.setAttribute('aria-selected', j === selected ? 'true' : 'false'));
    rows[selected].querySelector('a').focus();
  }
  async function counts() {
    const q = rubric.value ? '?rubric_id=' + encodeURIComponent(rubric.value) : '';
    const c = await api('/v1/reviews/counts' + q);
    countsBox.replaceChildren(
      h('div', {}, h('strong', { 'data-testid': 'count-unreviewed' }, c.unreviewed), 'to review'),
      h('div', {}, h('strong', { 'data-testid': 'count-queue' }, c.queue), 'flagged or borderline'),
      h('div', {}, h('strong', { 'data-testid': 'count-reviewed' }, c.reviewed), 'reviewed'),
      h('div', {}, h('strong', {}, c.grades), 'stored'),
      h('div', { class: 'small' }, Object.entries(c.by_reason).map(([k, v]) => h('div', {}, `${k.replaceAll('_', ' ')}: ${v}`))));
  }
  async function load(reset) {
    if (reset) { body.replaceChildren(); cursor = null; }
    const p = new URLSearchParams({ order: 'queue', limit: '25' });
    if (show.value) p.set('reviewed', show.value);
    if (rubric.value) p.set('rubric_id', rubric.value);
    if (cursor) p.set('cursor', cursor);
    const page = await api('/v1/grades?' + p);
    for (const g of page.items) {
      body.append(h('tr', { 'data-id': g.id, onclick: () => { location.hash = '#/review/' + g.id; } },
        h('td', {}, h('a', { href: '#/review/' + g.id }, `${fmt(g.score)} / ${g.max_score}`)),
        h('td', {}, g.human_score != null ? fmt(g.human_score) : h('span', { class: 'muted' }, '—')),
        h('td', {}, g.rubric_id, h('div', { class: 'small muted' }, g.question)),
        h('td', {}, flagBadges(g.reasons)),
        h('td', { class: 'small' }, when(g.created_at), h('div', { class: 'muted' }, g.source.via + (g.candidate ? ' · ' + g.candidate : '')))));
    }
    cursor = page.next_cursor || null;
    more.hidden = !cursor;
    if (!body.children.length) body.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'Nothing here.')));
  }
  try {
    for (const q of await questions()) rubric.append(h('option', { value: q.id }, q.id));
    await Promise.all([counts(), load(true)]);
  } catch (e) {
    main.replaceChildren(h('h2', {}, 'Review queue'), h('p', {}, problemText(e)));
    return;
  }
  rubric.addEventListener('change', () => { counts(); load(true); });
  show.addEventListener('change', () => load(true));
  more.addEventListener('click', () => load(false));
  const table = h('table', { class: 'queue', 'data-testid': 'queue' },
    h('thead', {}, h('tr', {}, h('th', {}, 'machine'), h('th', {}, 'human'), h('th', {}, 'question'), h('th', {}, 'why first'), h('th', {}, 'when'))), body);
  table.addEventListener('keydown', e => {
    if (e.key === 'j') { e.preventDefault(); select(selected + 1); }
    if (e.key === 'k') { e.preventDefault(); select(selected - 1); }
  });
  main.replaceChildren(h('h2', {}, 'Review queue'), countsBox,
    h('div', { class: 'card' }, h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'queue-rubric' }, 'Rubric'), rubric),
      h('div', {}, h('label', { for: 'queue-show' }, 'Show'), show)),
      h('p', { class: 'small muted' }, 'Flagged grades first (judges disagree, injection suspected, evidence unverified, low agreement), then grades near the pass mark. ', h('span', { class: 'kbd' }, 'j'), '/', h('span', { class: 'kbd' }, 'k'), ' move, ', h('span', { class: 'kbd' }, 'Enter'), ' opens.'),
      table, more));
  select(0);
  refreshBadge();
}

async function pageReview(id) {
  main.replaceChildren(h('h2', {}, 'Review'), h('p', { class: 'muted' }, 'Loading…'));
  let g;
  try { g = await api('/v1/grades/' + encodeURIComponent(id)); } catch (e) {
    main.replaceChildren(h('h2', {}, 'Review'), h('p', {}, problemText(e)));
    return;
  }
  const machine = g.grade;
  const latest = g.reviews.length ? g.reviews[g.reviews.length - 1] : null;
  const verdicts = {};
  for (const c of machine.criteria) {
    const h2 = latest && latest.criteria.find(x => x.id === c.id);
    verdicts[c.id] = h2 ? h2.verdict : c.verdict;
  }
  let selected = 0;
  const rows = machine.criteria.map((c, i) => {
    const buttons = ['met', 'partial', 'missed'].map((v, k) => h('button', {
      type: 'button', class: v, 'aria-pressed': verdicts[c.id] === v ? 'true' : 'false',
      title: `${v} (${k + 1})`, 'data-verdict': v,
      onclick: () => { setVerdict(i, v); },
    }, v));
    return h('tr', { class: 'criterion', 'data-criterion': c.id, tabindex: '-1', onfocusin: () => mark(i) },
      h('td', {}, i + 1), h('td', {}, h('strong', {}, c.id), h('div', { class: 'small muted' }, `weight ${c.weight}`)),
      h('td', { class: 'verdict v-' + c.verdict }, c.verdict),
      h('td', { class: 'small' }, c.evidence ? `“${c.evidence}”` : '—', h('div', { class: 'muted' }, c.reason)),
      h('td', {}, h('div', { class: 'verdicts', role: 'group', 'aria-label': `Your verdict on ${c.id}` }, buttons)));
  });
  function mark(i) {
    selected = i;
    rows.forEach((r, j) => r.classList.toggle('selected', j === i));
  }
  function setVerdict(i, v) {
    const c = machine.criteria[i];
    verdicts[c.id] = v;
    rows[i].querySelectorAll('button').forEach(b => b.setAttribute('aria-pressed', b.dataset.verdict === v ? 'true' : 'false'));
    rows[i].classList.toggle('changed', v !== c.verdict);
    humanLine.textContent = `Your verdicts give ${fmt(humanScore())} / ${machine.max_score} (machine: ${fmt(machine.score)})`;
  }
  function humanScore() {
    let total = 0, got = 0;
    for (const c of machine.criteria) {
      total += c.weight;
      got += c.weight * ({ met: 1, partial: 0.5, missed: 0 }[verdicts[c.id]]);
    }
    const pen = machine.misconceptions.reduce((a, m) => a + m.penalty, 0);
    const s = total > 0 ? machine.max_score * got / total - pen : 0;
    return Math.round(Math.min(machine.max_score, Math.max(0, s)) * 10) / 10;
  }
  const humanLine = h('p', { class: 'muted', 'aria-live': 'polite', 'data-testid': 'human-score' });
  const override = h('input', { id: 'score-override', type: 'number', min: 0, max: machine.max_score, step: 0.5, placeholder: 'optional' });
  const note = h('textarea', { id: 'review-note', placeholder: 'Why this score? It is shown to the LLM judge with this answer as an example.' });
  note.style.minHeight = '4em';
  const reviewer = h('input', { id: 'reviewer', type: 'text', value: localStorage.getItem('grader.reviewer') || '' });
  const save = h('button', { class: 'primary', type: 'submit', id: 'save-review' }, 'Save review (Ctrl+Enter)');
  async function submit(e) {
    if (e) e.preventDefault();
    if (!reviewer.value.trim()) { say('Say who you are (Reviewer) before saving.', 'error'); reviewer.focus(); return; }
    localStorage.setItem('grader.reviewer', reviewer.value.trim());
    const body = {
      criteria: machine.criteria.map(c => ({ id: c.id, verdict: verdicts[c.id] })),
      note: note.value, reviewer: reviewer.value.trim(),
    };
    if (override.value !== '') body.score_override = Number(override.value);
    save.disabled = true;
    try {
      const r = await api(`/v1/grades/${encodeURIComponent(id)}/review`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      say(`Saved: human score ${fmt(r.review.human_score)} / ${machine.max_score}${r.exemplar ? ' — the answer is now an exemplar of its rubric' : ''}. Press n for the next grade.`);
      pageReview(id);
      refreshBadge();
    } catch (err) { say(problemText(err), 'error'); save.disabled = false; }
  }
  async function next() {
    try {
      const page = await api('/v1/grades?order=queue&reviewed=false&limit=2');
      const n = page.items.find(x => x.id !== id);
      if (n) location.hash = '#/review/' + n.id; else say('The queue is empty.');
    } catch (e) { say(problemText(e), 'error'); }
  }
  const table = h('table', { 'data-testid': 'review-criteria' }, h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'criterion'), h('th', {}, 'machine'), h('th', {}, 'evidence'), h('th', {}, 'your verdict'))), h('tbody', {}, rows));
  const form = h('form', { class: 'card', onsubmit: submit, 'aria-label': 'Your review' },
    h('h3', {}, 'Your verdicts'),
    h('p', { class: 'small muted' }, h('span', { class: 'kbd' }, 'j'), '/', h('span', { class: 'kbd' }, 'k'), ' pick a criterion, ',
      h('span', { class: 'kbd' }, '1'), ' met, ', h('span', { class: 'kbd' }, '2'), ' partial, ', h('span', { class: 'kbd' }, '3'), ' missed; ',
      h('span', { class: 'kbd' }, 'Ctrl+Enter'), ' saves, ', h('span', { class: 'kbd' }, 'n'), ' next grade.'),
    table, humanLine,
    h('div', { class: 'row' },
      h('div', { class: 'fixed' }, h('label', { for: 'score-override' }, 'Score override'), override),
      h('div', {}, h('label', { for: 'reviewer' }, 'Reviewer'), reviewer)),
    h('label', { for: 'review-note' }, 'Note'), note,
    h('p', {}, save));
  form.addEventListener('keydown', e => {
    if (e.key === 'Enter' && e.ctrlKey) { submit(e); return; }
    const typing = ['INPUT', 'TEXTAREA', 'SELECT'].includes(e.target.tagName);
    if (typing || e.ctrlKey || e.altKey || e.metaKey) return;
    if (e.key === 'j' || e.key === 'k') {
      e.preventDefault();
      const i = Math.max(0, Math.min(rows.length - 1, selected + (e.key === 'j' ? 1 : -1)));
      mark(i);
      rows[i].querySelector('button[aria-pressed="true"]').focus();
    } else if (['1', '2', '3'].includes(e.key)) {
      e.preventDefault();
      setVerdict(selected, ['met', 'partial', 'missed'][Number(e.key) - 1]);
      const i = Math.min(rows.length - 1, selected + 1);
      mark(i);
      rows[i].querySelector('button[aria-pressed="true"]').focus();
    } else if (e.key === 'n') {
      e.preventDefault();
      next();
    }
  });
  const history = g.reviews.length ? h('section', { class: 'card', 'aria-label': 'Reviews' }, h('h3', {}, `Reviews (${g.reviews.length})`),
    h('ol', { class: 'history', 'data-testid': 'reviews' }, g.reviews.map(r => h('li', {},
      h('strong', {}, `${fmt(r.human_score)} / ${machine.max_score}`), ` by ${r.reviewer}, ${when(r.created_at)}`,
      r.note ? h('div', { class: 'small' }, r.note) : null)))) : null;
  main.replaceChildren(
    h('h2', {}, 'Review a grade'),
    h('section', { class: 'card' },
      h('div', { class: 'row' },
        h('div', {}, h('div', { class: 'score' }, fmt(machine.score), h('small', {}, ` / ${machine.max_score} by the machine`)),
          h('div', { class: 'muted small' }, `${machine.rubric_id} · ${machine.judge.kind} · ${when(g.created_at)} · via ${g.source.via}${g.candidate ? ' · ' + g.candidate : ''}`)),
        h('div', { class: 'fixed' }, flagBadges(machine.flags), flagBadges(g.reasons))),
      h('h3', {}, 'Question'), h('p', {}, g.question),
      h('h3', {}, 'Answer'),
      g.answer ? highlighted(g.answer, machine.criteria) : h('p', { class: 'muted' }, 'The answer is not kept (store.keep_answers = false).')),
    form, history);
  for (let i = 0; i < rows.length; i++) rows[i].classList.toggle('changed', verdicts[machine.criteria[i].id] !== machine.criteria[i].verdict);
  setVerdict(0, verdicts[machine.criteria[0].id]);
  mark(0);
  rows[0].querySelector('button[aria-pressed="true"]').focus();
}

async function pageRubrics() {
  main.replaceChildren(h('h2', {}, 'Rubrics'), h('p', { class: 'muted' }, 'Loading…'));
  let qs, agree = [];
  try { qs = await questions(); } catch (e) { main.replaceChildren(h('h2', {}, 'Rubrics'), h('p', {}, problemText(e))); return; }
  try { agree = await api('/v1/reviews/agreement'); } catch { agree = []; }
  const by = Object.fromEntries(agree.map(a => [a.rubric_id, a]));
  main.replaceChildren(h('h2', {}, 'Rubrics'),
    h('section', { class: 'card' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'rubric'), h('th', {}, 'question'), h('th', {}, 'reviews'), h('th', {}, 'machine vs reviewers'))),
      h('tbody', {}, qs.map(q => h('tr', {},
        h('td', {}, h('a', { href: '#/rubric/' + q.id }, q.id)), h('td', {}, q.question),
        h('td', {}, by[q.id] ? by[q.id].reviews : 0),
        h('td', { class: 'small' }, by[q.id] ? `MAE ${fmt(by[q.id].mae)} · within 1 point ${Math.round(100 * by[q.id].within_one)}%` : '—')))))));
}

async function pageRubric(id) {
  main.replaceChildren(h('h2', {}, id), h('p', { class: 'muted' }, 'Loading…'));
  let q, agree = [], page = { items: [] };
  try { q = await api('/v1/questions/' + encodeURIComponent(id)); } catch (e) { main.replaceChildren(h('h2', {}, id), h('p', {}, problemText(e))); return; }
  let note = null;
  try {
    agree = await api('/v1/reviews/agreement?rubric_id=' + encodeURIComponent(id));
    page = await api('/v1/grades?limit=10&rubric_id=' + encodeURIComponent(id));
  } catch (e) { note = h('p', { class: 'muted' }, problemText(e)); }
  const a = agree[0];
  const perCriterion = a ? Object.fromEntries(a.criteria.map(c => [c.id, c])) : {};
  main.replaceChildren(h('h2', {}, q.id),
    h('section', { class: 'card' }, h('p', {}, q.question),
      h('h3', {}, 'Agreement with reviewers'),
      note || (a ? h('div', { class: 'counts', 'data-testid': 'agreement' },
        h('div', {}, h('strong', {}, a.reviews), 'reviewed grades'),
        h('div', {}, h('strong', {}, fmt(a.mae)), 'mean |machine − human| (of 10)'),
        h('div', {}, h('strong', {}, a.pearson == null ? '–' : a.pearson.toFixed(2)), 'Pearson r'),
        h('div', {}, h('strong', {}, Math.round(100 * a.within_one) + '%'), 'within one point'))
        : h('p', { class: 'muted', 'data-testid': 'agreement' }, 'No reviews of this rubric yet.')),
      h('h3', {}, 'Criteria'),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'criterion'), h('th', {}, 'weight'), h('th', {}, 'point'), h('th', {}, 'verdicts reviewers kept'))),
        h('tbody', {}, q.criteria.map(c => h('tr', {}, h('td', {}, c.id), h('td', {}, c.weight), h('td', {}, c.point || ''),
          h('td', {}, perCriterion[c.id] ? `${Math.round(100 * perCriterion[c.id].agreement)}% of ${perCriterion[c.id].reviews}` : '—')))))),
    h('section', { class: 'card' }, h('h3', {}, 'Recent grades'),
      page.items.length ? h('ul', {}, page.items.map(g => h('li', {}, h('a', { href: '#/review/' + g.id }, `${fmt(g.score)} / ${g.max_score}`),
        ` ${when(g.created_at)}`, g.human_score != null ? ` · human ${fmt(g.human_score)}` : ''))) : h('p', { class: 'muted' }, 'None stored.')));
}

// ---- routing, key, shortcuts ---------------------------------------------------------------

async function route() {
  const [, page = 'grade', arg] = location.hash.split('/');
  for (const a of document.querySelectorAll('nav a')) {
    const on = a.dataset.page === page || (page === 'review' && a.dataset.page === 'queue') || (page === 'rubric' && a.dataset.page === 'rubrics');
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (!statusBox.querySelector('.ok')) say('');
  const pages = { grade: pageGrade, transcript: pageTranscript, queue: pageQueue, rubrics: pageRubrics };
  if (page === 'review' && arg) await pageReview(decodeURIComponent(arg));
  else if (page === 'rubric' && arg) await pageRubric(decodeURIComponent(arg));
  else await (pages[page] || pageGrade)();
  document.title = `grader · ${page}`;
}

const keyInput = document.getElementById('key-input');
const keyState = document.getElementById('key-state');
function showKey() { keyState.textContent = key() ? 'key set' : 'no key'; }
document.getElementById('key-form').addEventListener('submit', e => {
  e.preventDefault();
  if (keyInput.value.trim()) sessionStorage.setItem(KEY, keyInput.value.trim()); else sessionStorage.removeItem(KEY);
  keyInput.value = '';
  showKey();
  questionsCache = null;
  refreshBadge();
  route();
});

const help = document.getElementById('help');
const helpButton = document.getElementById('help-button');
function toggleHelp() {
  help.hidden = !help.hidden;
  helpButton.setAttribute('aria-expanded', String(!help.hidden));
}
helpButton.addEventListener('click', toggleHelp);

let pendingG = false;
document.addEventListener('keydown', e => {
  const typing = ['INPUT', 'TEXTAREA', 'SELECT'].includes(e.target.tagName);
  if (typing || e.ctrlKey || e.altKey || e.metaKey) return;
  if (e.key === '?') { toggleHelp(); return; }
  if (pendingG) {
    pendingG = false;
    const to = { a: '#/grade', t: '#/transcript', q: '#/queue', r: '#/rubrics' }[e.key];
    if (to) { e.preventDefault(); location.hash = to; }
    return;
  }
  if (e.key === 'g') { pendingG = true; setTimeout(() => { pendingG = false; }, 1200); return; }
  if (e.key === 'Enter' && e.target.closest && e.target.closest('table.queue')) {
    const row = e.target.closest('tr');
    if (row && row.dataset.id) location.hash = '#/review/' + row.dataset.id;
  }
});

window.addEventListener('hashchange', route);
showKey();
refreshBadge();
route();
