// "Add camera" (#/add-camera, admins): name the camera, pick its source, and get the one
// command that installs the edge on a Raspberry Pi with a one-time enrollment code
// (POST /api/cameras creates the camera and its first code; scripts/install-edge.sh).

import { postJson } from './api.js';
import { h, replaceChildren, setText } from './dom.js';
import { absoluteTime } from './time.js';

const SOURCES = [
  ['picamera2', 'Raspberry Pi camera (picamera2)'],
  ['rpicam', 'Raspberry Pi camera (rpicam-vid)'],
  ['v4l2', 'USB camera (V4L2)'],
  ['rtsp', 'IP camera (RTSP), from any Linux box'],
];

/** The one-line install command for `code`, against this server. */
export function installCommand(origin, code, source) {
  const extra = source && source !== 'picamera2' ? ` --source ${source}` : '';
  return `curl -fsSL ${origin}/install-edge.sh | sudo bash -s -- --server ${origin} --code ${code}${extra}`;
}

export function mountAddCamera(root) {
  const error = h('p', { class: 'form-error', id: 'add-camera-error', role: 'alert' });
  const name = h('input', {
    id: 'camera-name',
    name: 'name',
    required: true,
    maxlength: '64',
    autocomplete: 'off',
  });
  const source = h(
    'select',
    { id: 'camera-source', name: 'source' },
    ...SOURCES.map(([value, label]) => h('option', { value }, label)),
  );
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create camera');
  const result = h('section', { class: 'add-camera-result', id: 'add-camera-result', hidden: true });
  const form = h(
    'form',
    { class: 'add-camera', id: 'add-camera-form', method: 'post' },
    h('label', { for: 'camera-name' }, 'Name'),
    name,
    h('label', { for: 'camera-source' }, 'Source'),
    source,
    submit,
    error,
  );
  let stopped = false;

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    setText(error, '');
    submit.disabled = true;
    try {
      const created = await postJson('/api/cameras', { name: name.value.trim() });
      if (stopped) return;
      showResult(created, source.value);
      form.reset();
    } catch (err) {
      if (!stopped) setText(error, `Could not create the camera: ${err.message}`);
    } finally {
      submit.disabled = false;
    }
  });

  function showResult(created, kind) {
    const command = installCommand(window.location.origin, created.enrollment.code, kind);
    const commandBox = h('code', { id: 'install-command' }, command);
    const copied = h('span', { class: 'notice', role: 'status' });
    const copy = h('button', { type: 'button', id: 'copy-command' }, 'Copy');
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(command);
        setText(copied, 'Copied.');
      } catch {
        // No clipboard (plain http, or refused): select the text for Ctrl+C instead.
        window.getSelection().selectAllChildren(commandBox);
        setText(copied, 'Selected: press Ctrl+C to copy.');
      }
    });
    replaceChildren(
      result,
      h('h2', {}, `“${created.camera.name}” created`),
      h('p', {}, 'On the Raspberry Pi, run:'),
      h('pre', { class: 'command' }, commandBox),
      h('p', {}, copy, ' ', copied),
      h(
        'p',
        { class: 'hint' },
        'The code works once and expires ',
        h('time', { datetime: created.enrollment.expires_at, id: 'code-expiry' }, absoluteTime(created.enrollment.expires_at)),
        '. The camera appears on the grid when the Pi starts publishing.',
      ),
    );
    result.hidden = false;
  }

  replaceChildren(
    root,
    h('div', { class: 'page add-camera-page' }, h('h1', { tabindex: '-1' }, 'Add camera'), form, result),
  );
  name.focus();
  return {
    title: 'Add camera',
    destroy() {
      stopped = true;
    },
  };
}
