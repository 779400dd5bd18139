// Notifications (#/notifications): turn Web Push on for this browser — which cameras,
// which labels, quiet hours — and see, change and remove every subscribed device.
//
//   GET    /api/push/vapid-public-key
//   POST   /api/push/subscriptions      {subscription, device, cameras|null, labels, quiet_hours|null, tz}
//   GET    /api/push/subscriptions
//   PATCH  /api/push/subscriptions/<id> (only what changed)
//   DELETE /api/push/subscriptions/<id>
//   POST   /api/push/subscriptions/<id>/test

import { getJson, postJson, request } from './api.js';
import { h, replaceChildren, setText } from './dom.js';
import { LABELS, labelIcon, labelInfo } from './labels.js';
import { absoluteTime, relativeTime } from './time.js';
import {
  browserTimeZone,
  currentSubscription,
  guessDeviceName,
  permissionState,
  pushSupport,
  subscribePush,
} from './webpush.js';

const DEFAULT_LABELS = ['person', 'vehicle', 'pet'];

function subscriptionPath(id, suffix = '') {
  return `/api/push/subscriptions/${encodeURIComponent(id)}${suffix}`;
}

/**
 * The preference fields (cameras, labels, quiet hours) for `prefs`, ids prefixed with
 * `prefix`. `read()` returns {cameras, labels, quiet_hours, tz} or throws an Error
 * whose message says what to fix.
 */
export function preferenceFields(prefix, cameras, prefs = {}) {
  const chosen = prefs.cameras ?? null;
  const allCameras = h('input', {
    type: 'radio',
    name: `${prefix}-cameras`,
    id: `${prefix}-cameras-all`,
    value: 'all',
    checked: chosen === null,
  });
  const someCameras = h('input', {
    type: 'radio',
    name: `${prefix}-cameras`,
    id: `${prefix}-cameras-some`,
    value: 'some',
    checked: chosen !== null,
  });
  const cameraBoxes = cameras.map((camera) =>
    h('input', {
      type: 'checkbox',
      value: camera.id,
      id: `${prefix}-camera-${camera.id}`,
      checked: chosen !== null && chosen.includes(camera.id),
    }),
  );
  const cameraList = h(
    'div',
    { class: 'camera-choices' },
    cameras.map((camera, i) =>
      h('label', { class: 'check', for: cameraBoxes[i].id }, cameraBoxes[i], camera.name),
    ),
  );
  const syncCameras = () => {
    for (const box of cameraBoxes) box.disabled = allCameras.checked;
  };
  allCameras.addEventListener('change', syncCameras);
  someCameras.addEventListener('change', syncCameras);
  syncCameras();

  const labels = prefs.labels ?? DEFAULT_LABELS;
  const labelBoxes = LABELS.map((info) =>
    h('input', {
      type: 'checkbox',
      value: info.id,
      id: `${prefix}-label-${info.id}`,
      checked: labels.includes(info.id),
    }),
  );

  const quiet = prefs.quiet_hours ?? null;
  const quietOn = h('input', { type: 'checkbox', id: `${prefix}-quiet`, checked: quiet !== null });
  const quietStart = h('input', {
    type: 'time',
    id: `${prefix}-quiet-start`,
    value: quiet ? quiet.start : '22:00',
  });
  const quietEnd = h('input', {
    type: 'time',
    id: `${prefix}-quiet-end`,
    value: quiet ? quiet.end : '07:00',
  });
  const tz = h('input', {
    type: 'text',
    id: `${prefix}-tz`,
    value: (quiet && quiet.tz) || prefs.tz || browserTimeZone(),
    autocomplete: 'off',
    spellcheck: 'false',
    maxlength: '64',
  });
  const syncQuiet = () => {
    quietStart.disabled = quietEnd.disabled = !quietOn.checked;
  };
  quietOn.addEventListener('change', syncQuiet);
  syncQuiet();

  const element = h(
    'div',
    { class: 'prefs' },
    h(
      'fieldset',
      { class: 'field' },
      h('legend', {}, 'Cameras'),
      h(
        'label',
        { class: 'check', for: allCameras.id },
        allCameras,
        'All cameras (also ones added later)',
      ),
      h('label', { class: 'check', for: someCameras.id }, someCameras, 'Only these:'),
      cameraList,
    ),
    h(
      'fieldset',
      { class: 'field labels' },
      h('legend', {}, 'Notify about'),
      LABELS.map((info, i) =>
        h(
          'label',
          { class: 'check', for: labelBoxes[i].id, dataset: { label: info.id } },
          labelBoxes[i],
          labelIcon(info.id),
          info.name,
        ),
      ),
    ),
    h(
      'fieldset',
      { class: 'field quiet' },
      h('legend', {}, 'Quiet hours'),
      h('label', { class: 'check', for: quietOn.id }, quietOn, 'No notifications between'),
      h(
        'span',
        { class: 'quiet-times' },
        h('label', { class: 'visually-hidden', for: quietStart.id }, 'Quiet from'),
        quietStart,
        h('span', { 'aria-hidden': 'true' }, ' and '),
        h('label', { class: 'visually-hidden', for: quietEnd.id }, 'Quiet until'),
        quietEnd,
      ),
      h('label', { for: tz.id }, 'Time zone'),
      tz,
      h('p', { class: 'hint' }, 'Also used for the times written in notifications.'),
    ),
  );

  function read() {
    const cameraIds = someCameras.checked
      ? cameraBoxes.filter((b) => b.checked).map((b) => b.value)
      : null;
    if (cameraIds !== null && cameraIds.length === 0) {
      throw new Error('Tick at least one camera, or choose “All cameras”.');
    }
    const labelIds = labelBoxes.filter((b) => b.checked).map((b) => b.value);
    if (labelIds.length === 0) {
      throw new Error('Tick at least one kind of event to be notified about.');
    }
    const zone = tz.value.trim();
    if (!zone) throw new Error('Enter a time zone, such as Europe/Berlin.');
    let quietHours = null;
    if (quietOn.checked) {
      if (!quietStart.value || !quietEnd.value) {
        throw new Error('Enter when the quiet hours start and end.');
      }
      if (quietStart.value === quietEnd.value) {
        throw new Error('Quiet hours must start and end at different times.');
      }
      quietHours = { start: quietStart.value, end: quietEnd.value, tz: zone };
    }
    return { cameras: cameraIds, labels: labelIds, quiet_hours: quietHours, tz: zone };
  }

  return { element, read };
}

/** "Person, Vehicle · all cameras · quiet 22:00–07:00 (Europe/Berlin)". */
function summary(sub, cameraNames) {
  const labels = sub.labels.map((l) => labelInfo(l).name).join(', ');
  const cameras =
    sub.cameras === null
      ? 'all cameras'
      : sub.cameras.map((id) => cameraNames.get(id) ?? id).join(', ');
  const quiet = sub.quiet_hours
    ? `quiet ${sub.quiet_hours.start}–${sub.quiet_hours.end} (${sub.quiet_hours.tz})`
    : 'no quiet hours';
  return `${labels} · ${cameras} · ${quiet}`;
}

export function mountNotifications(root) {
  const heading = h('h1', { id: 'notifications-title', tabindex: '-1' }, 'Notifications');
  const support = h('p', { class: 'push-support', id: 'push-support', role: 'status' });
  const deviceName = h('input', {
    id: 'push-device',
    type: 'text',
    maxlength: '100',
    required: true,
    autocomplete: 'off',
    value: guessDeviceName(),
  });
  const prefsSlot = h('div', { class: 'prefs-slot' });
  const enableButton = h(
    'button',
    { type: 'submit', class: 'primary', id: 'push-enable' },
    'Enable on this device',
  );
  const disableButton = h(
    'button',
    { type: 'button', id: 'push-disable', hidden: true },
    'Turn off on this device',
  );
  const formError = h('p', { class: 'form-error', id: 'push-error', role: 'alert', hidden: true });
  const formStatus = h('p', { class: 'form-status', role: 'status' });
  const form = h(
    'form',
    { class: 'push-form', 'aria-labelledby': 'this-device-title', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'push-device' }, 'Device name'), deviceName),
    prefsSlot,
    formError,
    h('div', { class: 'form-buttons' }, enableButton, disableButton),
    formStatus,
  );
  const devices = h('ul', { class: 'device-list', 'aria-labelledby': 'devices-title' });
  const devicesEmpty = h('p', { class: 'hint', hidden: true }, 'No device gets notifications yet.');
  const listNotice = h('p', { class: 'notice', role: 'alert', hidden: true });
  const view = h(
    'section',
    { class: 'notifications-view', 'aria-labelledby': 'notifications-title' },
    heading,
    h(
      'p',
      { class: 'hint' },
      'Get a notification on your phone or computer when a camera sees something, ' +
        'even with the dashboard closed.',
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'this-device-title' },
      h('h2', { id: 'this-device-title' }, 'This device'),
      support,
      form,
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'devices-title' },
      h('h2', { id: 'devices-title' }, 'Subscribed devices'),
      listNotice,
      devicesEmpty,
      devices,
    ),
  );
  root.replaceChildren(view);

  let cameras = [];
  let cameraNames = new Map();
  let prefs = null;
  let subscriptions = [];
  let mine = null; // this browser's PushSubscription, when it has one
  let stopped = false;
  let busy = false;

  function showError(text) {
    setText(formError, text);
    formError.hidden = !text;
  }

  function renderSupport() {
    const problem = pushSupport();
    const permission = permissionState();
    let text;
    let state;
    if (problem) {
      text = problem.message;
      state = 'unsupported';
    } else if (permission === 'denied') {
      text =
        'Notifications are blocked for this site. Allow them in the browser’s site settings ' +
        '(the icon left of the address), then enable them here.';
      state = 'denied';
    } else if (mine && subscriptions.some((s) => s.endpoint === mine.endpoint)) {
      text = 'This device gets notifications.';
      state = 'on';
    } else {
      text = 'This device gets no notifications yet.';
      state = 'off';
    }
    setText(support, text);
    support.dataset.state = state;
    const on = state === 'on';
    setText(enableButton, on ? 'Save for this device' : 'Enable on this device');
    enableButton.disabled = busy || state === 'unsupported';
    disableButton.hidden = !on;
    disableButton.disabled = busy;
  }

  function renderPrefs(source) {
    prefs = preferenceFields('push', cameras, source ?? {});
    replaceChildren(prefsSlot, prefs.element);
  }

  function renderDevices() {
    devicesEmpty.hidden = subscriptions.length > 0;
    replaceChildren(
      devices,
      subscriptions.map((sub) => {
        const here = Boolean(mine && mine.endpoint === sub.endpoint);
        const details = h('p', { class: 'device-summary' }, summary(sub, cameraNames));
        const sent = h(
          'p',
          { class: 'hint' },
          `via ${sub.endpoint_host} · added ${relativeTime(sub.created_at)} · last notification ` +
            (sub.last_sent_at ? relativeTime(sub.last_sent_at) : 'never'),
        );
        sent.title = absoluteTime(sub.created_at);
        const error = sub.last_error
          ? h('p', { class: 'device-error' }, `Last delivery failed: ${sub.last_error}`)
          : null;
        const message = h('p', { class: 'device-message', role: 'status' });
        const editSlot = h('div', { class: 'device-edit' });
        const edit = h(
          'button',
          { type: 'button', class: 'edit-device', 'aria-expanded': 'false' },
          'Edit',
        );
        const test = h('button', { type: 'button', class: 'test-device' }, 'Send test');
        const removeButton = h(
          'button',
          { type: 'button', class: 'remove-device', 'aria-label': `Remove ${sub.device}` },
          'Remove',
        );
        const item = h(
          'li',
          { class: 'device', dataset: { subscriptionId: sub.id, here: String(here) } },
          h(
            'h3',
            { class: 'device-name' },
            sub.device,
            here ? h('span', { class: 'pill ok' }, 'this device') : null,
          ),
          details,
          sent,
          error,
          h('div', { class: 'device-buttons' }, edit, test, removeButton),
          message,
          editSlot,
        );
        edit.addEventListener('click', () => toggleEdit(sub, item, editSlot, edit));
        test.addEventListener('click', async () => {
          test.disabled = true;
          setText(message, 'Sending…');
          try {
            await postJson(subscriptionPath(sub.id, '/test'));
            setText(message, 'Sent. The notification should appear on that device within seconds.');
          } catch (err) {
            if (err && err.status === 401) return;
            setText(message, `Not sent: ${err.message}`);
            if (err.code === 'subscription_gone') refreshList();
          } finally {
            test.disabled = false;
          }
        });
        removeButton.addEventListener('click', () => remove(sub, removeButton, message));
        return item;
      }),
    );
  }

  function toggleEdit(sub, item, slot, button) {
    if (slot.childElementCount) {
      slot.replaceChildren();
      button.setAttribute('aria-expanded', 'false');
      return;
    }
    button.setAttribute('aria-expanded', 'true');
    const prefix = `edit-${sub.id}`;
    const name = h('input', {
      id: `${prefix}-device`,
      type: 'text',
      value: sub.device,
      maxlength: '100',
    });
    const fields = preferenceFields(prefix, cameras, sub);
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const editForm = h(
      'form',
      { class: 'edit-form', 'aria-label': `Settings of ${sub.device}`, novalidate: true },
      h('div', { class: 'field' }, h('label', { for: name.id }, 'Device name'), name),
      fields.element,
      error,
      h('div', { class: 'form-buttons' }, save, cancel),
    );
    cancel.addEventListener('click', () => toggleEdit(sub, item, slot, button));
    editForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      let body;
      try {
        body = { device: name.value.trim(), ...fields.read() };
        if (!body.device) throw new Error('Give the device a name.');
      } catch (err) {
        setText(error, err.message);
        error.hidden = false;
        return;
      }
      save.disabled = true;
      try {
        await request(subscriptionPath(sub.id), { method: 'PATCH', body });
        await refreshList();
      } catch (err) {
        if (err && err.status === 401) return;
        setText(error, `Not saved: ${err.message}`);
        error.hidden = false;
        save.disabled = false;
      }
    });
    slot.replaceChildren(editForm);
    name.focus();
  }

  async function remove(sub, button, message) {
    button.disabled = true;
    try {
      await request(subscriptionPath(sub.id), { method: 'DELETE', allow: [404] });
      if (mine && mine.endpoint === sub.endpoint) {
        await mine.unsubscribe().catch(() => {});
        mine = null;
      }
      await refreshList();
      formStatus.textContent = `Removed “${sub.device}”.`;
    } catch (err) {
      if (err && err.status === 401) return;
      setText(message, `Not removed: ${err.message}`);
      button.disabled = false;
    }
  }

  async function refreshList() {
    try {
      subscriptions = await getJson('/api/push/subscriptions');
      if (stopped) return;
      listNotice.hidden = true;
    } catch (err) {
      if (stopped || (err && err.status === 401)) return;
      setText(listNotice, `Cannot load the devices: ${err.message}. Reload to try again.`);
      listNotice.hidden = false;
    }
    renderDevices();
    renderSupport();
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (busy) return;
    showError('');
    let body;
    try {
      const device = deviceName.value.trim();
      if (!device) throw new Error('Give this device a name, such as “Anna’s phone”.');
      body = { device, ...prefs.read() };
    } catch (err) {
      showError(err.message);
      return;
    }
    busy = true;
    renderSupport();
    setText(formStatus, 'Asking the browser and its push service (this can take a few seconds)…');
    try {
      const subscription = await subscribePush();
      mine = subscription;
      setText(formStatus, 'Registering this device with the server…');
      await postJson('/api/push/subscriptions', { subscription: subscription.toJSON(), ...body });
      setText(formStatus, 'Done: this device gets notifications. “Send test” below tries one.');
      await refreshList();
    } catch (err) {
      if (err && err.status === 401) return;
      setText(formStatus, '');
      showError(err && err.message ? err.message : String(err));
    } finally {
      busy = false;
      if (!stopped) renderSupport();
    }
  });

  disableButton.addEventListener('click', async () => {
    const sub = mine && subscriptions.find((s) => s.endpoint === mine.endpoint);
    if (sub) await remove(sub, disableButton, formStatus);
  });

  async function load() {
    try {
      cameras = await getJson('/api/cameras');
    } catch (err) {
      if (err && err.status === 401) return;
      cameras = [];
    }
    if (stopped) return;
    cameraNames = new Map(cameras.map((c) => [c.id, c.name]));
    mine = await currentSubscription();
    await refreshList();
    if (stopped) return;
    // This device already subscribed: its settings fill the form.
    const existing = mine && subscriptions.find((s) => s.endpoint === mine.endpoint);
    if (existing) deviceName.value = existing.device;
    renderPrefs(existing ?? null);
  }

  renderPrefs(null);
  renderSupport();
  load();
  return {
    title: 'Notifications',
    destroy() {
      stopped = true;
      view.remove();
    },
  };
}
