// Relative times ("3 min ago") for "last seen" and the health page.

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'long' });

const UNITS = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];

/** "5 minutes ago" for an ISO date string (or Date); "never" when missing. */
export function relativeTime(value, now = Date.now()) {
  if (!value) return 'never';
  const then = value instanceof Date ? value.getTime() : Date.parse(value);
  if (Number.isNaN(then)) return 'unknown';
  const seconds = Math.round((then - now) / 1000);
  if (Math.abs(seconds) < 5) return 'just now';
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === 'second') {
      return rtf.format(Math.trunc(seconds / size), unit);
    }
  }
  return 'just now';
}

/** Seconds since an ISO date, or Infinity when missing. */
export function ageSeconds(value, now = Date.now()) {
  const then = value ? Date.parse(value) : NaN;
  return Number.isNaN(then) ? Infinity : (now - then) / 1000;
}

/** A full local date and time, for title/tooltips. */
export function absoluteTime(value) {
  if (!value) return '';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleString();
}
