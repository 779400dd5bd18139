// One camera over WebRTC: a viewer token from the API, a livekit-client Room, the
// camera's video track attached to a <video>. Reports when frames play and when they
// stop, and keeps reconnecting on its own (livekit-client rides out short losses; after
// a Disconnected this asks for a fresh token and rejoins with backoff).

import { cameraPath, postJson } from './api.js';

// livekit-client (1.4 MB) is evaluated on first use, not with the app, and only once the
// viewer token has been asked for: the token comes back while it evaluates (index.html
// has the browser fetch and compile it early).
let livekit = null;
function loadLivekit() {
  livekit ??= import('./vendor/livekit-client.esm.mjs').then(
    (module) => {
      performance.mark('livecam:livekit-loaded');
      return module;
    },
    (err) => {
      livekit = null; // try again on the next attempt
      throw err;
    },
  );
  return livekit;
}

/** Data messages with event changes (the server's room relay, contract 5). */
export const EVENT_TOPIC = 'livecam.event';

/** Backoff between rejoin attempts, ms (then 15 s each), with ±20 % jitter. */
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
/** No new frame for this long, while the video is on screen, counts as a drop. */
export const STALL_MS = 2500;

export class Player {
  /**
   * @param {string} cameraId
   * @param {HTMLVideoElement} video
   * @param {{onPlaying?: () => void, onStalled?: () => void, onEvent?: (e: object) => void}}
   *   handlers onEvent: an event change the server sent into the room (the live boxes)
   */
  constructor(cameraId, video, handlers = {}) {
    const { onPlaying = () => {}, onStalled = () => {}, onEvent = () => {} } = handlers;
    this.cameraId = cameraId;
    this.video = video;
    this.onPlaying = onPlaying;
    this.onStalled = onStalled;
    this.onEvent = onEvent;
    this.room = null;
    this.track = null;
    this.playing = false;
    this.failures = 0;
    this.stopped = true;
    this.visible = true;
    this.lastFrameAt = 0;
    this.graceUntil = 0;
    this.frames = 0;
    this.firstFrameMarked = false;
    this.retryTimer = 0;
    this.stallTimer = 0;
    this.frameCallback = 0;
    this.onVisibility = () => this.#grace();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.#watchFrames();
    document.addEventListener('visibilitychange', this.onVisibility);
    this.#connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.stallTimer);
    document.removeEventListener('visibilitychange', this.onVisibility);
    if (this.frameCallback && this.video.cancelVideoFrameCallback) {
      this.video.cancelVideoFrameCallback(this.frameCallback);
    }
    this.frameCallback = 0;
    this.#leave();
    this.playing = false;
  }

  /** Whether the video is on screen; while it is not, missing frames are expected. */
  setVisible(visible) {
    if (visible && !this.visible) this.#grace();
    this.visible = visible;
  }

  /** The RTCStatsReport of the video receiver (inbound-rtp, transport, candidates). */
  async getStatsReport() {
    return this.track ? this.track.getRTCStatsReport() : undefined;
  }

  /** Rejoin now (used when the tile comes back from offline). */
  kick() {
    if (this.stopped || this.room) return;
    clearTimeout(this.retryTimer);
    this.#connect();
  }

  async #connect() {
    if (this.stopped) return;
    this.#leave();
    const id = this.cameraId;
    let grant;
    let lk;
    try {
      [grant, lk] = await Promise.all([postJson(cameraPath(id, '/viewer-token')), loadLivekit()]);
    } catch (err) {
      if (err && err.status === 401) return; // signed out; the app shows the form
      this.#retryLater();
      return;
    }
    if (this.stopped) return;
    performance.mark(`livecam:token:${id}`);
    const { Room, RoomEvent, Track } = lk;
    const decoder = new TextDecoder();
    const room = new Room({ adaptiveStream: true, dynacast: false, webAudioMix: false });
    this.room = room;
    room
      .on(RoomEvent.TrackSubscribed, (track) => {
        if (track.kind !== Track.Kind.Video || this.room !== room) return;
        if (this.track && this.track !== track) this.track.detach(this.video);
        this.track = track;
        track.attach(this.video);
      })
      .on(RoomEvent.TrackUnsubscribed, (track) => {
        track.detach(this.video);
        if (this.track === track) this.track = null;
      })
      .on(RoomEvent.DataReceived, (payload, _participant, _kind, topic) => {
        // The server relays every event change here (topic "livecam.event").
        if (topic !== EVENT_TOPIC || this.room !== room) return;
        let event;
        try {
          event = JSON.parse(decoder.decode(payload));
        } catch {
          return; // not an event; nothing to draw
        }
        this.onEvent(event);
      })
      .on(RoomEvent.Disconnected, () => {
        if (this.room !== room) return; // we left on purpose
        this.room = null;
        this.track = null;
        this.#dropped();
        this.#retryLater();
      });
    try {
      await room.connect(grant.url, grant.token, { autoSubscribe: true });
      performance.mark(`livecam:connected:${id}`);
    } catch {
      if (this.room !== room) return;
      this.room = null;
      room.disconnect().catch(() => {});
      this.#retryLater();
    }
  }

  #leave() {
    const room = this.room;
    this.room = null;
    if (this.track) this.track.detach(this.video);
    this.track = null;
    if (room) room.disconnect().catch(() => {});
  }

  #retryLater() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const base = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
    this.failures += 1;
    const delay = base * (0.8 + 0.4 * Math.random());
    this.retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #watchFrames() {
    const video = this.video;
    if (typeof video.requestVideoFrameCallback === 'function') {
      const onFrame = () => {
        if (this.stopped) return;
        this.#frame();
        this.frameCallback = video.requestVideoFrameCallback(onFrame);
      };
      this.frameCallback = video.requestVideoFrameCallback(onFrame);
    }
    let decoded = 0;
    this.stallTimer = setInterval(() => {
      // Without requestVideoFrameCallback, count decoded frames instead.
      if (typeof video.requestVideoFrameCallback !== 'function' && video.getVideoPlaybackQuality) {
        const total = video.getVideoPlaybackQuality().totalVideoFrames;
        if (total > decoded) this.#frame();
        decoded = total;
      }
      this.#checkStall();
    }, 250);
  }

  #frame() {
    this.lastFrameAt = performance.now();
    this.frames += 1;
    if (this.playing) return;
    this.playing = true;
    this.failures = 0;
    if (!this.firstFrameMarked) {
      this.firstFrameMarked = true;
      performance.mark(`livecam:first-frame:${this.cameraId}`);
    }
    this.onPlaying();
  }

  #grace() {
    this.graceUntil = performance.now() + STALL_MS;
  }

  #checkStall() {
    if (!this.playing || !this.visible || document.visibilityState !== 'visible') return;
    const now = performance.now();
    if (now < this.graceUntil) return;
    if (now - this.lastFrameAt > STALL_MS) this.#dropped();
  }

  #dropped() {
    if (!this.playing) return;
    this.playing = false;
    this.onStalled();
  }
}
