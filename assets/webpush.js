// This browser's side of Web Push: can it receive notifications at all, the service
// worker (/sw.js, which shows them), and its PushSubscription (made with the server's
// VAPID key). Every failure becomes a PushProblem whose message says what to do.

import { getJson } from './api.js';

/** How long PushManager.subscribe() may take before the push service counts as unreachable. */
export const SUBSCRIBE_TIMEOUT_MS = 15000;

export class PushProblem extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'PushProblem';
    this.code = code;
  }
}

/** null when this browser can do Web Push here, else a PushProblem saying why not. */
export function pushSupport() {
  if (!window.isSecureContext) {
    return new PushProblem(
      'insecure',
      'Notifications need the dashboard over HTTPS (or on localhost). ' +
        'Open it through its HTTPS address.',
    );
  }
  if (!('serviceWorker' in navigator) || !('Notification' in window)) {
    return new PushProblem('unsupported', 'This browser cannot show notifications from a website.');
  }
  if (!('PushManager' in window)) {
    return new PushProblem(
      'unsupported',
      'This browser cannot receive push notifications. On an iPhone or iPad, add the dashboard ' +
        'to the Home Screen first (Share → Add to Home Screen) and open it from there.',
    );
  }
  return null;
}

/** "default", "granted" or "denied" ("unsupported" without the Notification API). */
export function permissionState() {
  return 'Notification' in window ? Notification.permission : 'unsupported';
}

/** The service worker's registration if there is one (does not register). */
export async function existingRegistration() {
  if (pushSupport()) return null;
  try {
    return (await navigator.serviceWorker.getRegistration('/')) ?? null;
  } catch {
    return null;
  }
}

/** This browser's current PushSubscription, or null. */
export async function currentSubscription() {
  const registration = await existingRegistration();
  if (!registration || !registration.pushManager) return null;
  try {
    return await registration.pushManager.getSubscription();
  } catch {
    return null;
  }
}

/** The VAPID key (base64url) as the bytes PushManager.subscribe wants. */
export function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, '='));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function sameKey(buffer, bytes) {
  if (!buffer) return false;
  const a = new Uint8Array(buffer);
  return a.length === bytes.length && a.every((v, i) => v === bytes[i]);
}

/**
 * Asks for permission, registers /sw.js and subscribes with the server's VAPID key.
 * Resolves to the PushSubscription; rejects with a PushProblem.
 */
export async function subscribePush() {
  const unsupported = pushSupport();
  if (unsupported) throw unsupported;
  let permission = Notification.permission;
  if (permission === 'default') permission = await Notification.requestPermission();
  if (permission === 'denied') {
    throw new PushProblem(
      'denied',
      'Notifications are blocked for this site. Allow them in the browser’s site settings ' +
        '(the icon left of the address), then press the button again.',
    );
  }
  if (permission !== 'granted') {
    throw new PushProblem(
      'dismissed',
      'Notifications were not allowed. Press the button again and choose Allow.',
    );
  }
  let registration;
  try {
    await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    registration = await navigator.serviceWorker.ready;
  } catch (err) {
    const detail = err && err.message ? err.message : String(err);
    throw new PushProblem('worker', `The service worker could not be installed: ${detail}`);
  }
  const { key } = await getJson('/api/push/vapid-public-key');
  const serverKey = keyBytes(key);
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !sameKey(subscription.options.applicationServerKey, serverKey)) {
    // Made for another server key (the server's key changed): it would never deliver.
    await subscription.unsubscribe();
    subscription = null;
  }
  if (subscription) return subscription;
  let timer = 0;
  try {
    // A browser that cannot reach its push service may never answer (Chromium without
    // network or without a push service hangs here): give up after a while.
    const noAnswer = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${SUBSCRIBE_TIMEOUT_MS / 1000} s`)),
        SUBSCRIBE_TIMEOUT_MS,
      );
    });
    return await Promise.race([
      registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: serverKey }),
      noAnswer,
    ]);
  } catch (err) {
    const detail = err && err.message ? err.message : String(err);
    if (err && err.name === 'NotAllowedError') {
      throw new PushProblem(
        'denied',
        `The browser refused the subscription (${detail}). Allow notifications for this site.`,
      );
    }
    throw new PushProblem(
      'no-push-service',
      `The browser’s push service is unavailable (${detail}). This browser cannot receive ` +
        'notifications right now: it may be offline, run without a push service (some privacy ' +
        'builds and headless browsers), or block it. Try another browser or device.',
    );
  } finally {
    clearTimeout(timer);
  }
}

/** A name for this browser, e.g. "Chrome on Android", to prefill the device field. */
export function guessDeviceName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /Firefox\//.test(ua)
      ? 'Firefox'
      : /Chrom(e|ium)\//.test(ua)
        ? 'Chrome'
        : /Safari\//.test(ua)
          ? 'Safari'
          : 'Browser';
  const os = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad|iPod/.test(ua)
      ? 'iOS'
      : /Mac OS X/.test(ua)
        ? 'macOS'
        : /Windows/.test(ua)
          ? 'Windows'
          : /Linux|X11/.test(ua)
            ? 'Linux'
            : '';
  return os ? `${browser} on ${os}` : browser;
}

/** The browser's IANA time zone ("Europe/Berlin"), or "UTC" when it does not say. */
export function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}
