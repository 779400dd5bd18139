// The dashboard's entry point: sign-in, the header, and hash routes
//   #/             the grid of all cameras
//   #/camera/<id>  one camera
//   #/health       health of the server, LiveKit, the database and each camera

import { getJson, onUnauthorized } from './api.js';
import { clearKey, getKey, mountSignIn } from './auth.js';
import { setText } from './dom.js';
import { mountGrid } from './grid.js';
import { mountHealth } from './health.js';
import { mountSingle } from './single.js';

performance.mark('livecam:app');

const bar = document.getElementById('bar');
const main = document.getElementById('main');
const summary = document.getElementById('summary');
const signOutButton = document.getElementById('sign-out');

let view = null;

function route() {
  const hash = window.location.hash.replace(/^#/, '') || '/';
  const single = /^\/camera\/([^/]+)$/.exec(hash);
  if (single) return { name: 'camera', id: decodeURIComponent(single[1]) };
  if (hash === '/health') return { name: 'health' };
  return { name: 'grid' };
}

function closeView() {
  if (view) view.destroy();
  view = null;
}

function setTitle(title) {
  document.title = title ? `${title} · livecam` : 'livecam';
}

function render() {
  closeView();
  if (!getKey()) {
    showSignIn('');
    return;
  }
  bar.hidden = false;
  const where = route();
  for (const link of bar.querySelectorAll('nav a')) {
    const current = link.dataset.route === where.name;
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  setText(summary, '');
  if (where.name === 'camera') view = mountSingle(main, where.id, { onTitle: setTitle });
  else if (where.name === 'health') view = mountHealth(main);
  else view = mountGrid(main, { onSummary: (text) => setText(summary, text) });
  setTitle(view.title);
  const heading = main.querySelector('h1');
  if (heading && document.activeElement !== document.body) heading.focus({ preventScroll: true });
}

function showSignIn(message) {
  closeView();
  bar.hidden = true;
  setTitle('Sign in');
  view = mountSignIn(main, {
    message,
    verify: (key) => getJson('/api/cameras', { key }),
    onSignedIn: render,
  });
}

onUnauthorized(() => {
  if (!getKey()) return; // already signed out (several calls fail together)
  clearKey();
  showSignIn('The server did not accept the admin key (401): it may have been revoked. Sign in again.');
});

signOutButton.addEventListener('click', () => {
  clearKey();
  showSignIn('You are signed out.');
});

window.addEventListener('hashchange', () => {
  // "#main" (the skip link) is an anchor, not a route.
  const hash = window.location.hash;
  if (getKey() && (hash === '' || hash.startsWith('#/'))) render();
});

render();
