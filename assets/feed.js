// A camera's live picture: WebRTC first, MJPEG when WebRTC has shown nothing within
// FALLBACK_MS or stops delivering frames. WebRTC keeps retrying underneath (the player
// backs off up to 15 s) and takes over again as soon as it plays; the MJPEG stream is
// then closed so the edge stops sending JPEGs.
//
// Modes: "connecting" (no picture yet), "webrtc", "mjpeg". `onMode(mode)` reports them.

import { h } from './dom.js';
import { Mjpeg } from './mjpeg.js';
import { Player } from './player.js';

export const FALLBACK_MS = 4000;

export class Feed {
  constructor(cameraId, { onMode = () => {}, onEvent = () => {} } = {}) {
    this.cameraId = cameraId;
    this.onMode = onMode;
    this.mode = 'connecting';
    this.running = false;
    this.fallbackTimer = 0;
    this.video = h('video', {
      class: 'webrtc',
      muted: true,
      playsinline: true,
      autoplay: true,
      disablepictureinpicture: true,
      'aria-hidden': 'true',
    });
    this.video.muted = true;
    this.element = h('div', { class: 'feed', dataset: { mode: this.mode } }, this.video);
    this.player = new Player(cameraId, this.video, {
      onPlaying: () => this.#webrtcPlaying(),
      onStalled: () => this.#webrtcStalled(),
      onEvent,
    });
    this.mjpeg = new Mjpeg(cameraId, this.element, {
      onShowing: () => {
        if (this.mode !== 'webrtc') this.#setMode('mjpeg');
      },
      onLost: () => {
        if (this.mode === 'mjpeg') this.#setMode('connecting');
      },
    });
    // Tiles off screen get no frames (adaptiveStream pauses them): not a drop.
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) this.player.setVisible(entry.isIntersecting);
    });
    this.observer.observe(this.element);
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.#setMode('connecting');
    this.player.start();
    this.fallbackTimer = setTimeout(() => {
      if (this.running && this.mode !== 'webrtc') this.mjpeg.start();
    }, FALLBACK_MS);
  }

  stop() {
    this.running = false;
    clearTimeout(this.fallbackTimer);
    this.player.stop();
    this.mjpeg.stop();
    this.video.srcObject = null;
    this.#setMode('connecting');
  }

  destroy() {
    this.stop();
    this.observer.disconnect();
    this.element.remove();
  }

  /** The element showing the picture now: the MJPEG <img> in MJPEG mode, else the <video>. */
  get media() {
    return this.mode === 'mjpeg' && this.mjpeg.img ? this.mjpeg.img : this.video;
  }

  /** The RTCStatsReport of the WebRTC receiver, while WebRTC is in use. */
  async getStatsReport() {
    return this.mode === 'webrtc' ? this.player.getStatsReport() : undefined;
  }

  #webrtcPlaying() {
    clearTimeout(this.fallbackTimer);
    this.mjpeg.stop();
    this.#setMode('webrtc');
  }

  #webrtcStalled() {
    if (!this.running) return;
    this.#setMode(this.mjpeg.showing ? 'mjpeg' : 'connecting');
    this.mjpeg.start();
  }

  #setMode(mode) {
    if (this.mode === mode) return;
    this.mode = mode;
    this.element.dataset.mode = mode;
    this.onMode(mode);
  }
}
