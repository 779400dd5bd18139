// The timeline (#/events): events newest first, under a heading per day in the viewer's
// time zone, each with its snapshot, label, camera, time, duration and zones. Filters
// (camera, labels, zone, date) live in the route — #/events?camera=…&label=person&
// label=pet&zone=…&date=2026-11-23 — so a filtered view can be bookmarked (the admin
// key never is). More pages load as the list scrolls (or with "Load more"); new and
// changed events arrive over the event stream and appear without a reload.

import { cameraPath, getJson } from './api.js';
import { h, replaceChildren, setText } from './dom.js';
import {
  dayHeading,
  dayRange,
  fetchEvents,
  fetchEventSnapshot,
  formatClock,
  formatDuration,
  isNewer,
  localDayKey,
  matchesFilter,
  openEventStream,
} from './events.js';
import { LABELS, LABEL_IDS, eventTitle, formatScore, labelIcon, labelInfo } from './labels.js';
import { LazyImages } from './lazyimages.js';
import { absoluteTime } from './time.js';

/** The timeline route for a filter (what the address bar shows). */
export function timelineHash(filter = {}) {
  const params = new URLSearchParams();
  if (filter.camera) params.set('camera', filter.camera);
  for (const label of filter.labels ?? []) params.append('label', label);
  if (filter.zone) params.set('zone', filter.zone);
  if (filter.date) params.set('date', filter.date);
  const query = params.toString();
  return `#/events${query ? `?${query}` : ''}`;
}

/** The filter in a route's query string; unknown labels and bad dates are dropped. */
export function parseTimelineQuery(query) {
  const params = new URLSearchParams(query ?? '');
  const labels = params.getAll('label').filter((l) => LABEL_IDS.includes(l));
  const date = params.get('date') ?? '';
  return {
    camera: params.get('camera') ?? '',
    labels: [...new Set(labels)],
    zone: (params.get('zone') ?? '').trim(),
    date: dayRange(date) ? date : '',
  };
}

/** The API filter for a route filter: a date becomes [local midnight, next midnight). */
function apiFilter(filter) {
  const range = filter.date ? dayRange(filter.date) : null;
  return {
    camera: filter.camera,
    labels: filter.labels,
    zone: filter.zone,
    since: range ? range.since : null,
    until: range ? range.until : null,
  };
}

/** Newest first: by started_at, then id (the server's order). */
function compareEvents(a, b) {
  const ta = Date.parse(a.started_at);
  const tb = Date.parse(b.started_at);
  if (ta !== tb) return tb - ta;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** Whether `el` is on screen or within `margin` px below it. */
function nearViewport(el, margin = 400) {
  const rect = el.getBoundingClientRect();
  return rect.height > 0 && rect.top < window.innerHeight + margin && rect.bottom > -margin;
}

/** The small badge with the label's icon and name (colour from data-label). */
export function labelBadge(event) {
  const info = labelInfo(event.label);
  return h(
    'span',
    { class: 'label-badge', dataset: { label: info.id } },
    labelIcon(info.id),
    h('span', { class: 'label-name' }, eventTitle(event)),
  );
}

/** "ongoing" for an active event, else its duration. */
export function durationText(event) {
  return event.active ? 'ongoing' : formatDuration(event.started_at, event.ended_at);
}

export function mountTimeline(root, query, { onTitle = () => {} } = {}) {
  let filter = parseTimelineQuery(query);

  // --- the filter form ---------------------------------------------------------------
  const cameraSelect = h(
    'select',
    { id: 'filter-camera', name: 'camera' },
    h('option', { value: '' }, 'All cameras'),
  );
  const labelBoxes = LABELS.map((info) =>
    h('input', { type: 'checkbox', name: 'label', value: info.id, id: `filter-label-${info.id}` }),
  );
  const zoneInput = h('input', {
    id: 'filter-zone',
    name: 'zone',
    type: 'search',
    list: 'filter-zone-options',
    maxlength: '100',
    autocomplete: 'off',
  });
  const zoneOptions = h('datalist', { id: 'filter-zone-options' });
  const dateInput = h('input', { id: 'filter-date', name: 'date', type: 'date' });
  const clearButton = h('button', { type: 'button', class: 'clear-filters' }, 'Clear filters');
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter events' },
    h('div', { class: 'field' }, h('label', { for: 'filter-camera' }, 'Camera'), cameraSelect),
    h(
      'fieldset',
      { class: 'field labels' },
      h('legend', {}, 'Labels'),
      LABELS.map((info, i) =>
        h(
          'label',
          { class: 'check', dataset: { label: info.id } },
          labelBoxes[i],
          labelIcon(info.id),
          info.name,
        ),
      ),
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'filter-zone' }, 'Zone'),
      zoneInput,
      zoneOptions,
    ),
    h('div', { class: 'field' }, h('label', { for: 'filter-date' }, 'Date'), dateInput),
    clearButton,
  );

  // --- the list ------------------------------------------------------------------------
  const liveStatus = h('p', {
    class: 'live-status',
    role: 'status',
    dataset: { state: 'connecting' },
  });
  const notice = h('p', { class: 'notice', role: 'alert', hidden: true });
  // New events are announced to screen readers (the cards appear silently otherwise).
  const announcer = h('p', { class: 'visually-hidden', role: 'status', 'aria-live': 'polite' });
  const retryButton = h('button', { type: 'button', hidden: true }, 'Try again');
  const empty = h('div', { class: 'empty timeline-empty', hidden: true });
  const days = h('div', { class: 'days' });
  const loadMore = h('button', { type: 'button', class: 'load-more', hidden: true }, 'Load more');
  const end = h('p', { class: 'list-end', hidden: true }, 'No older events.');
  const heading = h('h1', { id: 'timeline-title', tabindex: '-1' }, 'Events');
  const view = h(
    'section',
    { class: 'timeline-view', 'aria-labelledby': 'timeline-title' },
    h('div', { class: 'timeline-head' }, heading, liveStatus),
    announcer,
    form,
    notice,
    retryButton,
    empty,
    days,
    loadMore,
    end,
  );
  root.replaceChildren(view);

  let images = new LazyImages();
  const events = new Map(); // id → event JSON
  const cards = new Map(); // id → {item, img, render}
  let nextCursor = null;
  let loading = null; // AbortController of the page being fetched
  let stream = null;
  let stopped = false;
  let generation = 0; // bumps when the filter changes: late answers for the old one are dropped

  function say(text) {
    setText(notice, text);
    notice.hidden = !text;
  }

  function formFromFilter() {
    cameraSelect.value = filter.camera;
    if (filter.camera && cameraSelect.value !== filter.camera) {
      // A camera from a bookmark that the list does not have (yet): keep it selectable.
      cameraSelect.append(h('option', { value: filter.camera }, filter.camera));
      cameraSelect.value = filter.camera;
    }
    labelBoxes.forEach((box) => {
      box.checked = filter.labels.includes(box.value);
    });
    zoneInput.value = filter.zone;
    dateInput.value = filter.date;
    clearButton.disabled = !(filter.camera || filter.labels.length || filter.zone || filter.date);
  }

  function filterFromForm() {
    return {
      camera: cameraSelect.value,
      labels: labelBoxes.filter((b) => b.checked).map((b) => b.value),
      zone: zoneInput.value.trim(),
      date: dayRange(dateInput.value) ? dateInput.value : '',
    };
  }

  function applyFilter(next) {
    const before = timelineHash(filter);
    filter = next;
    formFromFilter();
    const hash = timelineHash(filter);
    if (hash === before) return;
    // replaceState: the route changes without a hashchange (the view stays mounted).
    history.replaceState(history.state, '', hash);
    restart();
  }

  form.addEventListener('submit', (event) => event.preventDefault());
  cameraSelect.addEventListener('change', () => {
    applyFilter(filterFromForm());
    loadZoneNames();
  });
  for (const box of labelBoxes) box.addEventListener('change', () => applyFilter(filterFromForm()));
  dateInput.addEventListener('change', () => applyFilter(filterFromForm()));
  let zoneTimer = 0;
  zoneInput.addEventListener('input', () => {
    clearTimeout(zoneTimer);
    zoneTimer = setTimeout(() => applyFilter(filterFromForm()), 400);
  });
  zoneInput.addEventListener('change', () => {
    clearTimeout(zoneTimer);
    applyFilter(filterFromForm());
  });
  clearButton.addEventListener('click', () => {
    applyFilter({ camera: '', labels: [], zone: '', date: '' });
    loadZoneNames();
  });
  retryButton.addEventListener('click', () => restart());
  loadMore.addEventListener('click', () => loadPage());

  // Infinite scroll: the "Load more" button loads the next page when it comes near.
  const moreObserver = new IntersectionObserver(
    (entries) => {
      if (entries.some((e) => e.isIntersecting) && nextCursor && !loading) loadPage();
    },
    { rootMargin: '400px' },
  );
  moreObserver.observe(loadMore);

  // --- cards ---------------------------------------------------------------------------

  function makeCard(event) {
    const img = h('img', { class: 'thumb-img', alt: '', decoding: 'async' });
    const none = h('span', { class: 'thumb-none' }, 'No picture');
    const clipMark = h('span', { class: 'thumb-clip', title: 'Has a video clip', hidden: true }, '▶ Clip');
    const thumb = h('div', { class: 'thumb' }, img, none, clipMark);
    const title = h('p', { class: 'event-title' });
    const meta = h('p', { class: 'event-meta' });
    const zones = h('p', { class: 'event-zones' });
    const link = h(
      'a',
      { class: 'event-link', href: `#/events/${encodeURIComponent(event.id)}` },
      thumb,
      h('div', { class: 'event-info' }, title, meta, zones),
    );
    const item = h('li', { class: 'event-card', dataset: { eventId: event.id } }, link);
    const card = { item, img, event: null };

    card.render = (next) => {
      const previous = card.event;
      card.event = next;
      item.dataset.label = next.label;
      item.dataset.active = String(next.active);
      replaceChildren(title, labelBadge(next));
      const time = h(
        'time',
        { datetime: next.started_at, title: absoluteTime(next.started_at) },
        formatClock(next.started_at),
      );
      const duration = h(
        'span',
        { class: next.active ? 'duration ongoing' : 'duration' },
        durationText(next),
      );
      replaceChildren(
        meta,
        h('span', { class: 'camera-name' }, next.camera_name),
        ' · ',
        time,
        ' · ',
        duration,
        ' · ',
        h('span', { class: 'score', title: 'Highest detection score' }, formatScore(next.score)),
      );
      setText(zones, next.zones && next.zones.length ? `Zones: ${next.zones.join(', ')}` : '');
      zones.hidden = !(next.zones && next.zones.length);
      img.alt = next.has_snapshot
        ? `${eventTitle(next)} at ${next.camera_name}, ${formatClock(next.started_at)}`
        : '';
      thumb.dataset.has = String(Boolean(next.has_snapshot));
      clipMark.hidden = !next.clip;
      const load = () => fetchEventSnapshot(next);
      if (!previous) {
        if (next.has_snapshot) images.observe(img, load);
      } else if (next.has_snapshot && (!previous.has_snapshot || next.score !== previous.score)) {
        // The server keeps the snapshot with the highest score: a new best means a new picture.
        if (previous.has_snapshot) images.refresh(img, load);
        else images.observe(img, load);
      }
    };
    card.render(event);
    return card;
  }

  function daySection(key) {
    let section = days.querySelector(`section.day[data-day="${key}"]`);
    if (section) return section;
    const headingId = `day-${key}`;
    section = h(
      'section',
      { class: 'day', dataset: { day: key }, 'aria-labelledby': headingId },
      h('h2', { id: headingId }, h('time', { datetime: key }, dayHeading(key))),
      h('ol', { class: 'event-list' }),
    );
    const later = [...days.children].find((s) => s.dataset.day < key);
    days.insertBefore(section, later ?? null);
    return section;
  }

  function place(card) {
    const event = card.event;
    const list = daySection(localDayKey(event.started_at)).querySelector('ol');
    const before = [...list.children].find((li) => {
      const other = events.get(li.dataset.eventId);
      return other && compareEvents(event, other) < 0;
    });
    if (card.item.parentElement !== list || card.item.nextElementSibling !== (before ?? null)) {
      list.insertBefore(card.item, before ?? null);
    }
  }

  function add(event, { fresh = false } = {}) {
    events.set(event.id, event);
    const card = makeCard(event);
    cards.set(event.id, card);
    place(card);
    if (fresh) {
      card.item.classList.add('fresh');
      setTimeout(() => card.item.classList.remove('fresh'), 4000);
    }
  }

  /** The oldest event that paging has reached (a live event older than it waits for paging). */
  function oldestLoaded() {
    let oldest = null;
    for (const event of events.values()) {
      if (!oldest || compareEvents(event, oldest) > 0) oldest = event;
    }
    return oldest;
  }

  function onLiveEvent(event) {
    const known = events.get(event.id);
    if (known) {
      if (!isNewer(event, known)) return;
      events.set(event.id, event);
      const card = cards.get(event.id);
      card.render(event);
      place(card);
      return;
    }
    if (!matchesFilter(event, apiFilter(filter))) return;
    const oldest = oldestLoaded();
    if (nextCursor && oldest && compareEvents(event, oldest) > 0) return; // paging brings it
    add(event, { fresh: true });
    setText(announcer, `New event: ${eventTitle(event)} at ${event.camera_name}`);
    renderState();
  }

  function renderState() {
    const count = events.size;
    const filtered = Boolean(filter.camera || filter.labels.length || filter.zone || filter.date);
    empty.hidden = count > 0 || Boolean(loading) || !notice.hidden;
    if (!empty.hidden) {
      replaceChildren(
        empty,
        filtered
          ? [
              h('p', {}, 'No events match these filters.'),
              h('p', { class: 'hint' }, 'Choose other labels or another day, or clear the filters.'),
            ]
          : [
              h('p', {}, 'No events yet.'),
              h(
                'p',
                { class: 'hint' },
                'Events appear here when a camera’s edge detects motion, people, vehicles or pets. ' +
                  'If none come, check on the Health page that the cameras are online.',
              ),
            ],
      );
    }
    loadMore.hidden = !nextCursor;
    loadMore.disabled = Boolean(loading);
    setText(loadMore, loading && count ? 'Loading…' : 'Load more');
    end.hidden = Boolean(nextCursor) || count === 0;
    const camera = filter.camera ? cameraSelect.selectedOptions[0]?.textContent || filter.camera : '';
    onTitle(camera ? `Events · ${camera}` : 'Events');
  }

  async function loadPage() {
    if (loading || stopped) return;
    const first = events.size === 0 && !nextCursor;
    const mine = generation;
    const controller = new AbortController();
    loading = controller;
    renderState();
    try {
      const page = await fetchEvents(apiFilter(filter), {
        cursor: nextCursor,
        signal: controller.signal,
      });
      if (stopped || mine !== generation) return;
      nextCursor = page.next_cursor;
      for (const event of page.events) {
        const known = events.get(event.id);
        if (!known) add(event);
        else if (isNewer(event, known)) onLiveEvent(event);
      }
      say('');
      retryButton.hidden = true;
      if (first) startStream(page.events);
    } catch (err) {
      if (stopped || mine !== generation) return;
      if (err && (err.name === 'AbortError' || err.status === 401)) return;
      say(
        err && err.status === 422
          ? `The server refused this filter: ${err.message}`
          : `Cannot load events: ${err && err.message ? err.message : err}. ` +
              'Check the connection and try again.',
      );
      retryButton.hidden = false;
    } finally {
      if (loading === controller) loading = null;
      if (!stopped && mine === generation) {
        renderState();
        // Still at the end of the list (a tall screen): the observer will not fire again.
        if (nextCursor && notice.hidden && nearViewport(loadMore)) setTimeout(loadPage, 0);
      }
    }
  }

  function startStream(firstPage) {
    if (stream) stream.stop();
    // Replay every change after the newest state we were shown, so nothing slips through
    // between the page and the stream. With nothing shown and no date, replay from 0
    // (only events that match, and there were none a moment ago).
    const versions = firstPage.map((e) => Number(e.version)).filter(Number.isFinite);
    const lastVersion = versions.length ? Math.max(...versions) : filter.date ? null : 0;
    stream = openEventStream(apiFilter(filter), {
      lastVersion,
      onEvent: onLiveEvent,
      onState(state, detail) {
        liveStatus.dataset.state = state;
        setText(
          liveStatus,
          state === 'open'
            ? 'Live'
            : state === 'retrying'
              ? `Live updates interrupted (${detail}); reconnecting…`
              : state === 'connecting'
                ? 'Connecting…'
                : '',
        );
      },
    });
  }

  function restart() {
    generation += 1;
    if (loading) loading.abort();
    loading = null;
    if (stream) stream.stop();
    stream = null;
    images.destroy();
    images = new LazyImages();
    events.clear();
    cards.clear();
    days.replaceChildren();
    nextCursor = null;
    say('');
    retryButton.hidden = true;
    loadPage();
  }

  async function loadCameras() {
    try {
      const cameras = await getJson('/api/cameras');
      if (stopped) return;
      const options = [h('option', { value: '' }, 'All cameras')];
      for (const camera of cameras) options.push(h('option', { value: camera.id }, camera.name));
      replaceChildren(cameraSelect, options);
      formFromFilter();
      renderState();
      loadZoneNames(cameras);
    } catch {
      // The list still works without camera names in the menu.
    }
  }

  async function loadZoneNames(cameras) {
    const known = cameras ?? [...cameraSelect.options].map((o) => ({ id: o.value }));
    const ids = filter.camera ? [filter.camera] : known.map((c) => c.id).filter(Boolean);
    const names = new Set();
    await Promise.all(
      ids.map(async (id) => {
        try {
          const answer = await getJson(cameraPath(id, '/zones'));
          for (const zone of answer.zones ?? []) if (zone.kind === 'zone') names.add(zone.name);
        } catch {
          // A camera without zones, or gone: nothing to suggest.
        }
      }),
    );
    if (stopped) return;
    replaceChildren(zoneOptions, [...names].sort().map((name) => h('option', { value: name })));
  }

  formFromFilter();
  loadCameras();
  loadPage();

  return {
    title: 'Events',
    destroy() {
      stopped = true;
      clearTimeout(zoneTimer);
      if (loading) loading.abort();
      if (stream) stream.stop();
      moreObserver.disconnect();
      images.destroy();
      view.remove();
    },
  };
}
