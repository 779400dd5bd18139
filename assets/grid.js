// The grid of all cameras: GET /api/cameras every 10 s, one Tile per camera, laid out
// ceil(√n) columns wide so 1, 4, 9, … cameras fill the screen (tiles stay 16:9).

import { getJson } from './api.js';
import { h, setText } from './dom.js';
import { Tile } from './tile.js';

export const REFRESH_MS = 10000;

export function layout(count) {
  const cols = Math.max(1, Math.ceil(Math.sqrt(count)));
  return { cols, rows: Math.max(1, Math.ceil(count / cols)) };
}

export function mountGrid(root, { onSummary = () => {} } = {}) {
  const grid = h('div', { class: 'grid', role: 'list', 'aria-labelledby': 'grid-title' });
  const notice = h('p', { class: 'notice', role: 'status', hidden: true });
  const empty = h(
    'p',
    { class: 'empty', hidden: true },
    'No cameras yet. Create one with POST /api/cameras and enroll its edge.',
  );
  const view = h(
    'section',
    { class: 'grid-view' },
    h('h1', { id: 'grid-title', class: 'visually-hidden', tabindex: '-1' }, 'Cameras'),
    notice,
    empty,
    h('div', { class: 'grid-wrap' }, grid),
  );
  root.replaceChildren(view);

  const tiles = new Map();
  let timer = 0;
  let stopped = false;

  function reconcile(cameras) {
    const ids = new Set(cameras.map((c) => c.id));
    for (const [id, tile] of tiles) {
      if (!ids.has(id)) {
        tile.destroy();
        tiles.delete(id);
      }
    }
    cameras.forEach((camera, index) => {
      let tile = tiles.get(camera.id);
      if (tile) tile.update(camera);
      else {
        tile = new Tile(camera);
        tiles.set(camera.id, tile);
      }
      // Keep the server's order without moving elements that are in place (a moved
      // <video> would restart).
      if (grid.children[index] !== tile.element) grid.insertBefore(tile.element, grid.children[index] ?? null);
    });
    const { cols, rows } = layout(cameras.length);
    grid.style.setProperty('--cols', String(cols));
    grid.style.setProperty('--rows', String(rows));
    grid.dataset.count = String(cameras.length);
    empty.hidden = cameras.length > 0;
    const online = cameras.filter((c) => c.online).length;
    onSummary(`${online} of ${cameras.length} online`);
  }

  async function refresh() {
    try {
      const cameras = await getJson('/api/cameras');
      if (!performance.getEntriesByName('livecam:cameras').length) performance.mark('livecam:cameras');
      reconcile(cameras);
      notice.hidden = true;
    } catch (err) {
      if (stopped || (err && err.status === 401)) return;
      setText(notice, `Cannot update the camera list: ${err.message}. Retrying…`);
      notice.hidden = false;
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }

  refresh();
  return {
    title: 'Cameras',
    destroy() {
      stopped = true;
      clearTimeout(timer);
      for (const tile of tiles.values()) tile.destroy();
      tiles.clear();
      view.remove();
    },
  };
}
