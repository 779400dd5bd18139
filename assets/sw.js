// The service worker, served as /sw.js (scope /): shows livecam's Web Push notifications
// and opens the dashboard when one is clicked. Nothing else: no caching, no fetch handler.
//
// A push message is the JSON the server sends (app/push.py):
//   {"title": "Person at Front door", "body": "12:03:44 · Driveway · 87 %",
//    "tag": "<camera>:<label>", "url": "/#/events/<id>",
//    "image": "/api/events/<id>/snapshot.jpg?ticket=…" | null,
//    "event_id", "camera_id", "label", "at"}

const ICON = '/assets/icon.svg';
const FALLBACK_TITLE = 'livecam';

// Take over at once: an updated worker must not wait for every tab to close before it
// shows notifications the new way.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** A same-origin URL for `value`, or null (a notification must never open another site). */
function sameOrigin(value) {
  if (typeof value !== 'string' || value === '') return null;
  try {
    const url = new URL(value, self.location.origin);
    return url.origin === self.location.origin ? url.href : null;
  } catch {
    return null;
  }
}

/** The push message as an object; a message that is not JSON is shown as plain text. */
function readMessage(data) {
  if (!data) return {};
  try {
    const message = data.json();
    return message && typeof message === 'object' ? message : {};
  } catch {
    return { body: data.text() };
  }
}

/** showNotification's arguments for a push message. */
function notificationFor(message) {
  const text = (value) => (typeof value === 'string' ? value : '');
  const options = {
    body: text(message.body),
    icon: ICON,
    badge: ICON,
    // One notification per camera and label: a newer one replaces the older and alerts again.
    tag: text(message.tag) || undefined,
    renotify: Boolean(text(message.tag)),
    data: {
      url: sameOrigin(message.url) || sameOrigin('/'),
      eventId: text(message.event_id) || null,
      cameraId: text(message.camera_id) || null,
      label: text(message.label) || null,
    },
  };
  const image = sameOrigin(message.image);
  if (image) options.image = image;
  const at = Date.parse(text(message.at));
  if (!Number.isNaN(at)) options.timestamp = at;
  return { title: text(message.title) || FALLBACK_TITLE, options };
}

self.addEventListener('push', (event) => {
  const { title, options } = notificationFor(readMessage(event.data));
  event.waitUntil(self.registration.showNotification(title, options));
});

/** Shows `url` in a dashboard window, focused (opening one if there is none). */
async function openDashboard(url) {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const ours = windows.filter((client) => new URL(client.url).origin === self.location.origin);
  const target = ours.find((client) => client.focused) || ours[0];
  if (!target) {
    await self.clients.openWindow(url);
    return;
  }
  let shown = target;
  if (target.url !== url) {
    try {
      shown = (await target.navigate(url)) || target;
    } catch {
      // A window this worker does not control cannot be navigated; the page listens for this.
      target.postMessage({ type: 'livecam.open', url });
    }
  }
  try {
    await shown.focus();
  } catch {
    // Focus needs the click's user activation; the window shows the event either way.
  }
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const url = sameOrigin(data.url) || sameOrigin('/');
  event.waitUntil(openDashboard(url));
});
