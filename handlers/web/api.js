// A small client for the qotd API (openapi.yaml). Every error becomes an ApiError carrying
// the RFC 9457 problem document the server sent (type, title, status, detail), or one made up
// here for network failures and non-problem answers, so the UI shows one kind of message.

export class ApiError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title);
    this.problem = problem;
    this.status = problem.status;
    // `urn:qotd:problem:already-attempted` -> `already-attempted`
    this.slug = String(problem.type || '').replace(/^urn:qotd:problem:/, '');
  }
}

/**
 * getToken(): the bearer token or null. onUnauthorized(problem): called on every 401 (it may
 * start a new sign-in); the call still rejects with the ApiError.
 */
export function createApi({ getToken, onUnauthorized }) {
  async function request(method, path, body, { anonymous = false, retried = false } = {}) {
    const headers = { accept: 'application/json, application/problem+json' };
    if (!anonymous) {
      const token = getToken();
      if (!token) {
        const problem = { type: 'urn:qotd:problem:unauthorized', title: 'Signed out', status: 401, detail: 'Please sign in again.' };
        onUnauthorized(problem);
        throw new ApiError(problem);
      }
      headers.authorization = `Bearer ${token}`;
    }
    if (body !== undefined) headers['content-type'] = 'application/json';

    const sentAt = Date.now();
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit', // the API reads bearer tokens only, never cookies
        cache: 'no-store',
      });
    } catch {
      throw new ApiError({ title: 'Network error', status: 0, detail: 'The server could not be reached. Check your connection and try again.' });
    }
    const receivedAt = Date.now();

    // 503 means "retry shortly" (Retry-After: 1). Reads are safe to retry once.
    if (res.status === 503 && method === 'GET' && !retried) {
      const wait = Math.min(Number(res.headers.get('retry-after')) || 1, 5) * 1000;
      await new Promise((r) => setTimeout(r, wait));
      return request(method, path, body, { anonymous, retried: true });
    }

    const type = res.headers.get('content-type') || '';
    const isJson = /json/i.test(type);
    const data = isJson ? await res.json().catch(() => null) : null;
    if (!res.ok) {
      const problem = data && data.title
        ? data
        : { title: res.statusText || `HTTP ${res.status}`, status: res.status, detail: `The server answered ${method} ${path} with HTTP ${res.status}.` };
      if (res.status === 401 && !anonymous) onUnauthorized(problem);
      throw new ApiError(problem);
    }
    return { data, status: res.status, headers: res.headers, sentAt, receivedAt };
  }

  return {
    get: (path, opts) => request('GET', path, undefined, opts),
    post: (path, body, opts) => request('POST', path, body, opts),
  };
}

/**
 * Offset (ms) to add to Date.now() to get the server's clock, from a response's `Date`
 * header. The header has one-second resolution and was written somewhere between sending and
 * receiving, so the midpoint of the round trip is the best guess; +500 ms centres the second.
 */
export function serverClockOffset(reply) {
  const header = reply.headers.get('date');
  const server = header ? Date.parse(header) : NaN;
  if (Number.isNaN(server)) return 0;
  return server + 500 - (reply.sentAt + reply.receivedAt) / 2;
}
