// The zone and privacy-mask editor of one camera (#/camera/<id>/zones), opened with the
// single view's "Zones" button. The camera's latest snapshot is the background; click
// on it to add points to the selected polygon, drag points to move them (or focus one
// and use the arrow keys; Delete removes it), name each polygon, make it a zone (whose
// chosen labels alert) or a mask (blacked out of every picture and of detection).
// Save sends the whole list: PUT /api/cameras/<id>/zones; the server tells the edge.
//
// Points are normalised 0..1 of the picture (contract 2). Leaving with unsaved changes
// asks first (confirmLeave, and the browser's own prompt on reload or close).

import { cameraPath, getJson, request } from './api.js';
import { h, replaceChildren, setText, svgElement } from './dom.js';
import { LABELS } from './labels.js';
import { fetchSnapshot } from './snapshot.js';

/** Without a snapshot the canvas is 16:9, the shape of most cameras. */
const FALLBACK_SIZE = { width: 1600, height: 900 };
/** Handle radius and hit distance, in CSS pixels. */
const HANDLE_PX = 7;
const NUDGE = 0.005;
const MAX_POINTS = 64;
const MAX_POLYGONS = 32;
const UNSAVED = 'Unsaved changes.';

const svg = svgElement;

const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;

/** What PUT sends for the editor's polygons (ids kept; new ones get theirs from the server). */
export function zonesBody(polygons) {
  return {
    zones: polygons.map((p) => {
      const zone = { name: p.name.trim(), kind: p.kind, points: p.points.map(([x, y]) => [x, y]) };
      if (p.id) zone.id = p.id;
      if (p.kind === 'zone') zone.labels = [...p.labels];
      return zone;
    }),
  };
}

/** Problems the server would refuse anyway, said before sending: [index, message] pairs. */
export function checkPolygons(polygons) {
  const problems = [];
  const names = new Map();
  polygons.forEach((p, i) => {
    const name = p.name.trim();
    if (!name) problems.push([i, 'needs a name']);
    else if (names.has(name.toLowerCase())) {
      problems.push([i, `has the same name as polygon ${names.get(name.toLowerCase()) + 1}`]);
    } else names.set(name.toLowerCase(), i);
    if (p.points.length < 3) problems.push([i, `needs at least 3 points (has ${p.points.length})`]);
  });
  return problems;
}

/** The polygon index an API error message names ("zones[2] (…)" or "zones.2.points…"). */
export function errorIndex(message) {
  const match = /zones(?:\[(\d+)\]|\.(\d+))/.exec(message ?? '');
  return match ? Number(match[1] ?? match[2]) : null;
}

export function mountZoneEditor(root, cameraId, { onTitle = () => {} } = {}) {
  const heading = h('h1', { id: 'zones-title', tabindex: '-1' }, 'Zones');
  const back = h('a', { class: 'back', href: `#/camera/${encodeURIComponent(cameraId)}` }, '← Camera');
  const addZone = h('button', { type: 'button', class: 'add-zone' }, 'Add zone');
  const addMask = h('button', { type: 'button', class: 'add-mask' }, 'Add mask');
  const notice = h('p', { class: 'notice', role: 'status', hidden: true });
  const help = h(
    'p',
    { class: 'hint zones-help', id: 'zones-help' },
    'Add a zone or a mask, then click on the picture to place its corners; ' +
      'click the first corner (or “Finish outline”) to close it. Drag corners to move them, ' +
      'or focus one and use the arrow keys; Delete removes it.',
  );
  const background = h('img', { class: 'zones-bg', alt: '', hidden: true });
  const drawing = svg('svg', {
    class: 'zones-svg',
    role: 'group',
    'aria-label': 'Picture of the camera with its zones and masks',
    'aria-describedby': 'zones-help',
    preserveAspectRatio: 'none',
  });
  const canvas = h('div', { class: 'zones-canvas', dataset: { mode: 'idle' } }, background, drawing);
  const list = h('ol', { class: 'zone-list' });
  const formError = h('p', { class: 'form-error', id: 'zones-error', role: 'alert', hidden: true });
  const status = h('p', { class: 'zones-status', role: 'status' });
  const saveButton = h('button', { type: 'submit', class: 'primary' }, 'Save');
  const revertButton = h('button', { type: 'button' }, 'Undo changes');
  const form = h(
    'form',
    { class: 'zones-form', 'aria-label': 'Zones and masks', novalidate: true },
    h('p', { class: 'zones-empty hint', hidden: true }, 'No zones or masks: the whole picture counts.'),
    list,
    formError,
    h('div', { class: 'form-buttons' }, saveButton, revertButton),
    status,
  );
  const view = h(
    'section',
    { class: 'zones-view', 'aria-labelledby': 'zones-title' },
    h(
      'div',
      { class: 'single-head' },
      back,
      heading,
      h('div', { class: 'toolbar' }, addZone, addMask),
    ),
    notice,
    help,
    h('div', { class: 'zones-body' }, h('div', { class: 'zones-stage' }, canvas), form),
  );
  root.replaceChildren(view);

  let size = { ...FALLBACK_SIZE };
  let polygons = []; // {key, id, name, kind, labels: [], points: [[x, y]]}
  let saved = '[]';
  let selected = null; // key
  let drawingKey = null; // key of the polygon whose outline is being drawn
  let drag = null; // {key, index, pointerId, moved}
  let keys = 0;
  let loaded = false;
  let saving = false;
  let stopped = false;
  let pictureUrl = null;
  let camera = null;

  const polygonOf = (key) => polygons.find((p) => p.key === key);
  const snapshotOf = () => JSON.stringify(zonesBody(polygons));
  const isDirty = () => loaded && snapshotOf() !== saved;

  function say(text) {
    setText(notice, text);
    notice.hidden = !text;
  }

  function showError(text) {
    setText(formError, text);
    formError.hidden = !text;
  }

  // --- model ---------------------------------------------------------------------------

  function fromServer(zones) {
    return zones.map((z) => ({
      key: ++keys,
      id: z.id,
      name: z.name,
      kind: z.kind,
      labels: z.kind === 'zone' ? [...(z.labels ?? [])] : [],
      points: z.points.map(([x, y]) => [x, y]),
    }));
  }

  function changed({ list: relist = true } = {}) {
    if (relist) renderList();
    renderDrawing();
    const dirty = isDirty();
    view.dataset.dirty = String(dirty);
    saveButton.disabled = saving || !loaded;
    revertButton.disabled = saving || !dirty;
    const drawn = polygonOf(drawingKey);
    if (drawn) {
      const n = drawn.points.length;
      setText(
        status,
        n < 3
          ? `Click on the picture to place the corners of “${drawn.name}” (${n} so far).`
          : `“${drawn.name}” has ${n} corners: click its first corner, or “Finish outline”, ` +
            'to close it.',
      );
    } else if (dirty) setText(status, UNSAVED);
    else if (status.textContent === UNSAVED || status.textContent.startsWith('Click')) {
      setText(status, '');
    }
    addZone.disabled = addMask.disabled = polygons.length >= MAX_POLYGONS || !loaded;
  }

  function select(key, { focusName = false } = {}) {
    if (drawingKey !== null && drawingKey !== key) finishOutline();
    selected = key;
    changed();
    if (focusName) {
      const input = list.querySelector(`li[data-key="${key}"] input.zone-name`);
      if (input) input.focus();
    }
  }

  function add(kind) {
    const count = polygons.filter((p) => p.kind === kind).length + 1;
    const base = kind === 'zone' ? 'Zone' : 'Mask';
    let name = `${base} ${count}`;
    for (let n = count; polygons.some((p) => p.name.toLowerCase() === name.toLowerCase()); n += 1) {
      name = `${base} ${n + 1}`;
    }
    const polygon = { key: ++keys, id: null, name, kind, labels: [], points: [] };
    polygons.push(polygon);
    selected = polygon.key;
    drawingKey = polygon.key;
    changed();
    showError('');
    const input = list.querySelector(`li[data-key="${polygon.key}"] input.zone-name`);
    if (input) input.focus();
  }

  function finishOutline() {
    const polygon = polygonOf(drawingKey);
    drawingKey = null;
    changed();
    if (polygon && polygon.points.length < 3) {
      setText(status, `“${polygon.name}” needs at least 3 corners: click on the picture to add more.`);
    }
  }

  function remove(key) {
    const index = polygons.findIndex((p) => p.key === key);
    if (index < 0) return;
    polygons.splice(index, 1);
    if (drawingKey === key) drawingKey = null;
    if (selected === key) selected = polygons[Math.min(index, polygons.length - 1)]?.key ?? null;
    changed();
    addZone.focus();
  }

  // --- the picture ---------------------------------------------------------------------

  function pointAt(event) {
    const rect = drawing.getBoundingClientRect();
    return [round((event.clientX - rect.left) / rect.width), round((event.clientY - rect.top) / rect.height)];
  }

  /** viewBox units per CSS pixel (the drawing scales with the page). */
  function unitsPerPixel() {
    const rect = drawing.getBoundingClientRect();
    return rect.width > 0 ? size.width / rect.width : 1;
  }

  function renderDrawing() {
    drawing.setAttribute('viewBox', `0 0 ${size.width} ${size.height}`);
    const unit = unitsPerPixel();
    const nodes = [];
    for (const polygon of polygons) {
      const isSelected = polygon.key === selected;
      const coords = polygon.points.map(([x, y]) => `${x * size.width},${y * size.height}`).join(' ');
      const group = svg('g', {
        class: `shape ${polygon.kind}${isSelected ? ' selected' : ''}`,
        'data-key': polygon.key,
      });
      const shape = svg(polygon.points.length >= 3 && polygon.key !== drawingKey ? 'polygon' : 'polyline', {
        points: coords,
        class: 'outline',
      });
      shape.addEventListener('pointerdown', (event) => {
        // On a shape that is not being drawn: select it (a click while drawing adds a point).
        if (drawingKey !== null) return;
        event.stopPropagation();
        select(polygon.key);
      });
      group.append(shape);
      if (polygon.points.length) {
        const [cx, cy] = centroid(polygon.points);
        const label = svg('text', {
          x: cx * size.width,
          y: cy * size.height,
          class: 'shape-name',
          'font-size': 14 * unit,
          'stroke-width': 3 * unit,
        });
        label.textContent = polygon.name;
        group.append(label);
      }
      if (isSelected) {
        polygon.points.forEach(([x, y], index) => group.append(handle(polygon, index, x, y, unit)));
      }
      nodes.push(group);
    }
    drawing.replaceChildren(...nodes);
    canvas.dataset.mode = drawingKey !== null ? 'drawing' : 'idle';
  }

  function handle(polygon, index, x, y, unit) {
    const first = index === 0 && polygon.key === drawingKey && polygon.points.length >= 3;
    const circle = svg('circle', {
      cx: x * size.width,
      cy: y * size.height,
      r: (first ? HANDLE_PX * 1.5 : HANDLE_PX) * unit,
      class: first ? 'handle close' : 'handle',
      tabindex: 0,
      role: 'button',
      'aria-label': `Corner ${index + 1} of ${polygon.name}${first ? ' (click to close the outline)' : ''}`,
      'data-index': index,
    });
    circle.addEventListener('pointerdown', (event) => {
      event.stopPropagation();
      event.preventDefault();
      // Captured by the drawing, not the circle: the circles are redrawn as it moves.
      drawing.setPointerCapture(event.pointerId);
      drag = { key: polygon.key, index, pointerId: event.pointerId, moved: false, first };
    });
    circle.addEventListener('dblclick', (event) => {
      event.stopPropagation();
      removePoint(polygon, index);
    });
    circle.addEventListener('keydown', (event) => {
      const step = event.shiftKey ? NUDGE * 4 : NUDGE;
      const moves = {
        ArrowLeft: [-step, 0],
        ArrowRight: [step, 0],
        ArrowUp: [0, -step],
        ArrowDown: [0, step],
      };
      if (moves[event.key]) {
        event.preventDefault();
        const [dx, dy] = moves[event.key];
        const [px, py] = polygon.points[index];
        polygon.points[index] = [round(px + dx), round(py + dy)];
        changed({ list: false });
        focusHandle(polygon.key, index);
      } else if (event.key === 'Delete' || event.key === 'Backspace') {
        event.preventDefault();
        removePoint(polygon, index);
        focusHandle(polygon.key, Math.max(0, index - 1));
      } else if ((event.key === 'Enter' || event.key === ' ') && first) {
        event.preventDefault();
        finishOutline();
      }
    });
    return circle;
  }

  function focusHandle(key, index) {
    const circle = drawing.querySelector(`g[data-key="${key}"] circle[data-index="${index}"]`);
    if (circle) circle.focus();
  }

  function removePoint(polygon, index) {
    polygon.points.splice(index, 1);
    changed();
  }

  drawing.addEventListener('pointermove', (event) => {
    if (!drag || event.pointerId !== drag.pointerId) return;
    const polygon = polygonOf(drag.key);
    if (!polygon) return;
    drag.moved = true;
    polygon.points[drag.index] = pointAt(event);
    changed({ list: false });
  });

  function endDrag(event) {
    if (!drag || event.pointerId !== drag.pointerId) return;
    const done = drag;
    drag = null;
    if (!done.moved && done.first) finishOutline(); // a click on the first corner closes it
    else changed();
  }
  drawing.addEventListener('pointerup', endDrag);
  drawing.addEventListener('pointercancel', endDrag);

  drawing.addEventListener('pointerdown', (event) => {
    if (event.button !== 0 || !loaded) return;
    let polygon = polygonOf(drawingKey);
    if (!polygon) {
      // Clicking on the picture with a polygon selected that has too few corners keeps
      // drawing it; otherwise a click on empty picture just deselects.
      const current = polygonOf(selected);
      if (current && current.points.length < 3) {
        drawingKey = current.key;
        polygon = current;
      } else {
        selected = null;
        changed();
        return;
      }
    }
    if (polygon.points.length >= MAX_POINTS) {
      setText(status, `A polygon has at most ${MAX_POINTS} corners.`);
      return;
    }
    polygon.points.push(pointAt(event));
    changed();
  });

  new ResizeObserver(() => renderDrawing()).observe(canvas);

  // --- the list ------------------------------------------------------------------------

  function renderList() {
    form.querySelector('.zones-empty').hidden = polygons.length > 0 || !loaded;
    const items = polygons.map((polygon, index) => {
      const prefix = `zone-${polygon.key}`;
      const name = h('input', {
        id: `${prefix}-name`,
        class: 'zone-name',
        type: 'text',
        value: polygon.name,
        maxlength: '100',
        required: true,
        autocomplete: 'off',
      });
      name.addEventListener('input', () => {
        polygon.name = name.value;
        changed({ list: false });
      });
      const kind = h(
        'select',
        { id: `${prefix}-kind`, class: 'zone-kind' },
        h('option', { value: 'zone' }, 'Zone (alerts)'),
        h('option', { value: 'mask' }, 'Privacy mask'),
      );
      kind.value = polygon.kind;
      kind.addEventListener('change', () => {
        polygon.kind = kind.value;
        if (polygon.kind === 'mask') polygon.labels = [];
        changed();
        const again = list.querySelector(`#${prefix}-kind`);
        if (again) again.focus();
      });
      const labels =
        polygon.kind === 'zone'
          ? h(
              'fieldset',
              { class: 'zone-labels' },
              h('legend', {}, 'Alert for'),
              LABELS.map((info) => {
                const box = h('input', {
                  type: 'checkbox',
                  value: info.id,
                  checked: polygon.labels.includes(info.id),
                });
                box.addEventListener('change', () => {
                  polygon.labels = LABELS.map((l) => l.id).filter((id) =>
                    id === info.id ? box.checked : polygon.labels.includes(id),
                  );
                  changed({ list: false });
                  setText(allHint, polygon.labels.length ? '' : 'None ticked: every label alerts.');
                });
                return h('label', { class: 'check' }, box, info.name);
              }),
            )
          : h('p', { class: 'hint' }, 'Blacked out in every picture livecam makes; nothing is detected here.');
      const allHint = h(
        'p',
        { class: 'hint' },
        polygon.kind === 'zone' && !polygon.labels.length ? 'None ticked: every label alerts.' : '',
      );
      const drawingThis = polygon.key === drawingKey;
      const outlineButton = h(
        'button',
        { type: 'button', class: 'outline-button' },
        drawingThis ? 'Finish outline' : 'Add corners',
      );
      outlineButton.addEventListener('click', () => {
        if (drawingKey === polygon.key) finishOutline();
        else {
          selected = polygon.key;
          drawingKey = polygon.key;
          changed();
        }
      });
      const deleteButton = h(
        'button',
        { type: 'button', class: 'delete-zone', 'aria-label': `Delete ${polygon.name || 'this polygon'}` },
        'Delete',
      );
      deleteButton.addEventListener('click', () => remove(polygon.key));
      const selectButton = h(
        'button',
        {
          type: 'button',
          class: 'select-zone',
          'aria-pressed': String(polygon.key === selected),
        },
        polygon.key === selected ? 'Selected' : 'Select',
      );
      selectButton.addEventListener('click', () => select(polygon.key, { focusName: true }));
      return h(
        'li',
        {
          class: `zone-item ${polygon.kind}`,
          dataset: { key: String(polygon.key), index: String(index), kind: polygon.kind },
          'aria-current': polygon.key === selected ? 'true' : null,
        },
        h(
          'div',
          { class: 'zone-row' },
          h('label', { for: `${prefix}-name` }, polygon.kind === 'zone' ? 'Zone name' : 'Mask name'),
          name,
        ),
        h('div', { class: 'zone-row' }, h('label', { for: `${prefix}-kind` }, 'Kind'), kind),
        labels,
        allHint,
        h('p', { class: 'hint zone-points' }, `${polygon.points.length} corners`),
        h('div', { class: 'zone-buttons' }, selectButton, outlineButton, deleteButton),
      );
    });
    // Keep the focused field across a re-render (typing in a name re-renders nothing).
    const active = document.activeElement;
    const activeId = active && list.contains(active) ? active.id : null;
    replaceChildren(list, items);
    if (activeId) document.getElementById(activeId)?.focus();
  }

  // --- loading and saving --------------------------------------------------------------

  async function loadPicture() {
    try {
      const blob = await fetchSnapshot(cameraId);
      if (stopped) return;
      pictureUrl = URL.createObjectURL(blob);
      background.addEventListener(
        'load',
        () => {
          if (background.naturalWidth && background.naturalHeight) {
            size = { width: background.naturalWidth, height: background.naturalHeight };
          }
          canvas.style.setProperty('--aspect', String(size.width / size.height));
          background.hidden = false;
          canvas.dataset.picture = 'yes';
          renderDrawing();
        },
        { once: true },
      );
      background.src = pictureUrl;
      background.alt = `Latest picture from ${camera ? camera.name : cameraId}`;
    } catch (err) {
      if (stopped || (err && err.status === 401)) return;
      canvas.dataset.picture = 'no';
      const reason = String(err && err.message ? err.message : err).replace(/\.$/, '');
      say(
        `No picture from the camera right now (${reason}). ` +
          'You can still draw: corners are placed relative to the whole picture.',
      );
    }
  }

  async function load() {
    try {
      const [cam, zones] = await Promise.all([
        getJson(cameraPath(cameraId)),
        getJson(cameraPath(cameraId, '/zones')),
      ]);
      if (stopped) return;
      camera = cam;
      setText(heading, `Zones · ${cam.name}`);
      setText(back, `← ${cam.name}`);
      onTitle(`Zones · ${cam.name}`);
      polygons = fromServer(zones.zones ?? []);
      selected = polygons[0]?.key ?? null;
      loaded = true;
      saved = snapshotOf();
      changed();
      loadPicture();
    } catch (err) {
      if (stopped || (err && err.status === 401)) return;
      if (err && err.status === 404) {
        setText(heading, 'No such camera');
        say(`There is no camera with id "${cameraId}".`);
      } else {
        say(`Cannot load the zones: ${err && err.message ? err.message : err}. Reload to try again.`);
      }
    }
  }

  function markInvalid(index) {
    for (const item of list.children) {
      const bad = index !== null && item.dataset.index === String(index);
      item.classList.toggle('invalid', bad);
      const input = item.querySelector('input.zone-name');
      if (bad) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!loaded || saving) return;
    if (drawingKey !== null) finishOutline();
    const problems = checkPolygons(polygons);
    if (problems.length) {
      const [index, message] = problems[0];
      showError(`“${polygons[index].name.trim() || `Polygon ${index + 1}`}” ${message}.`);
      markInvalid(index);
      return;
    }
    saving = true;
    changed();
    showError('');
    markInvalid(null);
    setText(status, 'Saving…');
    try {
      const response = await request(cameraPath(cameraId, '/zones'), {
        method: 'PUT',
        body: zonesBody(polygons),
      });
      const answer = await response.json();
      if (stopped) return;
      const keep = polygons.findIndex((p) => p.key === selected);
      polygons = fromServer(answer.zones ?? []);
      selected = polygons[keep]?.key ?? polygons[0]?.key ?? null;
      saved = snapshotOf();
      setText(status, 'Saved. The camera’s edge uses the new zones and masks from now on.');
    } catch (err) {
      if (stopped || (err && err.status === 401)) return;
      const index = errorIndex(err && err.message);
      const where = index !== null && polygons[index] ? `“${polygons[index].name}”: ` : '';
      showError(`Not saved. ${where}${err && err.message ? err.message : err}`);
      setText(status, '');
      markInvalid(index);
    } finally {
      saving = false;
      if (!stopped) changed();
      if (!formError.hidden) markInvalid(errorIndex(formError.textContent));
    }
  });

  revertButton.addEventListener('click', () => {
    polygons = fromServer(JSON.parse(saved).zones);
    selected = polygons[0]?.key ?? null;
    drawingKey = null;
    showError('');
    setText(status, 'Changes undone.');
    changed();
  });

  addZone.addEventListener('click', () => add('zone'));
  addMask.addEventListener('click', () => add('mask'));

  const onBeforeUnload = (event) => {
    if (isDirty()) {
      event.preventDefault();
      event.returnValue = '';
    }
  };
  window.addEventListener('beforeunload', onBeforeUnload);

  changed();
  load();
  return {
    title: 'Zones',
    /** Whether leaving is fine: asks first when there are unsaved changes. */
    confirmLeave() {
      return !isDirty() || window.confirm('The zones have unsaved changes. Leave without saving?');
    },
    destroy() {
      stopped = true;
      window.removeEventListener('beforeunload', onBeforeUnload);
      if (pictureUrl) URL.revokeObjectURL(pictureUrl);
      view.remove();
    },
  };
}

/** The average of the corners: where the name is written. */
function centroid(points) {
  const n = points.length;
  return [points.reduce((s, p) => s + p[0], 0) / n, points.reduce((s, p) => s + p[1], 0) / n];
}
