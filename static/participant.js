// meilab participant page: consent -> instructions -> practice -> main trials -> debrief -> completion.
//
// Dependency-free ES module, no build step. It talks to the JSON API under /api/v1 (DESIGN.md 2.2).
// Every answer goes through a localStorage outbox before it is sent and leaves it only once the server
// has acknowledged it (200, or 409 when the server already holds a different answer), so a reload, a
// crash or a lost connection neither loses nor duplicates an answer: the server is idempotent on the
// client-made response_id.

const API = '/api/v1';
const FEEDBACK_MS = 600;
const REDIRECT_SECONDS = 5;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30000;
const RETRY_AFTER_MAX_MS = 120000;
const IMAGE_ATTEMPTS = 4;

const app = document.getElementById('app');
const $ = (testid, root = app) => root.querySelector(`[data-testid="${testid}"]`);

const config = {
  slug: app.dataset.slug,
  source: app.dataset.source || 'link',
  params: parseObject(app.dataset.params),
  externalId: app.dataset.externalId || null,
  feedback: app.dataset.feedback === 'true',
};

const storageKeys = {
  // The session token is the participant's only proof of their session (an external id is no secret):
  // kept per participant id, so a reload or a later visit in this browser resumes it.
  token: config.externalId ? `meilab:${config.slug}:token:${config.externalId}` : `meilab:${config.slug}:token`,
  outbox: `meilab:${config.slug}:outbox`,
  // The completion this browser saw, so a reload of the last page still shows the code.
  completion: `meilab:${config.slug}:completion`,
};

// ---------------------------------------------------------------------------------------------
// Small utilities

function parseObject(text) {
  try {
    const value = JSON.parse(text || '{}');
    return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}

/** localStorage, or an in-memory stand-in when storage is unavailable (blocked cookies, private mode). */
const storage = (() => {
  const memory = new Map();
  let local = null;
  try {
    local = window.localStorage;
    const probe = `${storageKeys.token}:probe`;
    local.setItem(probe, '1');
    local.removeItem(probe);
  } catch {
    local = null;
  }
  return {
    get(key) {
      try {
        return local ? local.getItem(key) : (memory.get(key) ?? null);
      } catch {
        return memory.get(key) ?? null;
      }
    },
    set(key, value) {
      memory.set(key, value);
      try {
        local?.setItem(key, value);
      } catch {
        /* quota or blocked: the in-memory copy still serves this page */
      }
    },
    remove(key) {
      memory.delete(key);
      try {
        local?.removeItem(key);
      } catch {
        /* ignore */
      }
    },
  };
})();

function uuidv4() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // crypto.randomUUID needs a secure context; getRandomValues does not.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// Sleeps that a returning connection ('online') cuts short.
const wakers = new Set();
function sleep(ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      wakers.delete(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    wakers.add(done);
  });
}
window.addEventListener('online', () => [...wakers].forEach((wake) => wake()));

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

function backoffMs(attempt, retryAfterMs) {
  if (retryAfterMs != null) return Math.min(retryAfterMs, RETRY_AFTER_MAX_MS);
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}

function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

// ---------------------------------------------------------------------------------------------
// Status line (aria-live) and errors

const statusLine = $('status');
let connectionTrouble = false;

function setStatus(text) {
  if (statusLine.textContent !== text) statusLine.textContent = text;
}

function reportRetry(attempt, waitMs) {
  // One failure is usually a blip; say something from the second one on.
  if (attempt < 1) return;
  connectionTrouble = true;
  const seconds = Math.max(1, Math.round(waitMs / 1000));
  setStatus(`Connection problem. Retrying in ${seconds} s; your answers are kept.`);
}

function reportRecovered() {
  if (connectionTrouble) {
    connectionTrouble = false;
    const text = 'Connected again.';
    setStatus(text);
    setTimeout(() => statusLine.textContent === text && setStatus(''), 3000);
  }
}

/** An answer from the server that the page cannot continue from. */
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `The server answered ${status}.`);
    this.status = status;
    this.code = body && body.error;
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP: one request, and a request that retries network errors, 408/429 and 5xx with backoff

async function request(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  // globalThis.fetch, looked up on every call (tests replace it to hold back acknowledgements).
  const response = await globalThis.fetch(`${API}${path}`, init);
  let data = null;
  if (response.status !== 204) {
    const text = await response.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
  }
  return { status: response.status, data, retryAfterMs: parseRetryAfter(response.headers.get('Retry-After')) };
}

const retryable = (status) => status === 408 || status === 429 || status >= 500;

async function call(method, path, body) {
  for (let attempt = 0; ; attempt += 1) {
    let result = null;
    try {
      result = await request(method, path, body);
    } catch {
      result = null; // network error, or the server went away mid-response
    }
    if (result && !retryable(result.status)) {
      reportRecovered();
      return result;
    }
    const wait = backoffMs(attempt, result ? result.retryAfterMs : null);
    reportRetry(attempt, wait);
    await sleep(wait);
  }
}

// ---------------------------------------------------------------------------------------------
// The outbox: answers wait in localStorage until the server acknowledges them

const outbox = {
  load() {
    const value = parseArray(storage.get(storageKeys.outbox));
    return value.filter((e) => e && typeof e.token === 'string' && e.body && typeof e.body.response_id === 'string');
  },
  save(entries) {
    if (entries.length) storage.set(storageKeys.outbox, JSON.stringify(entries));
    else storage.remove(storageKeys.outbox);
    updateSaving();
  },
  push(entry) {
    const entries = this.load();
    if (!entries.some((e) => e.body.response_id === entry.body.response_id)) entries.push(entry);
    this.save(entries);
  },
  remove(responseId) {
    this.save(this.load().filter((e) => e.body.response_id !== responseId));
  },
};

function parseArray(text) {
  try {
    const value = JSON.parse(text || '[]');
    return Array.isArray(value) ? value : [];
  } catch {
    return [];
  }
}

const savingIndicator = $('saving');
function updateSaving() {
  savingIndicator.hidden = outbox.load().length === 0;
}

/** Replies of acknowledged answers, by response_id (null when the server refused the answer with 409). */
const replies = new Map();
let flushing = null;

/** Sends every queued answer, oldest first, until the outbox is empty. One flush runs at a time. */
function flushOutbox() {
  if (!flushing) {
    flushing = (async () => {
      for (;;) {
        const [entry] = outbox.load();
        if (!entry) break;
        const path = `/sessions/${encodeURIComponent(entry.token)}/responses`;
        const result = await call('POST', path, entry.body);
        if (result.status === 200 || result.status === 201) {
          replies.set(entry.body.response_id, result.data || {});
        } else if (result.data && result.data.error === 'study_not_active') {
          // The study was paused: keep the answer for when it opens again.
          throw new ApiError(result.status, result.data);
        } else {
          // 409: a different answer is already stored for this position, or the position is out of order.
          // Any other 4xx means the answer can never be accepted (unknown token, finished session):
          // keeping it would block every later answer, so it is dropped like a 409.
          replies.set(entry.body.response_id, null);
        }
        outbox.remove(entry.body.response_id);
      }
    })().finally(() => {
      flushing = null;
    });
  }
  return flushing;
}

/** Queues an answer (already pushed to the outbox) and waits for its acknowledgement. */
async function deliver(responseId) {
  while (!replies.has(responseId)) {
    await flushOutbox();
    if (!replies.has(responseId) && !outbox.load().some((e) => e.body.response_id === responseId)) break;
  }
  const reply = replies.get(responseId) ?? null;
  replies.delete(responseId);
  return reply;
}

// ---------------------------------------------------------------------------------------------
// Views

const views = [...app.querySelectorAll('[data-view]')];

function show(name) {
  for (const view of views) view.hidden = view.dataset.view !== name;
  app.dataset.state = name;
  const view = views.find((v) => v.dataset.view === name);
  const heading = view && view.querySelector('h1');
  if (heading && name !== 'trial') {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
}

function showError(error) {
  console.error(error);
  if (error instanceof ApiError && error.code === 'study_not_active') return show('not-open');
  if (error instanceof ApiError && error.code === 'already_started') {
    // This browser finished the session itself: show its code again rather than a refusal.
    const seen = parseObject(storage.get(storageKeys.completion));
    if (config.externalId && seen.external_id === config.externalId && seen.completion_code) {
      return showComplete(seen, { redirect: false });
    }
    return show('already-started');
  }
  $('error-text').textContent =
    error instanceof ApiError ? error.message : 'The page could not continue. Please try again.';
  show('error');
}

/** Resolves on the next click of a button. */
function clicked(button) {
  button.disabled = false;
  return new Promise((resolve) => {
    button.addEventListener(
      'click',
      () => {
        button.disabled = true;
        resolve();
      },
      { once: true },
    );
  });
}

function expectOk(result) {
  if (result.status >= 200 && result.status < 300) return result.data || {};
  throw new ApiError(result.status, result.data);
}

// ---------------------------------------------------------------------------------------------
// Session

const sessionPath = (token) => `/sessions/${encodeURIComponent(token)}`;

async function createSession() {
  const body = { source: config.source, params: config.params };
  if (config.externalId) body.external_id = config.externalId;
  const result = await call('POST', `/studies/${encodeURIComponent(config.slug)}/sessions`, body);
  const data = expectOk(result);
  storage.set(storageKeys.token, data.token);
  return data.token;
}

/**
 * The session token this browser kept for this participant id, else a new session. The server never
 * hands out an existing session for an id alone: another browser with the same id is refused.
 */
async function openSession() {
  const kept = storage.get(storageKeys.token);
  if (kept) {
    const result = await call('GET', sessionPath(kept));
    if (result.status === 200) return kept;
    if (result.status !== 404) throw new ApiError(result.status, result.data);
    storage.remove(storageKeys.token);
  }
  return createSession();
}

async function fetchSession(token) {
  return expectOk(await call('GET', sessionPath(token)));
}

// ---------------------------------------------------------------------------------------------
// Stages

async function runConsent(token) {
  show('consent');
  await clicked($('consent-agree'));
  return advance(token, 'consent');
}

async function runInstructions(token) {
  show('instructions');
  await clicked($('instructions-start'));
  return advance(token, 'instructions');
}

/** POSTs a stage's confirmation; when the session has moved on meanwhile (another tab), follows it. */
async function advance(token, step) {
  const result = await call('POST', `${sessionPath(token)}/${step}`, {});
  if (result.status === 200 || result.status === 201) return result.data.stage;
  if (result.status === 409 && result.data && result.data.error !== 'study_not_active') {
    const session = await fetchSession(token);
    if (session.stage !== step) return session.stage;
  }
  throw new ApiError(result.status, result.data);
}

async function runDebrief(token) {
  show('debrief');
  const form = $('debrief-form');
  const button = $('debrief-finish');
  const textarea = $('debrief-feedback');
  button.disabled = false;
  await new Promise((resolve) => {
    form.addEventListener(
      'submit',
      (event) => {
        event.preventDefault();
        resolve();
      },
      { once: true },
    );
  });
  button.disabled = true;
  textarea.readOnly = true;
  const feedback = textarea.value.trim();
  const result = await call('POST', `${sessionPath(token)}/finish`, feedback ? { feedback } : {});
  if (result.status === 409) {
    const session = await fetchSession(token);
    if (session.stage !== 'debrief') return session.stage;
  }
  showComplete(expectOk(result));
  return null;
}

async function runComplete(token) {
  // At stage complete, finish answers again with the same code and redirect.
  const result = await call('POST', `${sessionPath(token)}/finish`, {});
  if (result.status === 200) {
    showComplete(result.data);
  } else {
    const session = await fetchSession(token);
    showComplete({ completion_code: session.completion_code, redirect_url: null });
  }
  return null;
}

function showComplete({ completion_code: code, redirect_url: url }, { redirect = true } = {}) {
  storage.set(
    storageKeys.completion,
    JSON.stringify({ external_id: config.externalId, completion_code: code, redirect_url: url ?? null }),
  );
  $('completion-code').textContent = code || '';
  show('complete');
  let target = null;
  try {
    target = url ? new URL(url, window.location.href) : null;
  } catch {
    target = null;
  }
  if (!target || !/^https?:$/.test(target.protocol)) return;
  const box = $('redirect');
  const link = $('redirect-link');
  const countdown = $('redirect-countdown');
  link.href = target.href;
  box.hidden = false;
  if (!redirect) {
    $('redirect-countdown').parentElement.hidden = true;
    return;
  }
  $('complete-note').hidden = true;
  let left = REDIRECT_SECONDS;
  countdown.textContent = String(left);
  const timer = setInterval(() => {
    left -= 1;
    countdown.textContent = String(Math.max(0, left));
    if (left <= 0) {
      clearInterval(timer);
      window.location.assign(target.href);
    }
  }, 1000);
}

// ---------------------------------------------------------------------------------------------
// Trials

const trialView = $('trial');
const answerButtons = [...trialView.querySelectorAll('button.answer')];
const queryBoxes = [$('query-0'), $('query-1')];
const progress = $('progress');
const progressFill = progress.querySelector('.progress-fill');
const progressLabel = $('progress-label');
const feedbackLine = $('feedback');

const trial = {
  state: 'idle', // idle | loading | locked | ready | saving | feedback
  shownAt: 0,
  onAnswer: null,
};

function setTrialState(state) {
  trial.state = state;
  trialView.dataset.state = state;
  const enabled = state === 'ready';
  for (const button of answerButtons) button.disabled = !enabled;
  trialView.setAttribute('aria-busy', state === 'loading' ? 'true' : 'false');
}

function loadImage(url, alt) {
  const attempt = async (n) => {
    const img = new Image();
    img.alt = alt;
    img.draggable = false;
    img.decoding = 'async';
    img.src = url;
    try {
      await img.decode();
      return img;
    } catch (error) {
      if (n + 1 >= IMAGE_ATTEMPTS) throw new Error(`An image could not be loaded (${url}).`);
      await sleep(backoffMs(n, null));
      return attempt(n + 1);
    }
  };
  return attempt(0);
}

function fillGrid(figure, images, caption) {
  figure.querySelector('figcaption').textContent = caption;
  figure.querySelector('.ref-grid').replaceChildren(...images);
}

function setProgress(data) {
  if (data.kind === 'practice') {
    progress.dataset.kind = 'practice';
    progress.setAttribute('aria-valuemax', '1');
    progress.setAttribute('aria-valuenow', '0');
    progress.setAttribute('aria-valuetext', 'Practice');
    progressFill.style.width = '0%';
    progressLabel.textContent = 'Practice';
    return;
  }
  const total = Math.max(0, Number(data.total) || 0);
  const answered = Math.min(total, Math.max(0, Number(data.answered) || 0));
  progress.dataset.kind = 'main';
  progress.setAttribute('aria-valuemax', String(total));
  progress.setAttribute('aria-valuenow', String(answered));
  progress.setAttribute('aria-valuetext', `${answered} of ${total} trials done`);
  progressFill.style.width = total ? `${(100 * answered) / total}%` : '0%';
  progressLabel.textContent = `${answered} / ${total}`;
}

/** Preloads and decodes every image of a trial, then shows it; resolves when it is visible. */
async function presentTrial(data, token) {
  setTrialState('loading');
  trialView.dataset.kind = data.kind;
  trialView.dataset.position = String(data.position);
  const maxSide = data.max_side === 'left' ? 'left' : 'right';
  const minSide = maxSide === 'left' ? 'right' : 'left';

  // Keep the previous images off screen while the next ones load; say so only if it takes a while.
  const slow = setTimeout(() => setStatus('Loading the next trial…'), 400);
  let images;
  try {
    images = await Promise.all([
      Promise.all(data.max_refs.map((u, i) => loadImage(u, `Example ${i + 1} of ${data.max_refs.length} on the ${maxSide}`))),
      Promise.all(data.min_refs.map((u, i) => loadImage(u, `Example ${i + 1} of ${data.min_refs.length} on the ${minSide}`))),
      Promise.all(data.queries.map((u, i) => loadImage(u, i === 0 ? 'Centre image, top' : 'Centre image, bottom'))),
    ]);
  } finally {
    clearTimeout(slow);
  }
  const [maxImages, minImages, queryImages] = images;
  if (statusLine.textContent === 'Loading the next trial…') setStatus('');

  fillGrid($(`refs-${maxSide}`, trialView), maxImages, 'Examples to match');
  fillGrid($(`refs-${minSide}`, trialView), minImages, 'Other examples');
  queryImages.forEach((img, i) => queryBoxes[i].replaceChildren(img));
  $('question').textContent = `Which image in the centre matches the examples on the ${maxSide} better?`;
  setProgress(data);
  feedbackLine.textContent = '';
  for (const box of queryBoxes) box.classList.remove('flash-correct', 'flash-wrong');
  for (const button of answerButtons) button.classList.remove('chosen');

  trial.token = token;
  trial.position = data.position;
  // Visible from here on, buttons still locked. Two frames: the first callback runs before the
  // paint that shows the images, the second after it; reaction times count from then.
  trialView.classList.remove('is-blank');
  setTrialState('locked');
  await nextFrame();
  await nextFrame();
  trial.shownAt = performance.now();
  const lockMs = Math.max(0, Number(data.lock_ms) || 0);
  const unlockAt = trial.shownAt + lockMs;
  await new Promise((resolve) => {
    const check = () => {
      const left = unlockAt - performance.now();
      if (left <= 0) resolve();
      else setTimeout(check, left);
    };
    check();
  });
  setTrialState('ready');
}

/** Resolves with the outbox entry of the participant's answer (pushed to the outbox synchronously). */
function awaitAnswer() {
  return new Promise((resolve) => {
    trial.onAnswer = (button) => {
      if (trial.state !== 'ready') return;
      const rt = Math.round(performance.now() - trial.shownAt);
      setTrialState('saving');
      button.classList.add('chosen');
      trial.onAnswer = null;
      const entry = {
        token: trial.token,
        body: {
          response_id: uuidv4(),
          position: trial.position,
          chosen: Number(button.dataset.chosen),
          confidence: Number(button.dataset.confidence),
          rt_ms: Math.max(0, rt),
          client_ts: new Date().toISOString(),
        },
      };
      outbox.push(entry);
      resolve(entry);
    };
  });
}

for (const button of answerButtons) {
  button.addEventListener('click', () => trial.onAnswer && trial.onAnswer(button));
}

document.addEventListener('keydown', (event) => {
  if (event.repeat || event.altKey || event.ctrlKey || event.metaKey) return;
  if (app.dataset.state !== 'trial' || !trial.onAnswer || trial.state !== 'ready') return;
  const button = answerButtons.find((b) => b.dataset.key === event.key);
  if (!button) return;
  event.preventDefault();
  trial.onAnswer(button);
});

/** Green / red on the chosen image. data-result and data-position stay until the next feedback. */
async function flash(correct, chosen, position) {
  setTrialState('feedback');
  const box = queryBoxes[chosen];
  box.classList.add(correct ? 'flash-correct' : 'flash-wrong');
  feedbackLine.textContent = correct ? 'Correct' : 'Not correct';
  feedbackLine.dataset.result = correct ? 'correct' : 'wrong';
  feedbackLine.dataset.position = String(position);
  await sleep(FEEDBACK_MS);
  box.classList.remove('flash-correct', 'flash-wrong');
  feedbackLine.textContent = '';
}

async function showRoundMessage(round, stage) {
  const passed = Boolean(round.all_correct);
  let title;
  let text;
  if (stage === 'practice') {
    title = 'Let’s practise once more';
    text =
      'Not all of your practice answers were right. Please read the question again: choose the centre ' +
      'image that matches the examples captioned “Examples to match” better. The practice trials repeat now.';
  } else if (passed) {
    title = 'Practice complete';
    text = 'All of your practice answers were right. The main part starts now.';
  } else {
    title = 'Practice complete';
    text = 'Not all of your practice answers were right, but the practice is over. The main part starts now.';
  }
  if (stage !== 'practice') {
    text += config.feedback
      ? ' You will keep seeing whether each answer was right.'
      : ' From here on you will not see whether your answers were right.';
  }
  $('round-title').textContent = title;
  $('round-text').textContent = text;
  $('round').dataset.result = passed ? 'all-correct' : 'not-all-correct';
  show('round');
  await clicked($('round-continue'));
  showBlankTrial();
}

/** The trial page without images, while the next trial loads. */
function showBlankTrial() {
  trialView.classList.add('is-blank');
  setTrialState('loading');
  if (app.dataset.state !== 'trial') show('trial');
}

/** Runs practice and main trials until the session leaves them; returns the next stage. */
async function runTrials(token, pendingReply) {
  if (pendingReply && pendingReply.practice_round) {
    await showRoundMessage(pendingReply.practice_round, pendingReply.stage);
  }
  showBlankTrial();
  let emptyRounds = 0;
  for (;;) {
    const result = await call('GET', `${sessionPath(token)}/trials/next`);
    if (result.status === 204) {
      const session = await fetchSession(token);
      if (session.stage !== 'practice' && session.stage !== 'trials') return session.stage;
      emptyRounds += 1;
      if (emptyRounds > 3) throw new Error('No trial is left, but the session is not finished.');
      await sleep(backoffMs(emptyRounds, null));
      continue;
    }
    const data = expectOk(result);
    emptyRounds = 0;

    await presentTrial(data, token);
    const entry = await awaitAnswer();
    const reply = await deliver(entry.body.response_id);

    if (reply) {
      if (reply.correct === true || reply.correct === false) await flash(reply.correct, entry.body.chosen, entry.body.position);
      if (reply.practice_round) await showRoundMessage(reply.practice_round, reply.stage);
      if (reply.stage && reply.stage !== 'practice' && reply.stage !== 'trials') return reply.stage;
    }
    showBlankTrial();
  }
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  app.querySelector('[data-action="reload"]').addEventListener('click', () => window.location.reload());
  updateSaving();

  const token = await openSession();

  // Answers left over from an earlier visit go first, so the next trial is really the next one.
  const pending = outbox.load().filter((e) => e.token === token).map((e) => e.body.response_id);
  await flushOutbox();
  const lastReply = pending.length ? (replies.get(pending[pending.length - 1]) ?? null) : null;
  replies.clear();

  let stage = (await fetchSession(token)).stage;
  let pendingReply = lastReply;
  while (stage) {
    switch (stage) {
      case 'consent':
        stage = await runConsent(token);
        break;
      case 'instructions':
        stage = await runInstructions(token);
        break;
      case 'practice':
      case 'trials':
        stage = await runTrials(token, pendingReply);
        pendingReply = null;
        break;
      case 'debrief':
        stage = await runDebrief(token);
        break;
      case 'complete':
        stage = await runComplete(token);
        break;
      default:
        throw new Error(`Unknown stage ${stage}.`);
    }
  }
}

main().catch(showError);
