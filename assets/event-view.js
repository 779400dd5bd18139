// One event (#/events/<id>): its clip when the edge uploaded one (a <video> that seeks
// through Range requests), its snapshot large (the edge drew the box into it), what was
// seen, where and when, and a link to the camera's live view. Follows the event stream,
// so an ongoing event's end, duration, better snapshot and clip show up by themselves.

import { h, replaceChildren, setText } from './dom.js';
import {
  fetchClipTicket,
  fetchEvent,
  fetchEventSnapshot,
  formatClock,
  isNewer,
  openEventStream,
} from './events.js';
import { eventTitle, formatScore } from './labels.js';
import { durationText, labelBadge } from './timeline.js';
import { absoluteTime } from './time.js';

/** Where "← Events" goes: the timeline as it was last filtered in this tab. */
let timelineRoute = '#/events';

export function rememberTimeline(hash) {
  timelineRoute = hash || '#/events';
}

export function mountEvent(root, eventId, { onTitle = () => {} } = {}) {
  const heading = h('h1', { id: 'event-title', tabindex: '-1' }, 'Event');
  const notice = h('p', { class: 'notice', role: 'alert', hidden: true });
  const picture = h('img', { class: 'event-snapshot', alt: '', hidden: true });
  const noPicture = h('p', { class: 'event-no-snapshot', hidden: true }, 'No snapshot for this event.');
  const video = h('video', {
    class: 'event-clip-video',
    controls: true,
    preload: 'metadata',
    playsinline: true,
  });
  const clipInfo = h('span', { class: 'clip-info' });
  const download = h('a', { class: 'clip-download' }, 'Download');
  const clipFigure = h(
    'figure',
    { class: 'event-clip', hidden: true },
    video,
    h('figcaption', {}, clipInfo, ' · ', download),
  );
  const details = h('dl', { class: 'event-details' });
  const liveLink = h('a', { class: 'button-link live-link', hidden: true }, 'Watch live');
  const view = h(
    'section',
    { class: 'event-view', 'aria-labelledby': 'event-title' },
    h(
      'div',
      { class: 'single-head' },
      h('a', { class: 'back', href: timelineRoute }, '← Events'),
      heading,
      h('div', { class: 'toolbar' }, liveLink),
    ),
    notice,
    h(
      'div',
      { class: 'event-body' },
      h(
        'div',
        { class: 'event-media' },
        clipFigure,
        h('figure', { class: 'event-figure' }, picture, noPicture),
      ),
      details,
    ),
  );
  root.replaceChildren(view);

  let event = null;
  let pictureUrl = null;
  let stream = null;
  let stopped = false;
  let clipSha = null; // the clip the player has (a re-cut clip has another sha256)
  let clipRetried = false;

  function say(text) {
    setText(notice, text);
    notice.hidden = !text;
  }

  function row(term, ...value) {
    return h('div', {}, h('dt', {}, term), h('dd', {}, ...value));
  }

  function render(next, previous) {
    event = next;
    const title = `${eventTitle(next)} at ${next.camera_name}`;
    setText(heading, title);
    onTitle(title);
    view.dataset.active = String(next.active);
    liveLink.href = `#/camera/${encodeURIComponent(next.camera_id)}`;
    liveLink.hidden = false;
    const time = (iso) => h('time', { datetime: iso, title: absoluteTime(iso) }, absoluteTime(iso));
    replaceChildren(
      details,
      row('What', labelBadge(next)),
      row('Camera', h('a', { href: liveLink.href }, next.camera_name)),
      row('Started', time(next.started_at)),
      row('Ended', next.ended_at ? time(next.ended_at) : 'ongoing'),
      row('Duration', h('span', { class: 'duration' }, durationText(next))),
      row('Score', formatScore(next.score)),
      row('Zones', next.zones && next.zones.length ? next.zones.join(', ') : 'whole picture'),
      row('Last update', time(next.updated_at)),
      row('Event id', h('code', {}, next.id)),
    );
    const changed =
      !previous || previous.has_snapshot !== next.has_snapshot || previous.score !== next.score;
    if (changed) loadPicture();
    if ((next.clip ? next.clip.sha256 : null) !== clipSha) loadClip();
  }

  function clearClip() {
    clipSha = null;
    clipFigure.hidden = true;
    video.removeAttribute('src');
    video.load();
    download.removeAttribute('href');
  }

  async function loadClip(resumeAt = 0) {
    const current = event;
    const clip = current.clip;
    if (!clip) {
      clearClip();
      return;
    }
    try {
      const { url } = await fetchClipTicket(current);
      if (stopped || !event.clip || event.clip.sha256 !== clip.sha256) return;
      clipSha = clip.sha256;
      clipRetried = false;
      video.src = url;
      if (resumeAt > 0) video.currentTime = resumeAt;
      download.href = url;
      download.download = clipFilename(current);
      setText(clipInfo, `Clip · ${Math.round(clip.duration_s)} s · ${formatBytes(clip.size)}`);
      video.setAttribute(
        'aria-label',
        `Video of ${eventTitle(current)} at ${current.camera_name}, ${formatClock(clip.started_at)}`,
      );
      clipFigure.hidden = false;
    } catch (err) {
      if (stopped || (err && err.status === 401)) return;
      clipFigure.hidden = false;
      setText(clipInfo, `The clip could not be loaded: ${err && err.message ? err.message : err}`);
    }
  }

  // A seek after the ticket expired (the page was open for a day) fails: get a new
  // ticket once and carry on from the same moment.
  video.addEventListener('error', () => {
    if (stopped || clipRetried || !event || !event.clip) return;
    clipRetried = true;
    const at = video.currentTime;
    clipSha = null;
    loadClip(at);
  });

  async function loadPicture() {
    const current = event;
    if (!current.has_snapshot) {
      picture.hidden = true;
      noPicture.hidden = false;
      return;
    }
    try {
      const blob = await fetchEventSnapshot(current);
      if (stopped) return;
      if (pictureUrl) URL.revokeObjectURL(pictureUrl);
      pictureUrl = URL.createObjectURL(blob);
      picture.src = pictureUrl;
      video.poster = pictureUrl;
      picture.alt =
        `${eventTitle(current)} at ${current.camera_name}, ` +
        `${formatClock(current.started_at)}, with the detection box`;
      picture.hidden = false;
      noPicture.hidden = true;
    } catch (err) {
      if (stopped || (err && err.status === 401)) return;
      picture.hidden = true;
      noPicture.hidden = false;
      setText(noPicture, `The snapshot could not be loaded: ${err && err.message ? err.message : err}`);
    }
  }

  async function load() {
    try {
      const found = await fetchEvent(eventId);
      if (stopped) return;
      render(found, null);
      stream = openEventStream(
        { camera: found.camera_id },
        {
          lastVersion: found.version,
          onEvent(changed) {
            if (changed.id === eventId && isNewer(changed, event)) render(changed, event);
          },
        },
      );
    } catch (err) {
      if (stopped || (err && err.status === 401)) return;
      if (err && err.status === 404) {
        setText(heading, 'No such event');
        say(
          `There is no event with id "${eventId}". It may be older than the retention period ` +
            'and deleted; the timeline shows the events that are kept.',
        );
      } else {
        say(`Cannot load the event: ${err && err.message ? err.message : err}. Reload to try again.`);
      }
    }
  }

  load();
  return {
    title: 'Event',
    destroy() {
      stopped = true;
      if (stream) stream.stop();
      video.pause();
      video.removeAttribute('src');
      video.load();
      if (pictureUrl) URL.revokeObjectURL(pictureUrl);
      view.remove();
    },
  };
}

/** "3.4 MB" */
export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return '–';
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** "front-door-2026-11-22T21-05-09.mp4": camera and the clip's start (UTC). */
export function clipFilename(event) {
  const started = new Date(event.clip.started_at);
  const stamp = started.toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
  return `${event.camera_id}-${stamp}.mp4`;
}
