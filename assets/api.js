// Every call to the livecam API goes through here: it adds `Authorization: Bearer <key>`,
// turns the server's {"error": {"code", "message"}} into an ApiError, and reports a 401
// (the key was revoked or is wrong) to the app, which returns to the sign-in form.

import { getKey } from './auth.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

let unauthorized = () => {};

/** `handler(error)` runs on every 401 answer to a signed-in call. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/**
 * fetch() with the admin key. Options: method, body (sent as JSON), signal,
 * key (defaults to the signed-in key), accept, allow (statuses to treat as ok, such as
 * 503 from /api/health, which still has a body). Resolves to the Response when ok.
 */
export async function request(path, { method = 'GET', body, signal, key, accept, allow = [] } = {}) {
  const adminKey = key ?? getKey();
  const headers = { Accept: accept ?? 'application/json' };
  if (adminKey) headers.Authorization = `Bearer ${adminKey}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      // The session cookie of a password sign-in (HttpOnly, SameSite=Strict); an admin
      // key, when there is one, is sent as the bearer and takes precedence.
      credentials: 'same-origin',
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network_error', 'The server cannot be reached.');
  }
  if (!response.ok && !allow.includes(response.status)) {
    let code = `http_${response.status}`;
    let message = `${response.status} ${response.statusText}`.trim();
    try {
      const data = await response.json();
      if (data && data.error) {
        code = String(data.error.code);
        message = String(data.error.message);
      }
    } catch {
      // Not our JSON error shape (a proxy's page): keep the status line.
    }
    const error = new ApiError(response.status, code, message);
    // `key` given explicitly means the sign-in form is checking a key: it shows the error.
    if (response.status === 401 && key === undefined) unauthorized(error);
    throw error;
  }
  return response;
}

export async function getJson(path, options = {}) {
  return (await request(path, options)).json();
}

export async function postJson(path, body, options = {}) {
  return (await request(path, { ...options, method: 'POST', body })).json();
}

/** A Blob (a JPEG) fetched with the admin key, for <img src=blob:…> or a download. */
export async function getBlob(path, options = {}) {
  return (await request(path, { accept: 'image/jpeg', ...options })).blob();
}

/** "/api/cameras/<id>" + suffix, with the id escaped. */
export function cameraPath(cameraId, suffix = '') {
  return `/api/cameras/${encodeURIComponent(cameraId)}${suffix}`;
}
