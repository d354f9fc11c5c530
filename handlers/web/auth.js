// OpenID Connect sign-in: authorization-code flow with PKCE (S256), for a public client.
//
// The access token lives in sessionStorage only (never a cookie), so the API has no CSRF
// surface and closing the tab ends the session. A token put into sessionStorage under
// TOKEN_KEY by hand (or by a test) is used as-is, which skips sign-in entirely.

export const TOKEN_KEY = 'qotd.accessToken';
const EXPIRES_KEY = 'qotd.accessTokenExpiresAt'; // epoch ms; absent = unknown (rely on 401)
const SIGNED_IN_AT_KEY = 'qotd.signedInAt';     // epoch ms of the last completed sign-in
const PENDING_KEY = 'qotd.oidcPending';         // {state, nonce, verifier, redirectUri}
const PREFIX = 'qotd.';

// Renew a little before the token really expires, so a request never races the expiry.
const EXPIRY_SKEW_MS = 60_000;

let metadataPromise = null;

/** Reads the issuer's discovery document (once per page load). */
export function discover(authority) {
  if (!metadataPromise) {
    // B2C authorities end with a slash, External ID ones do not: accept both.
    const url = authority.replace(/\/+$/, '') + '/.well-known/openid-configuration';
    metadataPromise = fetch(url, { headers: { accept: 'application/json' }, credentials: 'omit' })
      .then(async (r) => {
        if (!r.ok) throw new AuthError('Sign-in is unavailable', `The identity provider's configuration could not be read (HTTP ${r.status}).`);
        const m = await r.json();
        if (!m.authorization_endpoint || !m.token_endpoint) {
          throw new AuthError('Sign-in is unavailable', 'The identity provider does not publish an authorization and a token endpoint.');
        }
        return m;
      })
      .catch((e) => {
        metadataPromise = null; // let a later attempt try again
        if (e instanceof AuthError) throw e;
        throw new AuthError('Sign-in is unavailable', 'The identity provider could not be reached. Try again in a moment.');
      });
  }
  return metadataPromise;
}

export class AuthError extends Error {
  constructor(title, detail) {
    super(detail);
    this.title = title;
    this.detail = detail;
  }
}

/** The stored access token, or null when there is none or it has (nearly) expired. */
export function getToken() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  const expires = Number(sessionStorage.getItem(EXPIRES_KEY) || 0);
  if (expires && Date.now() > expires - EXPIRY_SKEW_MS) {
    dropToken();
    return null;
  }
  return token;
}

export function dropToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(EXPIRES_KEY);
}

/** True right after a sign-in: a 401 then means "misconfigured", not "expired", so no loop. */
export function signedInRecently(windowMs = 60_000) {
  const at = Number(sessionStorage.getItem(SIGNED_IN_AT_KEY) || 0);
  return at > 0 && Date.now() - at < windowMs;
}

function redirectUri(config) {
  return new URL(config.redirectPath || '/', location.origin).href;
}

/** Starts sign-in: remembers state, nonce and the PKCE verifier, then leaves for the issuer. */
export async function beginSignIn(config) {
  const meta = await discover(config.authority);
  const verifier = randomString(32);
  const pending = {
    state: randomString(16),
    nonce: randomString(16),
    verifier,
    redirectUri: redirectUri(config),
  };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(meta.authorization_endpoint);
  const q = url.searchParams;
  q.set('response_type', 'code');
  q.set('client_id', config.clientId);
  q.set('redirect_uri', pending.redirectUri);
  q.set('scope', config.scope);
  q.set('state', pending.state);
  q.set('nonce', pending.nonce);
  q.set('code_challenge', await s256(verifier));
  q.set('code_challenge_method', 'S256');
  location.assign(url.href);
}

/** True when the current URL is the issuer sending the browser back to us. */
export function isCallback() {
  const q = new URLSearchParams(location.search);
  return q.has('state') && (q.has('code') || q.has('error'));
}

/**
 * Finishes sign-in on the redirect back: checks state, exchanges the code with the verifier,
 * checks the ID token's nonce, stores the access token and cleans the URL.
 */
export async function completeSignIn(config) {
  const q = new URLSearchParams(location.search);
  const pendingRaw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY); // one use only, whatever happens next
  // Drop code and state from the address bar and history before anything can fail.
  history.replaceState(null, '', config.redirectPath || '/');

  const pending = pendingRaw ? JSON.parse(pendingRaw) : null;
  if (!pending || q.get('state') !== pending.state) {
    throw new AuthError('Sign-in failed', 'The sign-in response did not match a sign-in started here (state mismatch). Please sign in again.');
  }
  if (q.has('error')) {
    const why = q.get('error_description') || q.get('error');
    throw new AuthError('Sign-in was not completed', why);
  }

  const meta = await discover(config.authority);
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code: q.get('code'),
    redirect_uri: pending.redirectUri,
    client_id: config.clientId,
    code_verifier: pending.verifier,
  });
  let res;
  try {
    res = await fetch(meta.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body,
      credentials: 'omit',
    });
  } catch {
    throw new AuthError('Sign-in failed', 'The token endpoint could not be reached.');
  }
  const tokens = await res.json().catch(() => ({}));
  if (!res.ok || !tokens.access_token) {
    const why = tokens.error_description || tokens.error || `HTTP ${res.status}`;
    throw new AuthError('Sign-in failed', `The code could not be exchanged for a token: ${why}`);
  }
  if (tokens.token_type && tokens.token_type.toLowerCase() !== 'bearer') {
    throw new AuthError('Sign-in failed', `Unexpected token type ${tokens.token_type}.`);
  }
  // The ID token came straight from the token endpoint over our own connection, so its
  // claims can be trusted without checking the signature (OIDC Core 3.1.3.7); the nonce
  // binds it to this sign-in.
  if (/(^|\s)openid(\s|$)/.test(config.scope)) {
    const claims = tokens.id_token ? jwtClaims(tokens.id_token) : null;
    if (!claims || claims.nonce !== pending.nonce) {
      throw new AuthError('Sign-in failed', 'The ID token is missing or its nonce does not match this sign-in.');
    }
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(config.clientId) || (meta.issuer && claims.iss !== meta.issuer)) {
      throw new AuthError('Sign-in failed', 'The ID token was issued for another application or by another issuer.');
    }
  }
  sessionStorage.setItem(TOKEN_KEY, tokens.access_token);
  const ttl = Number(tokens.expires_in);
  if (ttl > 0) sessionStorage.setItem(EXPIRES_KEY, String(Date.now() + ttl * 1000));
  else sessionStorage.removeItem(EXPIRES_KEY);
  sessionStorage.setItem(SIGNED_IN_AT_KEY, String(Date.now()));
}

/** Forgets everything this page stored; signs out at the issuer too when it supports that. */
export async function signOut(config) {
  for (const store of [sessionStorage, localStorage]) {
    for (const key of Object.keys(store)) if (key.startsWith(PREFIX)) store.removeItem(key);
  }
  if (!config) return;
  const meta = await discover(config.authority).catch(() => null);
  if (meta && meta.end_session_endpoint) {
    // Without this, the issuer's own session would sign the player straight back in.
    const url = new URL(meta.end_session_endpoint);
    url.searchParams.set('client_id', config.clientId);
    url.searchParams.set('post_logout_redirect_uri', redirectUri(config));
    location.assign(url.href);
  }
}

function jwtClaims(jwt) {
  try {
    return JSON.parse(new TextDecoder().decode(base64UrlDecode(jwt.split('.')[1])));
  } catch {
    return null;
  }
}

function randomString(bytes) {
  return base64Url(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function s256(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return base64Url(new Uint8Array(digest));
}

function base64Url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function base64UrlDecode(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '=');
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}
