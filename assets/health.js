// The health page (#/health): the server, LiveKit and the database from GET /api/health,
// and each camera's presence and last heartbeat from GET /api/cameras/<id>/status.
// Refreshed every 5 s.

import { cameraPath, getJson, request } from './api.js';
import { h, replaceChildren, setText } from './dom.js';
import { absoluteTime, relativeTime } from './time.js';

export const HEALTH_REFRESH_MS = 5000;

const COLUMNS = [
  'Camera',
  'Status',
  'State',
  'Last seen',
  'Resolution',
  'Frame rate',
  'Bitrate',
  'CPU',
  'Temperature',
  'Recording',
  'Uploads',
  'Publisher',
  'Error',
];

const fixed = (value, digits, unit) =>
  typeof value === 'number' && Number.isFinite(value) ? `${value.toFixed(digits)}${unit}` : '–';

const GB = 1e9;

// "REC · 1.2 GB · 40 GB free", "DISK FULL", "OFF" from the edge's recorder fields.
function recording(hb) {
  if (hb.recording === undefined || hb.recording === null) return '–';
  if (hb.record_disk_full) return h('span', { class: 'pill bad', title: hb.record_error || '' }, 'DISK FULL');
  const used = fixed(typeof hb.record_bytes === 'number' ? hb.record_bytes / GB : null, 1, ' GB');
  const free = fixed(typeof hb.record_free_bytes === 'number' ? hb.record_free_bytes / GB : null, 0, ' GB free');
  const label = hb.recording ? 'REC' : 'OFF';
  return `${label} · ${used} · ${free}`;
}

// "idle", "2 clips · 35 %", "paused" from the edge's upload fields.
function uploads(hb) {
  if (hb.uploads_queued === undefined || hb.uploads_queued === null) return '–';
  if (hb.uploads_paused) return h('span', { class: 'pill bad' }, 'PAUSED');
  const dead = hb.uploads_dead ? ` · ${hb.uploads_dead} refused` : '';
  if (!hb.uploads_queued) return `idle${dead}`;
  const part =
    hb.upload_size && typeof hb.upload_sent === 'number'
      ? ` · ${Math.floor((100 * hb.upload_sent) / hb.upload_size)} %`
      : '';
  const rate = hb.upload_kbps ? ` · ${fixed(hb.upload_kbps, 0, ' kbit/s')}` : '';
  return `${hb.uploads_queued} clip${hb.uploads_queued === 1 ? '' : 's'}${part}${rate}${dead}`;
}

function okBadge(ok, yes = 'OK', no = 'DOWN') {
  return h('span', { class: ok ? 'pill ok' : 'pill bad' }, ok ? yes : no);
}

function card(title, status, ...details) {
  return h('div', { class: 'card' }, h('h2', {}, title), status, ...details.map((d) => h('p', {}, d)));
}

export function mountHealth(root) {
  const cards = h('div', { class: 'cards', 'aria-live': 'polite' });
  const body = h('tbody');
  const updated = h('p', { class: 'updated' });
  const notice = h('p', { class: 'notice', role: 'status', hidden: true });
  const view = h(
    'section',
    { class: 'health-view', 'aria-labelledby': 'health-title' },
    h('h1', { id: 'health-title', tabindex: '-1' }, 'Health'),
    notice,
    cards,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'health-table' },
        h('caption', {}, 'Cameras'),
        h('thead', {}, h('tr', {}, COLUMNS.map((c) => h('th', { scope: 'col' }, c)))),
        body,
      ),
    ),
    updated,
  );
  root.replaceChildren(view);

  let timer = 0;
  let stopped = false;

  function renderHealth(health) {
    const lk = health.livekit || {};
    const db = health.db || {};
    const counts = health.cameras || { online: 0, total: 0 };
    replaceChildren(
      cards,
      card('Server', okBadge(health.status === 'ok', 'OK', 'DEGRADED')),
      card(
        'LiveKit',
        okBadge(lk.ok),
        lk.url || '',
        lk.ok ? `answered in ${fixed(lk.latency_ms, 0, ' ms')}` : lk.error || '',
      ),
      card('Database', okBadge(db.ok), db.ok ? '' : db.error || ''),
      card('Cameras', h('span', { class: 'pill' }, `${counts.online} / ${counts.total} online`)),
    );
  }

  function renderCameras(rows) {
    replaceChildren(
      body,
      rows.map(({ camera, status, error }) => {
        const hb = (status && status.heartbeat) || {};
        const cells = status
          ? [
              okBadge(status.online, 'ONLINE', 'OFFLINE'),
              status.state,
              h('span', { title: absoluteTime(status.last_seen) }, relativeTime(status.last_seen)),
              hb.width && hb.height ? `${hb.width}×${hb.height}` : '–',
              fixed(hb.fps, 1, ' fps'),
              fixed(hb.bitrate_kbps, 0, ' kbit/s'),
              fixed(hb.cpu_percent, 0, ' %'),
              fixed(hb.temperature_c, 1, ' °C'),
              recording(hb),
              uploads(hb),
              hb.publisher_state || '–',
              hb.error || '',
            ]
          : [h('span', { class: 'pill bad' }, 'UNKNOWN'), '', '', '', '', '', '', '', '', '', '', '', error];
        return h(
          'tr',
          { dataset: { cameraId: camera.id } },
          h('th', { scope: 'row' }, h('a', { href: `#/camera/${encodeURIComponent(camera.id)}` }, camera.name)),
          cells.map((c) => h('td', {}, c)),
        );
      }),
    );
  }

  async function refresh() {
    const problems = [];
    try {
      const response = await request('/api/health', { allow: [503] });
      if (!stopped) renderHealth(await response.json());
    } catch (err) {
      if (err && err.status === 401) return;
      problems.push(`health: ${err.message}`);
    }
    try {
      const cameras = await getJson('/api/cameras');
      const rows = await Promise.all(
        cameras.map(async (camera) => {
          try {
            return { camera, status: await getJson(cameraPath(camera.id, '/status')) };
          } catch (err) {
            return { camera, status: null, error: err.message };
          }
        }),
      );
      if (!stopped) renderCameras(rows);
    } catch (err) {
      if (err && err.status === 401) return;
      problems.push(`cameras: ${err.message}`);
    }
    if (stopped) return;
    setText(notice, problems.length ? `Cannot update ${problems.join('; ')}. Retrying…` : '');
    notice.hidden = problems.length === 0;
    setText(updated, `Updated ${new Date().toLocaleTimeString()}`);
    timer = setTimeout(refresh, HEALTH_REFRESH_MS);
  }

  refresh();
  return {
    title: 'Health',
    destroy() {
      stopped = true;
      clearTimeout(timer);
      view.remove();
    },
  };
}
