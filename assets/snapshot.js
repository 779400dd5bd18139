// Camera pictures fetched with the admin key: the last snapshot of an offline camera
// (as a blob: URL for an <img>) and the snapshot download of the single-camera view.

import { cameraPath, getBlob } from './api.js';

/** GET /api/cameras/<id>/snapshot.jpg → Blob (rejects with ApiError, e.g. 404). */
export function fetchSnapshot(cameraId, options = {}) {
  return getBlob(cameraPath(cameraId, '/snapshot.jpg'), options);
}

/** Saves a Blob as a file through a temporary <a download>. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** "front-door-2026-11-22T21-05-09.jpg" */
export function snapshotFilename(cameraId, date = new Date()) {
  const stamp = date.toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
  return `${cameraId}-${stamp}.jpg`;
}

/** Downloads the camera's current snapshot. */
export async function downloadSnapshot(cameraId) {
  const blob = await fetchSnapshot(cameraId);
  saveBlob(blob, snapshotFilename(cameraId));
}
