// Live boxes over a playing camera: every change of an event arrives in the camera's
// LiveKit room as a data message (topic "livecam.event", the event JSON); an active
// event with a box is drawn as a labelled rectangle, and taken away when the event ends
// or has not been heard of for EXPIRE_MS.
//
// Boxes are normalised (0..1) to the camera's picture, and the picture is letterboxed
// into its element (object-fit: contain): so the boxes live in a layer placed exactly
// over the picture's content rectangle, recomputed whenever the element is resized
// (window, fullscreen, grid layout) or the stream's resolution changes.

import { h, setText } from './dom.js';
import { eventTitle, formatScore } from './labels.js';

/** A box not updated for this long is taken away (the edge may end the event later). */
export const EXPIRE_MS = 5000;

// Kept for the tab, like the admin key (sessionStorage; nothing lasts in localStorage).
const STORAGE_KEY = 'livecam.overlays';
const TOGGLE_EVENT = 'livecam:overlays';

/** Whether boxes are shown (on unless turned off in this tab). */
export function overlaysShown() {
  try {
    return sessionStorage.getItem(STORAGE_KEY) !== 'off';
  } catch {
    return true;
  }
}

/** Shows or hides the boxes on every tile (and remembers it for this tab). */
export function setOverlaysShown(shown) {
  try {
    sessionStorage.setItem(STORAGE_KEY, shown ? 'on' : 'off');
  } catch {
    // Storage disabled: the choice lasts for this page.
  }
  document.dispatchEvent(new CustomEvent(TOGGLE_EVENT, { detail: Boolean(shown) }));
}

/**
 * Where object-fit: contain draws a picture of `naturalWidth`×`naturalHeight` inside a
 * box of `width`×`height`: {x, y, width, height} relative to the box, or null while the
 * picture's size is unknown.
 */
export function contentRect(width, height, naturalWidth, naturalHeight) {
  if (!(width > 0 && height > 0 && naturalWidth > 0 && naturalHeight > 0)) return null;
  const scale = Math.min(width / naturalWidth, height / naturalHeight);
  const w = naturalWidth * scale;
  const hgt = naturalHeight * scale;
  return { x: (width - w) / 2, y: (height - hgt) / 2, width: w, height: hgt };
}

/** The decoded size of a <video> or <img> (0×0 while not known). */
function naturalSize(media) {
  if (!media) return { width: 0, height: 0 };
  if (media instanceof HTMLVideoElement) {
    return { width: media.videoWidth, height: media.videoHeight };
  }
  return { width: media.naturalWidth, height: media.naturalHeight };
}

function validBox(box) {
  return (
    Array.isArray(box) &&
    box.length === 4 &&
    box.every((v) => typeof v === 'number' && Number.isFinite(v)) &&
    box[0] < box[2] &&
    box[1] < box[3]
  );
}

const clamp01 = (v) => Math.min(1, Math.max(0, v));

export class Overlay {
  /** @param {{cameraId: string}} options boxes of other cameras are ignored */
  constructor({ cameraId }) {
    this.cameraId = cameraId;
    this.media = null;
    this.boxes = new Map(); // event id → {el, text, event, timer}
    this.layer = h('div', { class: 'overlay-layer', hidden: true });
    this.element = h(
      'div',
      { class: 'overlay', role: 'list', 'aria-label': 'Detections' },
      this.layer,
    );
    // The tile's "Boxes" button: shows or hides the boxes on every tile at once.
    this.toggleButton = h(
      'button',
      {
        type: 'button',
        class: 'boxes-toggle',
        title: 'Show or hide the boxes of detected objects',
        on: { click: () => setOverlaysShown(!overlaysShown()) },
      },
      'Boxes',
    );
    this.#shown(overlaysShown());
    this.onToggle = (e) => this.#shown(e.detail);
    document.addEventListener(TOGGLE_EVENT, this.onToggle);
    this.onMediaResize = () => this.layout();
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(this.element);
  }

  /** Follow `media` (the <video>, or the MJPEG <img> while it is shown). */
  attach(media) {
    if (media === this.media) {
      this.layout();
      return;
    }
    if (this.media) {
      this.media.removeEventListener('resize', this.onMediaResize);
      this.media.removeEventListener('loadedmetadata', this.onMediaResize);
      this.media.removeEventListener('load', this.onMediaResize);
    }
    this.media = media;
    if (media) {
      media.addEventListener('resize', this.onMediaResize); // video: resolution change
      media.addEventListener('loadedmetadata', this.onMediaResize);
      media.addEventListener('load', this.onMediaResize); // img: first picture
    }
    this.layout();
  }

  /** Places the layer over the picture's content rectangle. */
  layout() {
    const { width, height } = naturalSize(this.media);
    const rect = contentRect(this.element.clientWidth, this.element.clientHeight, width, height);
    if (!rect) {
      this.layer.hidden = true;
      return;
    }
    const style = this.layer.style;
    style.left = `${rect.x}px`;
    style.top = `${rect.y}px`;
    style.width = `${rect.width}px`;
    style.height = `${rect.height}px`;
    this.layer.hidden = false;
  }

  /** A change of an event (contract 4 JSON) from the room. */
  apply(event) {
    if (!event || typeof event.id !== 'string' || event.camera_id !== this.cameraId) return;
    const known = this.boxes.get(event.id);
    if (known && Number(event.version) < Number(known.event.version)) return; // older state
    if (!event.active || !validBox(event.box)) {
      this.remove(event.id);
      return;
    }
    const entry = known ?? this.#create(event.id);
    entry.event = event;
    const [x0, y0, x1, y1] = event.box.map(clamp01);
    const style = entry.el.style;
    style.left = `${x0 * 100}%`;
    style.top = `${y0 * 100}%`;
    style.width = `${(x1 - x0) * 100}%`;
    style.height = `${(y1 - y0) * 100}%`;
    entry.el.dataset.label = event.label;
    // Near the top edge, the caption goes inside the box (it would be cut off above).
    entry.el.dataset.inside = String(y0 < 0.08);
    setText(entry.text, `${eventTitle(event)} ${formatScore(event.score)}`);
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.remove(event.id), EXPIRE_MS);
    if (this.layer.hidden) this.layout();
  }

  remove(eventId) {
    const entry = this.boxes.get(eventId);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.el.remove();
    this.boxes.delete(eventId);
  }

  clear() {
    for (const id of [...this.boxes.keys()]) this.remove(id);
  }

  destroy() {
    this.clear();
    this.attach(null);
    this.resizeObserver.disconnect();
    document.removeEventListener(TOGGLE_EVENT, this.onToggle);
    this.element.remove();
  }

  #shown(shown) {
    this.element.hidden = !shown;
    this.toggleButton.setAttribute('aria-pressed', String(shown));
    if (shown) this.layout();
  }

  #create(eventId) {
    const text = h('span', { class: 'overlay-label' });
    const el = h('div', { class: 'overlay-box', role: 'listitem', dataset: { eventId } }, text);
    this.layer.append(el);
    const entry = { el, text, event: null, timer: 0 };
    this.boxes.set(eventId, entry);
    return entry;
  }
}
