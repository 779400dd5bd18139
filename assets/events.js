// Events from the API (contract 4): the timeline's pages, one event, its snapshot, and
// the live stream of changes (GET /api/events/stream, Server-Sent Events).
//
// An event JSON: {id, camera_id, camera_name, label, object, score, box, zones,
// started_at, updated_at, ended_at, active, has_snapshot, snapshot_url, version, clip}.
// `clip` is null, or {url, size, sha256, content_type, started_at, ended_at, duration_s}.
// `version` grows with every change of any event: a newer state has a higher one.

import { getBlob, getJson, postJson } from './api.js';
import { SseClient } from './sse.js';

export const PAGE_SIZE = 30;

/** "/api/events/<id>" + suffix, with the id escaped. */
export function eventPath(eventId, suffix = '') {
  return `/api/events/${encodeURIComponent(eventId)}${suffix}`;
}

/**
 * Query parameters for a filter {camera, labels, zone, since, until} (Date or ISO
 * string for the times); empty parts are left out.
 */
export function filterParams(filter = {}) {
  const params = new URLSearchParams();
  if (filter.camera) params.append('camera', filter.camera);
  for (const label of filter.labels ?? []) params.append('label', label);
  if (filter.zone) params.set('zone', filter.zone);
  if (filter.since) params.set('since', toIso(filter.since));
  if (filter.until) params.set('until', toIso(filter.until));
  return params;
}

function toIso(value) {
  return value instanceof Date ? value.toISOString() : String(value);
}

/** One page of events, newest first: {events, next_cursor}. */
export function fetchEvents(filter, { cursor = null, limit = PAGE_SIZE, signal } = {}) {
  const params = filterParams(filter);
  params.set('limit', String(limit));
  if (cursor) params.set('cursor', cursor);
  return getJson(`/api/events?${params}`, { signal });
}

export function fetchEvent(eventId, options = {}) {
  return getJson(eventPath(eventId), options);
}

/** The event's snapshot JPEG as a Blob (with the admin key). */
export function fetchEventSnapshot(event, options = {}) {
  return getBlob(eventPath(event.id, '/snapshot.jpg'), options);
}

/**
 * A URL of the event's clip that needs no header: {url: ".../clip.mp4?ticket=…",
 * expires_at}. A <video> cannot send the admin key (and the key never goes into a URL);
 * the ticket is for this event only, and its seeks (Range requests) carry it too.
 */
export function fetchClipTicket(event, options = {}) {
  return postJson(eventPath(event.id, '/clip-ticket'), undefined, options);
}

/** Whether a change of `event` is newer than the state `known` (same id). */
export function isNewer(event, known) {
  if (!known) return true;
  const a = Number(event.version);
  const b = Number(known.version);
  if (Number.isFinite(a) && Number.isFinite(b)) return a > b;
  return Date.parse(event.updated_at) >= Date.parse(known.updated_at);
}

/** Whether `event` passes a filter (the stream filters camera/label/zone; dates are ours). */
export function matchesFilter(event, filter = {}) {
  if (filter.camera && event.camera_id !== filter.camera) return false;
  if (filter.labels && filter.labels.length && !filter.labels.includes(event.label)) return false;
  if (filter.zone && !(event.zones ?? []).includes(filter.zone)) return false;
  const started = Date.parse(event.started_at);
  if (filter.since && started < Date.parse(toIso(filter.since))) return false;
  if (filter.until && started >= Date.parse(toIso(filter.until))) return false;
  return true;
}

/**
 * Event changes as they happen. `onEvent(event)` for each new or changed event;
 * `onState(state, detail)` as SseClient reports it. `lastVersion` replays every event
 * changed after that version first (so nothing is missed between a page load and the
 * stream's start).
 */
export function openEventStream(filter, { onEvent, onState, lastVersion = null }) {
  const params = filterParams({ camera: filter.camera, labels: filter.labels, zone: filter.zone });
  const query = params.toString();
  const client = new SseClient(`/api/events/stream${query ? `?${query}` : ''}`, {
    lastId: lastVersion === null ? null : String(lastVersion),
    onState,
    onMessage(message) {
      if (message.event !== 'event') return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return; // not ours; a proxy's page
      }
      if (event && typeof event.id === 'string') onEvent(event);
    },
  });
  client.start();
  return client;
}

const SECOND = 1000;

/** "45 s", "3 min 20 s", "2 h 5 min" between two ISO times. */
export function formatDuration(startIso, endIso) {
  const ms = Date.parse(endIso) - Date.parse(startIso);
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.round(ms / SECOND);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const hours = Math.floor(m / 60);
  return m % 60 ? `${hours} h ${m % 60} min` : `${hours} h`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});
const dayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: 'long',
  day: 'numeric',
  month: 'long',
  year: 'numeric',
});

/** "14:03:22" in the viewer's time zone. */
export function formatClock(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '' : timeFormat.format(date);
}

/** "2026-11-23": the local calendar day of an ISO time (the viewer's time zone). */
export function localDayKey(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Local midnight at the start of a "YYYY-MM-DD" day, and of the next day. */
export function dayRange(key) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(key ?? '');
  if (!match) return null;
  const [year, month, day] = match.slice(1).map(Number);
  const start = new Date(year, month - 1, day);
  if (start.getFullYear() !== year || start.getMonth() !== month - 1 || start.getDate() !== day) {
    return null;
  }
  return { since: start, until: new Date(year, month - 1, day + 1) };
}

/** "Today", "Yesterday" or "Monday, 23 November 2026" for a day key. */
export function dayHeading(key, now = new Date()) {
  const range = dayRange(key);
  if (!range) return key;
  const today = localDayKey(now.toISOString());
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (key === today) return 'Today';
  if (key === localDayKey(yesterday.toISOString())) return 'Yesterday';
  return dayFormat.format(range.since);
}
