// The qotd player page: sign in, register, play today's five questions, see the result,
// share it, follow the boards. Contract: openapi.yaml (API) and README.md beside this file
// (web-config, OIDC, test ids).

import { ApiError, createApi, serverClockOffset } from './api.js';
import * as auth from './auth.js';
import {
  $, el, showView, focusHeading, showError, clearError, setStatus,
  formatDuration, formatDay, previousDay, LETTERS,
} from './ui.js';

const state = {
  config: null,       // GET /api/web-config, or null when it is not served
  profile: null,      // GET /api/users/me
  quiz: null,         // GET /api/quizzes/today
  clockOffset: 0,     // server clock minus browser clock, ms
  share: null,        // GET /api/users/me/attempts/{date}/share
  period: 'daily',
  boardSeq: 0,        // ignores board answers that a later tab click overtook
  countdownTimer: 0,
  rolloverTries: 0,
  yesterdayLoaded: false,
  reauthStarted: false,
};

const api = createApi({ getToken: auth.getToken, onUnauthorized });

// ---------------------------------------------------------------- start-up and sign-in

async function boot() {
  wireControls();
  state.config = await loadConfig();
  if (auth.isCallback()) {
    if (!state.config) {
      history.replaceState(null, '', location.pathname);
      showSignIn();
      showError({ title: 'Sign-in is not configured', detail: 'The server did not provide its sign-in settings (GET /api/web-config).' });
      return;
    }
    setStatus('Signing you in…');
    try {
      await auth.completeSignIn(state.config);
    } catch (e) {
      setStatus('');
      showSignIn();
      showError(e);
      return;
    }
  }
  await start();
}

async function loadConfig() {
  try {
    const { data } = await api.get('/api/web-config', { anonymous: true });
    if (!data || !data.authority || !data.clientId || !data.scope) return null;
    return { ...data, redirectPath: data.redirectPath || '/' };
  } catch {
    return null; // a token put into sessionStorage by hand still works without it
  }
}

/** Decides what to show for the current token: sign-in, registration, or the game. */
async function start({ focus = false } = {}) {
  if (!auth.getToken()) {
    showSignIn();
    return;
  }
  showView('view-loading');
  setStatus('Loading…');
  try {
    state.profile = (await api.get('/api/users/me')).data;
  } catch (e) {
    setStatus('');
    if (e.status === 404) showRegister();
    else if (e.status !== 401) showError(e, { label: 'Try again', action: () => start() });
    return;
  }
  await showGame({ focus });
}

function showSignIn() {
  stopCountdown();
  $('account').hidden = true;
  showView('view-signin');
}

async function signIn() {
  clearError();
  if (!state.config) {
    showError({ title: 'Sign-in is not configured', detail: 'The server did not provide its sign-in settings (GET /api/web-config). Try again later.' });
    return;
  }
  $('sign-in').disabled = true;
  setStatus('Taking you to sign-in…');
  try {
    await auth.beginSignIn(state.config); // navigates away
  } catch (e) {
    $('sign-in').disabled = false;
    setStatus('');
    showError(e);
  }
}

async function signOut() {
  stopCountdown();
  await auth.signOut(state.config); // may navigate to the issuer's sign-out page
  Object.assign(state, { profile: null, quiz: null, share: null, yesterdayLoaded: false, reauthStarted: false });
  clearError();
  showSignIn();
  focusHeading($('signin-heading'));
}

/**
 * Every 401: the token expired or was refused. Sign in again straight away, unless we only
 * just signed in (then the server refuses fresh tokens and a redirect would loop).
 */
function onUnauthorized(problem) {
  auth.dropToken();
  if (state.config && !auth.signedInRecently()) {
    if (state.reauthStarted) return;
    state.reauthStarted = true;
    setStatus('Your session has ended. Signing you in again…');
    auth.beginSignIn(state.config).catch((e) => { showSignIn(); showError(e); });
    return;
  }
  showSignIn();
  showError({ title: 'Please sign in', detail: problem.detail });
}

// ---------------------------------------------------------------- registration

function showRegister() {
  stopCountdown();
  $('account').hidden = true;
  showView('view-register');
  $('display-name').focus();
}

async function register(event) {
  event.preventDefault();
  const input = $('display-name');
  const name = input.value.trim();
  if (!name || [...name].length > 40) {
    input.setAttribute('aria-invalid', 'true');
    showError({ title: 'Choose a display name', detail: 'Use 1 to 40 characters.' });
    input.focus();
    return;
  }
  input.removeAttribute('aria-invalid');
  $('register').disabled = true;
  try {
    state.profile = (await api.post('/api/users/me', { displayName: name })).data;
    clearError();
    await showGame({ focus: true });
  } catch (e) {
    if (e.status !== 401) {
      if (e.status === 422) input.setAttribute('aria-invalid', 'true');
      showError(e);
      input.focus();
    }
  } finally {
    $('register').disabled = false;
  }
}

// ---------------------------------------------------------------- the game

async function showGame({ focus = false } = {}) {
  setStatus("Loading today's quiz…");
  let quizReply, history;
  try {
    [quizReply, history] = await Promise.all([
      api.get('/api/quizzes/today'),
      api.get('/api/users/me/attempts?limit=1'),
    ]);
  } catch (e) {
    setStatus('');
    if (e.status !== 401) {
      showView('view-loading');
      showError(e, { label: 'Try again', action: () => start() });
    }
    return;
  }
  setStatus('');
  state.quiz = quizReply.data;
  // The countdown runs on the server's clock: the browser's may be off by minutes.
  state.clockOffset = serverClockOffset(quizReply);
  state.share = null;
  resetYesterday();

  $('who').textContent = `Signed in as ${state.profile.displayName}`;
  $('account').hidden = false;
  renderStats();
  showView('view-game');
  startCountdown();
  loadBoard(state.period);

  const last = history.data.attempts[0];
  if (last && last.date === state.quiz.date) {
    await showResult(loadResult(), last, { focus });
  } else {
    renderQuiz();
    if (focus) focusHeading($('quiz-heading'));
  }
}

function renderQuiz() {
  const { quiz } = state;
  $('view-result').hidden = true;
  $('view-quiz').hidden = false;
  $('quiz-heading').textContent = "Today's quiz";
  $('quiz-date').textContent = formatDay(quiz.date);
  const draft = loadDraft();
  $('questions').replaceChildren(...quiz.questions.map((q, i) =>
    el('fieldset', { class: 'question', id: `question-${i}`, dataset: { testid: `question-${i}` } },
      el('legend', {},
        el('span', { class: 'q-number' }, `Question ${i + 1} of ${quiz.questions.length}`),
        el('span', { class: 'q-text' }, q.text)),
      el('p', { class: 'q-meta' }, `${q.category} · ${q.difficulty}`),
      el('div', { class: 'choices' }, q.choices.map((choice, j) =>
        el('label', { class: 'choice', for: `q${i}-c${j}` },
          el('input', {
            type: 'radio', name: `q${i}`, id: `q${i}-c${j}`, value: j,
            dataset: { testid: `q${i}-c${j}` }, checked: draft[i] === j,
          }),
          el('span', { class: 'choice-letter', 'aria-hidden': 'true' }, LETTERS[j]),
          el('span', { class: 'choice-text' }, choice)))))));
  updateProgress();
}

function chosenAnswers() {
  return state.quiz.questions.map((_, i) => {
    const checked = $('quiz-form').querySelector(`input[name="q${i}"]:checked`);
    return checked ? Number(checked.value) : null;
  });
}

function updateProgress() {
  const answers = chosenAnswers();
  const done = answers.filter((a) => a !== null).length;
  $('quiz-progress').textContent = `${done} of ${answers.length} answered`;
  saveDraft(answers); // survives a re-sign-in redirect
}

async function submitAnswers(event) {
  event.preventDefault();
  clearError();
  const answers = chosenAnswers();
  const missing = answers.indexOf(null);
  if (missing >= 0) {
    const left = answers.filter((a) => a === null).length;
    showError({ title: 'Not finished yet', detail: `Answer question ${missing + 1} first (${left} left).` });
    $('quiz-form').querySelector(`input[name="q${missing}"]`).focus();
    return;
  }
  const button = $('submit');
  button.disabled = true;
  setStatus('Submitting your answers…');
  try {
    const { data } = await api.post(`/api/quizzes/${state.quiz.date}/attempts`, { answers });
    saveResult(data);
    clearDraft();
    setStatus('');
    await showResult(data, data, { focus: true });
    refreshAfterPlay();
  } catch (e) {
    setStatus('');
    if (e.slug === 'already-attempted') {
      // Played in another tab or device: show that result instead.
      await showGame({ focus: true });
      showError(e);
    } else if (e.slug === 'quiz-closed') {
      await showGame({ focus: true });
      showError({ title: 'That quiz has closed', detail: 'A new day has started (UTC), so here is the new quiz.' });
    } else if (e.status === 403) {
      showRegister();
      showError(e);
    } else if (e.status !== 401) {
      showError(e);
    }
  } finally {
    button.disabled = false;
  }
}

/**
 * The result view. `result` is the attempt's 201 answer (correct choices and explanations),
 * kept for this tab; without it (another tab, a new session) only the score and the
 * right/wrong marks of the share text are known, because GET /api/quizzes/today never
 * reveals answers.
 */
async function showResult(result, summary, { focus }) {
  const { quiz } = state;
  $('view-quiz').hidden = true;
  $('view-result').hidden = false;
  $('result-heading').textContent = `Your result for ${formatDay(quiz.date)}`;
  $('score').textContent = `${summary.score} points`;
  $('score-detail').textContent = `${summary.correct} of ${summary.total} correct`;
  $('share-status').textContent = '';
  $('share-fallback').hidden = true;
  $('share-preview').replaceChildren();
  if (focus) focusHeading($('result-heading'));

  // Fetched now so that the Share click can copy at once (clipboard needs the user's gesture).
  try {
    state.share = (await api.get(`/api/users/me/attempts/${quiz.date}/share`)).data;
    $('share-preview').replaceChildren(
      el('span', { 'aria-hidden': 'true' }, state.share.text),
      el('span', { class: 'visually-hidden' }, state.share.plainText));
  } catch (e) {
    if (e.status !== 401) showError(e);
  }
  const marks = state.share ? [...state.share.text].filter((c) => c === '✅' || c === '❌') : [];

  $('result-note').hidden = Boolean(result);
  $('result-note').textContent = result ? '' :
    'Correct answers and explanations appear right after you submit, and again tomorrow under “Yesterday’s answers”.';

  $('results').replaceChildren(...quiz.questions.map((q, i) => {
    const item = result && (result.results.find((r) => r.questionId === q.id) || result.results[i]);
    const right = item ? item.isCorrect : marks[i] === '✅';
    const known = Boolean(item) || marks[i] !== undefined;
    return el('li', { class: `answer ${known ? (right ? 'right' : 'wrong') : ''}`, dataset: { testid: `result-${i}` } },
      el('h3', { class: 'answer-q' }, q.text),
      known ? el('p', { class: 'verdict', dataset: { testid: `verdict-${i}` } },
        el('span', { 'aria-hidden': 'true' }, right ? '✓ ' : '✗ '), right ? 'Right' : 'Wrong') : null,
      item ? el('p', {}, 'Your answer: ', choiceText(q, item.chosenChoice)) : null,
      item && !right ? el('p', {}, 'Correct answer: ', el('strong', {}, choiceText(q, item.correctChoice))) : null,
      item ? el('p', { class: 'explanation', dataset: { testid: `explanation-${i}` } }, item.explanation) : null,
      reportControl(quiz.date, q, `report-${i}`));
  }));
}

function choiceText(q, index) {
  return `${LETTERS[index]}. ${q.choices[index]}`;
}

async function copyShare() {
  const text = state.share && state.share.text;
  const status = $('share-status');
  if (!text) {
    status.textContent = 'The share text is not available yet. Try again in a moment.';
    return;
  }
  try {
    await navigator.clipboard.writeText(text);
    $('share-fallback').hidden = true;
    status.textContent = 'Copied! Paste it anywhere.';
  } catch {
    // No clipboard permission (or an old browser): let the player copy it by hand.
    const area = $('share-text');
    area.value = text;
    $('share-fallback').hidden = false;
    area.focus();
    area.select();
    status.textContent = 'Could not copy automatically. The text below is selected: press Ctrl+C (⌘C on a Mac).';
  }
}

/** Boards and streaks are built from events, so they catch up a moment after the 201. */
async function refreshAfterPlay() {
  const played = state.profile.quizzesPlayed;
  for (let attempt = 0; attempt < 12; attempt++) {
    await new Promise((r) => setTimeout(r, attempt === 0 ? 300 : 1000));
    try {
      const [me, profile] = await Promise.all([
        api.get('/api/leaderboard/me?period=daily'),
        api.get('/api/users/me'),
      ]);
      state.profile = profile.data;
      renderStats();
      if (me.data.rank !== null && profile.data.quizzesPlayed > played) break;
    } catch {
      break; // shown elsewhere if it matters; the boards can be refreshed by their tabs
    }
  }
  loadBoard(state.period);
}

function renderStats() {
  const days = (n) => `${n} ${n === 1 ? 'day' : 'days'}`;
  $('current-streak').textContent = days(state.profile.currentStreak);
  $('best-streak').textContent = days(state.profile.bestStreak);
}

// ---------------------------------------------------------------- countdown

function startCountdown() {
  stopCountdown();
  const closes = Date.parse(state.quiz.closesAt);
  const tick = () => {
    const left = closes - (Date.now() + state.clockOffset);
    if (left <= 0) {
      $('countdown').textContent = 'any moment';
      // Spread the midnight reloads so every open page does not ask at once, and back off
      // if the server still serves the closed quiz (its clock and ours disagree).
      const tries = state.rolloverTries++;
      const delay = Math.min(2 ** tries, 60) * 1000 + Math.random() * 9000;
      state.countdownTimer = setTimeout(() => {
        clearError();
        showGame();
      }, delay);
      return;
    }
    state.rolloverTries = 0;
    $('countdown').textContent = formatDuration(left);
    // Wake just after the next whole second of the remaining time.
    state.countdownTimer = setTimeout(tick, (left % 1000) + 20);
  };
  tick();
}

function stopCountdown() {
  clearTimeout(state.countdownTimer);
}

// ---------------------------------------------------------------- leaderboards

async function loadBoard(period) {
  const seq = ++state.boardSeq;
  let page, me;
  try {
    [page, me] = await Promise.all([
      api.get(`/api/leaderboard?period=${period}&limit=10`),
      api.get(`/api/leaderboard/me?period=${period}`),
    ]);
  } catch (e) {
    if (seq === state.boardSeq && e.status !== 401) showError(e);
    return;
  }
  if (seq !== state.boardSeq) return;
  renderBoard(page.data, me.data);
}

function renderBoard(page, me) {
  const caption = page.period === 'daily' ? `Today, ${formatDay(page.date)}`
    : page.period === 'weekly' ? `Week ${page.week}` : 'All time';
  $('board-caption').textContent = `${caption}: ${page.totalPlayers} ${page.totalPlayers === 1 ? 'player' : 'players'}`;
  $('board-quizzes-col').textContent = page.period === 'daily' ? 'Played' : 'Quizzes';
  $('my-rank').textContent = me.rank === null
    ? 'You are not on this board yet.'
    : `You are #${me.rank} of ${me.totalPlayers} with ${me.score} points.`;

  const row = (entry, mine) => el('tr', {
    class: mine ? 'me' : null,
    dataset: mine ? { testid: 'board-row', me: 'true' } : { testid: 'board-row' },
    'aria-current': mine ? 'true' : null,
  },
  el('td', {}, entry.rank),
  el('td', {}, entry.displayName, mine ? el('span', { class: 'you' }, ' (you)') : null),
  el('td', {}, entry.score),
  el('td', {}, entry.quizzes));

  const rows = page.entries.map((e) => row(e, e.userId === me.userId));
  if (!page.entries.length) {
    rows.push(el('tr', { dataset: { testid: 'board-empty' } },
      el('td', { colspan: 4 }, 'Nobody is on this board yet.')));
  }
  // Ranked but beyond the first page: still show "my rank" under a gap.
  if (me.rank !== null && !page.entries.some((e) => e.userId === me.userId)) {
    rows.push(el('tr', { class: 'gap', 'aria-hidden': 'true' }, el('td', { colspan: 4 }, '⋯')));
    rows.push(row({ rank: me.rank, displayName: state.profile.displayName, score: me.score, quizzes: me.quizzes }, true));
  }
  $('board-rows').replaceChildren(...rows);
}

function selectTab(tab, { focus = false } = {}) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const selected = t === tab;
    t.setAttribute('aria-selected', String(selected));
    t.tabIndex = selected ? 0 : -1;
  }
  $('board-panel').setAttribute('aria-labelledby', tab.id);
  if (focus) tab.focus();
  state.period = tab.dataset.period;
  loadBoard(state.period);
}

/** Arrow keys move between tabs (WAI-ARIA tabs pattern, automatic activation). */
function tabKeys(event) {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const i = tabs.indexOf(event.target);
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  selectTab(tabs[(next + tabs.length) % tabs.length], { focus: true });
}

// ---------------------------------------------------------------- yesterday and reports

function resetYesterday() {
  state.yesterdayLoaded = false;
  $('yesterday').open = false;
  $('yesterday-body').replaceChildren(el('p', {}, 'Loading…'));
}

async function loadYesterday() {
  if (state.yesterdayLoaded || !state.quiz) return;
  state.yesterdayLoaded = true;
  const day = previousDay(state.quiz.date);
  const body = $('yesterday-body');
  let quiz;
  try {
    quiz = (await api.get(`/api/quizzes/${day}`)).data;
  } catch (e) {
    if (e.status === 404) {
      body.replaceChildren(el('p', { dataset: { testid: 'yesterday-none' } }, 'There was no quiz yesterday.'));
    } else {
      state.yesterdayLoaded = false; // try again on the next toggle
      body.replaceChildren(el('p', {}, 'Could not load yesterday’s quiz.'));
      if (e.status !== 401) showError(e);
    }
    return;
  }
  body.replaceChildren(
    el('p', { class: 'meta' }, formatDay(quiz.date)),
    el('ol', { class: 'results' }, quiz.questions.map((q, i) =>
      el('li', { class: 'answer', dataset: { testid: `yesterday-${i}` } },
        el('h3', { class: 'answer-q' }, q.text),
        q.correctChoice !== undefined ? el('p', {}, 'Answer: ', el('strong', {}, choiceText(q, q.correctChoice))) : null,
        q.explanation ? el('p', { class: 'explanation' }, q.explanation) : null,
        reportControl(quiz.date, q, `yreport-${i}`)))));
}

/** A collapsed "report this question" form; its outcome is announced in its own status. */
function reportControl(date, question, idPrefix) {
  const reason = el('textarea', {
    id: `${idPrefix}-reason`, name: 'reason', rows: 3, maxlength: 500, required: true,
    dataset: { testid: `${idPrefix}-reason` },
  });
  const send = el('button', { type: 'submit', dataset: { testid: `${idPrefix}-send` } }, 'Send report');
  const status = el('p', { class: 'report-status', role: 'status', dataset: { testid: `${idPrefix}-status` } });
  const fields = el('fieldset', { class: 'plain' },
    el('label', { for: reason.id }, 'What is wrong or unclear?'), reason, send);
  const form = el('form', { novalidate: true }, fields, status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = reason.value.trim();
    if (!text) {
      status.textContent = 'Please say what is wrong (up to 500 characters).';
      reason.focus();
      return;
    }
    send.disabled = true;
    try {
      await api.post(`/api/quizzes/${date}/questions/${encodeURIComponent(question.id)}/reports`, { reason: text });
      status.textContent = 'Thank you. Your report was sent to the editors.';
      fields.disabled = true;
    } catch (e) {
      if (e.slug === 'already-reported') {
        status.textContent = 'You have already reported this question.';
        fields.disabled = true;
      } else if (e.status !== 401) {
        const p = e instanceof ApiError ? e.problem : {};
        status.textContent = `${p.title || 'Error'}: ${p.detail || e.message}`;
      }
    } finally {
      send.disabled = false;
    }
  });
  return el('details', { class: 'report', dataset: { testid: idPrefix } },
    el('summary', {}, 'Report this question'), form);
}

// ---------------------------------------------------------------- per-tab storage

// Kept in sessionStorage (this tab only, cleared at sign-out): nobody else at this computer
// should see today's answers, and the server stays the source of truth for the score.
const resultKey = () => `qotd.result.${state.profile.userId}.${state.quiz.date}`;
const draftKey = () => `qotd.draft.${state.quiz.date}`;

function saveResult(result) {
  sessionStorage.setItem(resultKey(), JSON.stringify(result));
}

function loadResult() {
  try {
    return JSON.parse(sessionStorage.getItem(resultKey()));
  } catch {
    return null;
  }
}

function saveDraft(answers) {
  sessionStorage.setItem(draftKey(), JSON.stringify(answers));
}

function loadDraft() {
  try {
    return JSON.parse(sessionStorage.getItem(draftKey())) || [];
  } catch {
    return [];
  }
}

function clearDraft() {
  sessionStorage.removeItem(draftKey());
}

// ---------------------------------------------------------------- wiring

function wireControls() {
  $('sign-in').addEventListener('click', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('register-form').addEventListener('submit', register);
  $('quiz-form').addEventListener('submit', submitAnswers);
  $('quiz-form').addEventListener('change', updateProgress);
  $('share').addEventListener('click', copyShare);
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener('click', () => selectTab(tab));
    tab.addEventListener('keydown', tabKeys);
  }
  $('yesterday').addEventListener('toggle', () => { if ($('yesterday').open) loadYesterday(); });
}

boot().catch((e) => showError(e));
