// One camera's tile: name, badge, the live feed (WebRTC or MJPEG) while the camera is
// reachable, its last snapshot and "last seen …" while it is not, and stats on demand.
// The grid shows one per camera; the single-camera view shows a large one.

import { h, setText } from './dom.js';
import { Feed } from './feed.js';
import { Overlay } from './overlay.js';
import { StatsPanel } from './stats.js';
import { fetchSnapshot } from './snapshot.js';
import { absoluteTime, ageSeconds, relativeTime } from './time.js';

export const BADGES = {
  webrtc: 'LIVE · WebRTC',
  mjpeg: 'LIVE · MJPEG',
  connecting: 'CONNECTING',
  offline: 'OFFLINE',
};

/** States in which an edge is up (though maybe not publishing into LiveKit right now). */
const EDGE_UP = new Set(['publishing', 'connecting', 'reconnecting']);
/** How recent the last word from an edge that is not publishing must be. */
const RECENT_S = 60;

/**
 * Whether to try live video: the camera publishes, or its edge is up and talking to the
 * server (say LiveKit is down: then MJPEG may still work).
 */
export function isReachable(camera) {
  return Boolean(
    camera.online || (EDGE_UP.has(camera.state) && ageSeconds(camera.last_seen) < RECENT_S),
  );
}

export class Tile {
  /**
   * @param {object} camera an entry of GET /api/cameras
   * @param {{link?: boolean, large?: boolean}} options link: the name opens the single view
   */
  constructor(camera, { link = true, large = false } = {}) {
    this.camera = camera;
    this.mode = null;
    this.feed = null;
    this.stillUrl = null;
    this.stillFor = undefined;
    this.stillLoading = null;
    this.destroyed = false;

    this.nameEl = link
      ? h('a', { class: 'name open', href: `#/camera/${encodeURIComponent(camera.id)}` })
      : h('span', { class: 'name' });
    this.badge = h('span', { class: 'badge' });
    this.seen = h('span', { class: 'seen' });
    this.still = h('img', { class: 'still', alt: '', hidden: true });
    this.notice = h('p', { class: 'tile-notice' });
    this.statsButton = h(
      'button',
      {
        type: 'button',
        class: 'stats-toggle',
        'aria-pressed': 'false',
        on: { click: () => this.toggleStats() },
      },
      'Stats',
    );
    this.stats = null;
    // Boxes of detected objects over the live picture, from the room's event messages.
    this.overlay = new Overlay({ cameraId: camera.id });
    this.frame = h(
      'div',
      { class: 'frame' },
      this.still,
      this.notice,
      this.overlay.element,
      h('div', { class: 'caption top' }, h('h2', { class: 'title' }, this.nameEl), this.badge),
      h(
        'div',
        { class: 'caption bottom' },
        this.seen,
        h('span', { class: 'caption-buttons' }, this.overlay.toggleButton, this.statsButton),
      ),
    );
    this.element = h(
      'article',
      {
        class: large ? 'tile large' : 'tile',
        dataset: { cameraId: camera.id },
        role: large ? null : 'listitem',
      },
      this.frame,
    );
    this.update(camera);
  }

  /** Applies a fresh entry of the camera list. */
  update(camera) {
    this.camera = camera;
    setText(this.nameEl, camera.name);
    this.element.setAttribute('aria-label', camera.name);
    if (isReachable(camera)) this.#goLive();
    else this.#goOffline();
    this.#renderSeen();
  }

  toggleStats(force) {
    const show = force ?? !(this.stats && this.stats.shown);
    if (show && !this.stats) {
      this.stats = new StatsPanel(this);
      this.frame.append(this.stats.element);
    }
    if (this.stats) this.stats.show(show);
    this.statsButton.setAttribute('aria-pressed', String(show));
  }

  /** For the StatsPanel (which also reads `mode`). */
  async getStatsReport() {
    return this.feed ? this.feed.getStatsReport() : undefined;
  }

  destroy() {
    this.destroyed = true;
    if (this.feed) this.feed.destroy();
    this.feed = null;
    if (this.stats) this.stats.destroy();
    this.overlay.destroy();
    this.#setStill(null);
    this.element.remove();
  }

  #goLive() {
    if (!this.feed) {
      this.feed = new Feed(this.camera.id, {
        onMode: (mode) => this.#setMode(mode),
        onEvent: (event) => this.overlay.apply(event),
      });
      this.frame.prepend(this.feed.element);
      this.feed.start();
    }
    this.still.hidden = true;
    this.#setMode(this.feed.mode);
  }

  #goOffline() {
    if (this.feed) {
      this.feed.destroy();
      this.feed = null;
    }
    this.#setMode('offline');
    this.#loadStill();
  }

  #setMode(mode) {
    // The boxes follow whichever element shows the picture (video or MJPEG).
    this.overlay.attach(this.feed ? this.feed.media : null);
    if (mode === 'offline') this.overlay.clear();
    if (this.mode === mode) return;
    this.mode = mode;
    this.element.dataset.mode = mode;
    setText(this.badge, BADGES[mode]);
    this.badge.dataset.mode = mode;
    this.#renderSeen();
  }

  #renderSeen() {
    const camera = this.camera;
    const offline = this.mode === 'offline';
    this.still.hidden = !(offline && this.stillUrl);
    this.notice.hidden = !offline ? this.mode !== 'connecting' : Boolean(this.stillUrl);
    setText(
      this.notice,
      offline ? (this.stillLoading ? '' : 'No picture yet') : 'Connecting…',
    );
    if (offline) {
      const state = camera.state && camera.state !== 'offline' ? `${camera.state} · ` : '';
      setText(this.seen, `${state}last seen ${relativeTime(camera.last_seen)}`);
      this.seen.title = absoluteTime(camera.last_seen);
    } else {
      setText(this.seen, '');
      this.seen.title = '';
    }
    this.statsButton.hidden = offline;
    this.overlay.toggleButton.hidden = offline;
    if (offline && this.stats && this.stats.shown) this.toggleStats(false);
  }

  async #loadStill() {
    const stamp = this.camera.last_snapshot_at;
    // null: the server has no picture of this camera; undefined: it does not say.
    if (stamp === null) {
      this.#setStill(null);
      this.stillFor = stamp;
      this.#renderSeen();
      return;
    }
    if (this.stillFor === stamp || this.stillLoading) return;
    this.stillFor = stamp;
    this.stillLoading = fetchSnapshot(this.camera.id);
    this.#renderSeen();
    try {
      const blob = await this.stillLoading;
      if (!this.destroyed) this.#setStill(URL.createObjectURL(blob));
    } catch {
      if (!this.destroyed) this.#setStill(null);
    } finally {
      this.stillLoading = null;
      if (!this.destroyed) this.#renderSeen();
    }
  }

  #setStill(url) {
    if (this.stillUrl) URL.revokeObjectURL(this.stillUrl);
    this.stillUrl = url;
    if (url) {
      this.still.src = url;
      this.still.alt = `Last picture from ${this.camera.name}`;
    } else {
      this.still.removeAttribute('src');
      this.still.alt = '';
    }
  }
}
