// One camera, large: the live feed with stats and live boxes, a snapshot download,
// fullscreen, and links to its events and its zone editor. Route: #/camera/<id>.

import { cameraPath, getJson } from './api.js';
import { h, setText } from './dom.js';
import { REFRESH_MS } from './grid.js';
import { downloadSnapshot } from './snapshot.js';
import { Tile } from './tile.js';

export function mountSingle(root, cameraId, { onTitle = () => {} } = {}) {
  const heading = h('h1', { id: 'single-title', tabindex: '-1' }, cameraId);
  const message = h('p', { class: 'notice', role: 'status', hidden: true });
  const snapshotButton = h('button', { type: 'button', class: 'snapshot' }, 'Download snapshot');
  const fullscreenButton = h(
    'button',
    { type: 'button', class: 'fullscreen', hidden: !document.fullscreenEnabled },
    'Fullscreen',
  );
  const id = encodeURIComponent(cameraId);
  const eventsLink = h(
    'a',
    { class: 'button-link', href: `#/events?camera=${id}` },
    'Events',
  );
  const zonesLink = h(
    'a',
    { class: 'button-link zones-link', href: `#/camera/${id}/zones` },
    'Zones',
  );
  const stage = h('div', { class: 'single-stage' });
  const view = h(
    'section',
    { class: 'single-view', 'aria-labelledby': 'single-title' },
    h(
      'div',
      { class: 'single-head' },
      h('a', { class: 'back', href: '#/' }, '← All cameras'),
      heading,
      h('div', { class: 'toolbar' }, eventsLink, zonesLink, snapshotButton, fullscreenButton),
    ),
    message,
    stage,
  );
  root.replaceChildren(view);

  let tile = null;
  let timer = 0;
  let stopped = false;

  const say = (text) => {
    setText(message, text);
    message.hidden = !text;
  };

  snapshotButton.addEventListener('click', async () => {
    snapshotButton.disabled = true;
    say('');
    try {
      await downloadSnapshot(cameraId);
      say('Snapshot downloaded.');
    } catch (err) {
      if (!err || err.status !== 401) say(`No snapshot: ${err && err.message ? err.message : err}`);
    } finally {
      snapshotButton.disabled = false;
    }
  });

  fullscreenButton.addEventListener('click', async () => {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      // The whole view (not just the video), so the toolbar stays at hand.
      else await view.requestFullscreen({ navigationUI: 'hide' });
    } catch (err) {
      say(`Fullscreen is not available: ${err.message}`);
    }
  });
  const onFullscreen = () => {
    const full = Boolean(document.fullscreenElement);
    setText(fullscreenButton, full ? 'Exit fullscreen' : 'Fullscreen');
    fullscreenButton.setAttribute('aria-pressed', String(full));
  };
  document.addEventListener('fullscreenchange', onFullscreen);

  async function refresh() {
    try {
      const camera = await getJson(cameraPath(cameraId));
      if (stopped) return;
      setText(heading, camera.name);
      onTitle(camera.name);
      if (!tile) {
        tile = new Tile(camera, { link: false, large: true });
        stage.append(tile.element);
      } else tile.update(camera);
      if (message.dataset.kind === 'error') say('');
      message.dataset.kind = '';
    } catch (err) {
      if (stopped || (err && err.status === 401)) return;
      if (err && err.status === 404) {
        setText(heading, 'No such camera');
        say(`There is no camera with id "${cameraId}".`);
        snapshotButton.hidden = true;
        fullscreenButton.hidden = true;
        eventsLink.hidden = true;
        zonesLink.hidden = true;
        return; // nothing to refresh
      }
      message.dataset.kind = 'error';
      say(`Cannot update the camera: ${err.message}. Retrying…`);
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }

  refresh();
  return {
    title: cameraId,
    destroy() {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('fullscreenchange', onFullscreen);
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
      if (tile) tile.destroy();
      view.remove();
    },
  };
}
