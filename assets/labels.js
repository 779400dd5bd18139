// Event labels (contract 1): the kinds a detector reports, plus "motion" for an event
// without a detected object. One place for their names, icons and order, so the
// timeline, the live boxes, the zone editor and the notification settings agree.

import { svgElement } from './dom.js';

/** In the order they are offered. */
export const LABELS = [
  { id: 'person', name: 'Person' },
  { id: 'vehicle', name: 'Vehicle' },
  { id: 'pet', name: 'Pet' },
  { id: 'motion', name: 'Motion' },
  { id: 'other', name: 'Other' },
];

// Icons as SVG shapes on a 24×24 grid (no emoji: many kiosks and servers lack the font).
const ICONS = {
  person: [
    ['circle', { cx: 12, cy: 5, r: 3 }],
    ['path', { d: 'M8 22v-7H6v-4a3 3 0 0 1 3-3h6a3 3 0 0 1 3 3v4h-2v7z' }],
  ],
  vehicle: [
    [
      'path',
      {
        'fill-rule': 'evenodd',
        d: 'M2 17v-5l2.6-5.2A2 2 0 0 1 6.4 5.7h11.2a2 2 0 0 1 1.8 1.1L22 12v5h-2a2.5 2.5 0 0 1-5 0H9' +
          'a2.5 2.5 0 0 1-5 0zM5.2 12h13.6l-1.8-4H7z',
      },
    ],
  ],
  pet: [
    ['circle', { cx: 5.5, cy: 10.5, r: 2 }],
    ['circle', { cx: 9.5, cy: 6, r: 2.2 }],
    ['circle', { cx: 14.5, cy: 6, r: 2.2 }],
    ['circle', { cx: 18.5, cy: 10.5, r: 2 }],
    ['ellipse', { cx: 12, cy: 16, rx: 5, ry: 4.2 }],
  ],
  motion: [
    [
      'path',
      {
        fill: 'none',
        stroke: 'currentColor',
        'stroke-width': 2,
        'stroke-linecap': 'round',
        d: 'M3 7c3-3 5 3 9 0s6 3 9 0M3 12c3-3 5 3 9 0s6 3 9 0M3 17c3-3 5 3 9 0s6 3 9 0',
      },
    ],
  ],
  other: [['path', { d: 'M12 3l9 9-9 9-9-9z' }]],
};

/** The label's icon, decorative (the name is always written next to it). */
export function labelIcon(id) {
  const svg = svgElement('svg', {
    viewBox: '0 0 24 24',
    class: 'label-icon',
    'aria-hidden': 'true',
    fill: 'currentColor',
  });
  for (const [tag, attrs] of ICONS[id] ?? ICONS.other) svg.append(svgElement(tag, attrs));
  return svg;
}

export const LABEL_IDS = LABELS.map((l) => l.id);

const BY_ID = new Map(LABELS.map((l) => [l.id, l]));

/** The label's entry; an unknown label (a newer server) is shown as itself. */
export function labelInfo(id) {
  return BY_ID.get(id) ?? { id: String(id), name: String(id) };
}

/** "Person", or "Vehicle · truck" when the COCO name says more than the kind. */
export function eventTitle(event) {
  const { name } = labelInfo(event.label);
  const object = event.object && event.object !== event.label ? event.object : '';
  return object ? `${name} · ${object}` : name;
}

/** "87 %" for a 0..1 score (a no-break space: the number and its sign stay together). */
export function formatScore(score) {
  return typeof score === 'number' && Number.isFinite(score)
    ? `${Math.round(score * 100)}\u00a0%`
    : '–';
}
