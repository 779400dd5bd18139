// Server-Sent Events read through fetch(), so the admin key travels in the Authorization
// header (EventSource cannot send headers, and a key must never sit in a URL). Parses
// the text/event-stream format itself, resumes after a drop with the last id it saw
// (the server replays what was missed), backs off between attempts, and treats a
// stream that has been silent for longer than the server's keepalive as dead.

import { request } from './api.js';

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
/** The server sends a keepalive comment every 15 s; three missed means the link is gone. */
export const SILENCE_MS = 45000;

/**
 * Incremental parser for the event-stream format (the WHATWG rules: fields data, id,
 * event, retry; comments; \r\n, \r or \n line ends). `push(text)` feeds a chunk;
 * `onMessage({id, event, data})` runs for each complete message.
 */
export class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = '';
    this.data = [];
    this.event = '';
    this.id = null;
    this.retry = null;
    this.pendingCr = false;
  }

  push(text) {
    let chunk = text;
    // A \r\n split across two chunks: the \n ends nothing new.
    if (this.pendingCr && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.pendingCr = chunk.endsWith('\r');
    this.buffer += chunk;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop();
    for (const line of lines) this.#line(line);
  }

  #line(line) {
    if (line === '') {
      if (this.data.length) {
        this.onMessage({ id: this.id, event: this.event || 'message', data: this.data.join('\n') });
      }
      this.data = [];
      this.event = '';
      return;
    }
    if (line.startsWith(':')) return; // a comment (keepalive)
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

/**
 * A kept-open event stream. `onMessage({id, event, data})` for each message;
 * `onState(state, detail)` with "connecting", "open", "retrying" (detail: the error
 * message) and "stopped". `lastId` resumes after that id.
 */
export class SseClient {
  constructor(path, { onMessage, onState = () => {}, lastId = null } = {}) {
    this.path = path;
    this.onMessage = onMessage;
    this.onState = onState;
    this.lastId = lastId;
    this.failures = 0;
    this.stopped = true;
    this.controller = null;
    this.retryTimer = 0;
    this.silenceTimer = 0;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.#connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.silenceTimer);
    if (this.controller) this.controller.abort();
    this.controller = null;
    this.onState('stopped');
  }

  #url() {
    if (this.lastId === null || this.lastId === undefined || this.lastId === '') return this.path;
    const sep = this.path.includes('?') ? '&' : '?';
    return `${this.path}${sep}last_event_id=${encodeURIComponent(this.lastId)}`;
  }

  #heard() {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      if (this.controller) this.controller.abort(new Error('no data and no keepalive for 45 s'));
    }, SILENCE_MS);
  }

  async #connect() {
    if (this.stopped) return;
    const controller = new AbortController();
    this.controller = controller;
    this.onState('connecting');
    let problem = 'the stream ended';
    try {
      const response = await request(this.#url(), {
        accept: 'text/event-stream',
        signal: controller.signal,
      });
      if (!response.body) throw new Error('this browser cannot read a streamed response');
      this.failures = 0;
      this.onState('open');
      this.#heard();
      const parser = new SseParser((message) => {
        if (message.id !== null) this.lastId = message.id;
        if (!this.stopped) this.onMessage(message);
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.#heard();
        parser.push(value);
      }
    } catch (err) {
      if (this.stopped || controller !== this.controller) return;
      if (err && err.status === 401) {
        this.stop(); // signed out; the app shows the sign-in form
        return;
      }
      const reason = controller.signal.reason;
      problem = reason && reason.message ? reason.message : (err && err.message) || String(err);
    }
    clearTimeout(this.silenceTimer);
    if (this.stopped || controller !== this.controller) return;
    this.controller = null;
    const base = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
    this.failures += 1;
    this.onState('retrying', problem);
    this.retryTimer = setTimeout(() => this.#connect(), base * (0.8 + 0.4 * Math.random()));
  }
}
