// DOM helpers. Everything from the server goes in as text (textContent), never as HTML, and
// nothing sets inline styles: the Content-Security-Policy forbids them, and visibility is the
// `hidden` attribute.

export const $ = (id) => document.getElementById(id);

/** el('p', {class: 'x', dataset: {testid: 'y'}}, 'text', child, ...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'text') node.textContent = value;
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const VIEWS = ['view-loading', 'view-signin', 'view-register', 'view-game'];

/** Shows one top-level view and hides the others. */
export function showView(id) {
  for (const v of VIEWS) $(v).hidden = v !== id;
}

/**
 * Moves focus to a heading (tabindex=-1) so keyboard and screen-reader users land there.
 * The scroll is instant: no motion to reduce, and nothing moves under a pointer or a test.
 */
export function focusHeading(node) {
  node.focus({ preventScroll: true });
  node.scrollIntoView({ block: 'start' });
}

/**
 * Shows a problem document (or any error) readably in the assertive live region, with an
 * optional {label, action} button such as "Try again".
 */
export function showError(err, retry) {
  const p = err && err.problem ? err.problem : err || {};
  const title = p.title || 'Something went wrong';
  const detail = p.detail || (err && err.message) || '';
  const box = $('error');
  box.replaceChildren(...[
    el('p', { class: 'error-title', dataset: { testid: 'error-title' } }, title),
    detail && el('p', { class: 'error-detail', dataset: { testid: 'error-detail' } }, detail),
    retry && el('button', { type: 'button', dataset: { testid: 'error-retry' }, on: { click: () => { clearError(); retry.action(); } } }, retry.label),
    el('button', { type: 'button', class: 'link-button', on: { click: clearError } }, 'Dismiss'),
  ].filter(Boolean));
}

export function clearError() {
  $('error').replaceChildren();
}

export function setStatus(text) {
  $('status').textContent = text || '';
}

/** 3725 s -> "01:02:05" */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(Math.floor(total / 3600))}:${pad(Math.floor(total / 60) % 60)}:${pad(total % 60)}`;
}

/** "2026-11-27" -> "Friday 27 November 2026" (the quiz day is a UTC date). */
export function formatDay(date) {
  return new Date(`${date}T00:00:00Z`).toLocaleDateString(undefined, {
    weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC',
  });
}

/** The UTC day before `date` (YYYY-MM-DD). */
export function previousDay(date) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}

export const LETTERS = ['A', 'B', 'C', 'D'];
