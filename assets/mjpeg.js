// The MJPEG fallback: a short-lived ticket from the API (an <img> cannot send the
// Authorization header, so the ticket in its URL stands in for it), then
// <img src="/api/cameras/<id>/mjpeg?ticket=…">. Chrome fires `load` once, for the first
// picture, and nothing when the stream ends; so the picture is also sampled every few
// seconds, and a stream that stopped changing is reopened with a new ticket.

import { cameraPath, postJson } from './api.js';

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
const SAMPLE_MS = 2000;
/** A picture unchanged for this long is taken for a stream that ended. */
const FROZEN_MS = 12000;

export class Mjpeg {
  /**
   * @param {string} cameraId
   * @param {HTMLElement} container where the <img class="mjpeg"> goes
   * @param {{onShowing?: () => void, onLost?: () => void}} handlers
   */
  constructor(cameraId, container, { onShowing = () => {}, onLost = () => {} } = {}) {
    this.cameraId = cameraId;
    this.container = container;
    this.onShowing = onShowing;
    this.onLost = onLost;
    this.img = null;
    this.pending = null;
    this.running = false;
    this.showing = false;
    this.failures = 0;
    this.retryTimer = 0;
    this.sampleTimer = 0;
    this.lastSample = '';
    this.lastChangeAt = 0;
    this.canvas = null;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.failures = 0;
    this.#open();
    this.sampleTimer = setInterval(() => this.#sample(), SAMPLE_MS);
  }

  stop() {
    this.running = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.sampleTimer);
    for (const img of [this.img, this.pending]) if (img) closeImage(img);
    this.img = null;
    this.pending = null;
    this.showing = false;
  }

  async #open() {
    if (!this.running) return;
    let ticket;
    try {
      ticket = await postJson(cameraPath(this.cameraId, '/mjpeg-ticket'));
    } catch (err) {
      if (err && err.status === 401) return;
      this.#failed();
      return;
    }
    const url = sameOriginUrl(ticket && ticket.url);
    if (!this.running || !url) {
      if (!url) this.#failed();
      return;
    }
    const img = new Image();
    img.className = 'mjpeg';
    img.alt = '';
    img.decoding = 'async';
    img.addEventListener('load', () => this.#loaded(img), { once: true });
    img.addEventListener('error', () => this.#errored(img), { once: true });
    if (this.pending) closeImage(this.pending);
    this.pending = img;
    img.src = url;
  }

  #loaded(img) {
    if (img !== this.pending) return;
    // The new stream replaces the old one only once it shows a picture: no flicker.
    this.pending = null;
    if (this.img) closeImage(this.img);
    this.img = img;
    this.container.append(img);
    this.failures = 0;
    this.lastSample = '';
    this.lastChangeAt = performance.now();
    if (!this.showing) {
      this.showing = true;
      this.onShowing();
    }
  }

  #errored(img) {
    if (img === this.pending) {
      this.pending = null;
      closeImage(img);
      this.#failed();
    } else if (img === this.img) {
      this.#lost();
      this.#failed();
    }
  }

  #lost() {
    if (this.img) closeImage(this.img);
    this.img = null;
    if (this.showing) {
      this.showing = false;
      this.onLost();
    }
  }

  #failed() {
    if (!this.running) return;
    clearTimeout(this.retryTimer);
    const base = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
    this.failures += 1;
    this.retryTimer = setTimeout(() => this.#open(), base * (0.8 + 0.4 * Math.random()));
  }

  #sample() {
    const img = this.img;
    if (!this.running || !img || this.pending || document.visibilityState !== 'visible') return;
    const now = performance.now();
    let sample;
    try {
      this.canvas ??= document.createElement('canvas');
      this.canvas.width = 16;
      this.canvas.height = 9;
      const ctx = this.canvas.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(img, 0, 0, 16, 9);
      sample = ctx.getImageData(0, 0, 16, 9).data.join(',');
    } catch {
      return;
    }
    if (sample !== this.lastSample) {
      this.lastSample = sample;
      this.lastChangeAt = now;
    } else if (now - this.lastChangeAt > FROZEN_MS) {
      this.lastChangeAt = now;
      this.#open(); // a fresh stream takes over when it shows a picture
    }
  }
}

/** Ends an <img>'s request (the server stops streaming) and removes it. */
function closeImage(img) {
  img.removeAttribute('src');
  img.remove();
}

/** The ticket URL, if it points back at this server; anything else is refused. */
function sameOriginUrl(value) {
  if (typeof value !== 'string') return null;
  try {
    const url = new URL(value, window.location.href);
    return url.origin === window.location.origin ? url.href : null;
  } catch {
    return null;
  }
}
