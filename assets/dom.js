// Tiny DOM helpers. Text from the API only ever goes through textContent or attributes,
// never innerHTML, so a camera named "<img onerror=…>" stays text.

/**
 * Creates an element: h('a', {class: 'x', href: '#/', on: {click: fn}}, 'text', child).
 * Props: `class`, `text`, `dataset` (object), `on` (event → handler), `hidden` (bool),
 * anything else becomes an attribute (false/null/undefined leave it out, true sets "").
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'class') el.className = value;
    else if (name === 'text') el.textContent = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name === 'on') {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (name === 'hidden') el.hidden = Boolean(value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Sets the text of `el` only when it differs (keeps screen readers quiet). */
export function setText(el, text) {
  const value = text === null || text === undefined ? '' : String(text);
  if (el.textContent !== value) el.textContent = value;
}

// The SVG namespace is a name, not an address: nothing is fetched from it.
const SVG_NS = 'http://www.w3.org/2000/svg';

/** Creates an SVG element with attributes (set as given; numbers become strings). */
export function svgElement(tag, attrs = {}) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  return el;
}

/** Replaces all children of `el`. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}
