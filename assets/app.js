// The dashboard's entry point: sign-in, the header, and hash routes
//   #/                   the grid of all cameras
//   #/camera/<id>        one camera
//   #/camera/<id>/zones  its zones and privacy masks
//   #/events?…           the timeline of events (filters in the query)
//   #/events/<id>        one event
//   #/notifications      Web Push on this device, and the subscribed devices
//   #/health             health of the server, LiveKit, the database and each camera
//   #/add-camera         add a camera: the Pi's one-line install command

import { mountAddCamera } from './add-camera.js';
import { getJson, onUnauthorized, request } from './api.js';
import { clearKey, getKey, mountSignIn } from './auth.js';
import { setText } from './dom.js';
import { mountEvent, rememberTimeline } from './event-view.js';
import { mountGrid } from './grid.js';
import { mountHealth } from './health.js';
import { mountNotifications } from './notifications.js';
import { mountPasswordSignIn } from './password-signin.js';
import { mountSingle } from './single.js';
import { mountTimeline } from './timeline.js';
import { mountZoneEditor } from './zones.js';

performance.mark('livecam:app');

const bar = document.getElementById('bar');
const main = document.getElementById('main');
const summary = document.getElementById('summary');
const signOutButton = document.getElementById('sign-out');

let view = null;
/** GET /api/auth/me of a cookie (or Cloudflare Access) sign-in; null with an admin key. */
let me = null;

const signedIn = () => Boolean(getKey() || me);
/** The hash the current view was opened for (restored when leaving is refused). */
let shownHash = '';

function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** The route of the current hash; `nav` is the header link it belongs under. */
function route(raw = window.location.hash) {
  const full = raw.replace(/^#/, '') || '/';
  const [hash, query = ''] = full.split(/\?(.*)/s);
  const zones = /^\/camera\/([^/]+)\/zones$/.exec(hash);
  if (zones) return { name: 'zones', nav: 'grid', id: decode(zones[1]) };
  const single = /^\/camera\/([^/]+)$/.exec(hash);
  if (single) return { name: 'camera', nav: 'grid', id: decode(single[1]) };
  const event = /^\/events\/([^/]+)$/.exec(hash);
  if (event) return { name: 'event', nav: 'events', id: decode(event[1]) };
  if (hash === '/events' || hash === '/events/') return { name: 'events', nav: 'events', query };
  if (hash === '/notifications') return { name: 'notifications', nav: 'notifications' };
  if (hash === '/health') return { name: 'health', nav: 'health' };
  if (hash === '/add-camera') return { name: 'add-camera', nav: 'add-camera' };
  return { name: 'grid', nav: 'grid' };
}

/** Whether the current view lets us go (a view with unsaved changes asks first). */
function mayLeave() {
  return !view || typeof view.confirmLeave !== 'function' || view.confirmLeave();
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
  if (!signedIn()) {
    showSignIn('');
    return;
  }
  bar.hidden = false;
  // Viewers cannot add cameras (the server refuses it too).
  bar.querySelector('a[data-route="add-camera"]').hidden = Boolean(me && me.role !== 'admin');
  shownHash = window.location.hash;
  const where = route();
  for (const link of bar.querySelectorAll('nav a')) {
    const current = link.dataset.route === where.nav;
    if (current) link.setAttribute('aria-current', where.name === where.nav ? 'page' : 'true');
    else link.removeAttribute('aria-current');
  }
  setText(summary, '');
  const onTitle = setTitle;
  if (where.name === 'camera') view = mountSingle(main, where.id, { onTitle });
  else if (where.name === 'zones') view = mountZoneEditor(main, where.id, { onTitle });
  else if (where.name === 'events') {
    rememberTimeline(shownHash);
    view = mountTimeline(main, where.query, {
      onTitle(title) {
        setTitle(title);
        rememberTimeline(window.location.hash); // the filters, for the event page's "back"
      },
    });
  } else if (where.name === 'event') view = mountEvent(main, where.id, { onTitle });
  else if (where.name === 'notifications') view = mountNotifications(main);
  else if (where.name === 'health') view = mountHealth(main);
  else if (where.name === 'add-camera') view = mountAddCamera(main);
  else view = mountGrid(main, { onSummary: (text) => setText(summary, text) });
  setTitle(view.title);
  const heading = main.querySelector('h1');
  if (heading && document.activeElement !== document.body) heading.focus({ preventScroll: true });
}

function showSignIn(message) {
  closeView();
  bar.hidden = true;
  setTitle('Sign in');
  const password = document.createElement('div');
  const adminKey = document.createElement('div');
  main.replaceChildren(password, adminKey);
  const forms = [
    mountPasswordSignIn(password, {
      async onSignedIn() {
        me = await getJson('/api/auth/me');
        render();
      },
    }),
    mountSignIn(adminKey, {
      message,
      verify: (key) => getJson('/api/cameras', { key }),
      onSignedIn: render,
    }),
  ];
  view = { destroy: () => forms.forEach((f) => f.destroy()) };
}

/** A session cookie or Cloudflare Access signs in without a form. */
async function findSession() {
  if (getKey()) return;
  try {
    const response = await request('/api/auth/me', { key: '', allow: [401, 403] });
    me = response.ok ? await response.json() : null;
  } catch {
    me = null; // the server is unreachable: the form says so when used
  }
}

onUnauthorized(() => {
  if (getKey()) {
    clearKey();
    showSignIn('The server did not accept the admin key (401): it may have been revoked. Sign in again.');
  } else if (me) {
    me = null;
    showSignIn('Your session has ended. Sign in again.');
  } // else: already signed out (several calls fail together)
});

signOutButton.addEventListener('click', async () => {
  if (!mayLeave()) return;
  const session = me;
  clearKey();
  me = null;
  if (session && session.method === 'session') {
    try {
      await request('/api/auth/logout', { method: 'POST', key: '', allow: [401] });
    } catch {
      // Unreachable: the cookie expires on its own; the page forgets it either way.
    }
  }
  showSignIn(
    session && session.method === 'cf_access'
      ? 'Signed out here; Cloudflare Access still knows you (close the browser to end it).'
      : 'You are signed out.',
  );
});

window.addEventListener('hashchange', () => {
  // "#main" (the skip link) is an anchor, not a route.
  const hash = window.location.hash;
  if (!signedIn() || !(hash === '' || hash.startsWith('#/'))) return;
  if (!mayLeave()) {
    // Stay: put the address back without a second hashchange.
    history.replaceState(history.state, '', shownHash || '#/');
    return;
  }
  render();
});

findSession().then(render);
