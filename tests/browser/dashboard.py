"""Drives the dashboard in a Playwright page: open it, find tiles, prove pictures move;
and, for the event pages, cameras whose credential a test holds and events posted as
their edge would."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw
from playwright.sync_api import BrowserContext, Locator, Page

from scripts.devstack import (
    EdgeCamera,
    ManagedProcess,
    Stack,
    create_camera,
    start_edge,
    write_edge_config,
)

KEY_STORAGE = "livecam.adminKey"

# A 48×27 luma thumbnail of a <video> or <img>, drawn through a canvas.
_SIGNATURE_JS = """(el) => {
  const w = 48, h = 27;
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(el, 0, 0, w, h);
  const d = ctx.getImageData(0, 0, w, h).data;
  const luma = [];
  for (let i = 0; i < d.length; i += 4) {
    luma.push((d[i] * 299 + d[i + 1] * 587 + d[i + 2] * 114) / 1000 | 0);
  }
  return luma;
}"""


def open_dashboard(
    context: BrowserContext,
    stack: Stack,
    *,
    key: str | None = None,
    route: str = "#/",
    base_url: str | None = None,
) -> Page:
    """A page on the dashboard, signed in with ``key`` (the admin key by default) through
    sessionStorage, as the sign-in form would leave it; ``base_url``: a proxy in front."""
    page = context.new_page()
    name, value = json.dumps(KEY_STORAGE), json.dumps(key or stack.api.admin_key)
    page.add_init_script(
        f"if (!sessionStorage.getItem({name})) sessionStorage.setItem({name}, {value});"
    )
    page.goto(f"{base_url or stack.api.url}/{route}")
    return page


def tile(page: Page, camera_id: str) -> Locator:
    return page.locator(f'.tile[data-camera-id="{camera_id}"]')


def wait_modes(page: Page, camera_ids: Sequence[str], mode: str, timeout_s: float = 60) -> None:
    """Every listed tile reaches ``mode`` (webrtc, mjpeg, connecting, offline)."""
    page.wait_for_function(
        """([ids, mode]) => ids.every((id) =>
             document.querySelector(`.tile[data-camera-id="${id}"]`)?.dataset.mode === mode)""",
        arg=[list(camera_ids), mode],
        timeout=timeout_s * 1000,
        polling=100,
    )


def modes(page: Page) -> dict[str, str]:
    result: dict[str, str] = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.tile')]"
        ".map((t) => [t.dataset.cameraId, t.dataset.mode]))"
    )
    return result


def signature(element: Locator) -> list[int]:
    result: list[int] = element.evaluate(_SIGNATURE_JS)
    return result


def difference(a: Sequence[int], b: Sequence[int]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def eventually(page: Page, check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Poll ``check`` (letting Playwright process events in between) until it is true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


def wait_picture_changes(page: Page, element: Locator, timeout_s: float = 20.0) -> None:
    """The element shows a picture (not black) that changes: it is live, not frozen."""
    first: list[int] = []

    def shows_picture() -> bool:
        nonlocal first
        first = signature(element)
        return sum(first) / len(first) > 8

    eventually(page, shows_picture, "a picture (not black)", timeout_s)
    eventually(
        page,
        lambda: difference(first, signature(element)) > 0.5,
        "the picture changes",
        timeout_s,
    )


def wait_video_plays(page: Page, video: Locator, timeout_s: float = 20.0) -> None:
    """A <video> really plays: currentTime advances and the pixels change."""
    start = float(video.evaluate("(v) => v.currentTime"))
    page.wait_for_function(
        "([v, start]) => v.currentTime > start + 0.5",
        arg=[video.element_handle(), start],
        timeout=timeout_s * 1000,
        polling=50,
    )
    wait_picture_changes(page, video, timeout_s)


# --- events (issue 4): cameras with their credential, events posted as an edge would ----


def start_camera_with_credential(
    stack: Stack, workdir: Path, name: str, source: dict[str, Any]
) -> tuple[str, str, ManagedProcess]:
    """One camera published by its own edge process, with detection off (so the only
    events are the ones a test posts), and the camera's edge credential, which a test
    uses to post events as that edge: (camera id, credential, edge process)."""
    camera_id, credential = create_camera(stack.api, name)
    config = write_edge_config(
        workdir / f"{camera_id}.toml",
        stack.api.url,
        [EdgeCamera(camera_id, credential, source)],
        heartbeat_interval_s=1.0,
        data_dir=str(workdir / f"{camera_id}-data"),
    )
    with config.open("a") as f:
        f.write("[camera.detect]\nenabled = false\n")
    edge = start_edge(workdir, config, name=f"edge-{camera_id}")
    stack.edges.append(edge)
    return camera_id, credential, edge


def snapshot_jpeg(
    colour: tuple[int, int, int],
    box: Sequence[float] | None = None,
    size: tuple[int, int] = (320, 180),
) -> bytes:
    """A small JPEG of one colour with ``box`` (normalised) drawn in yellow, as an edge's
    event snapshot looks."""
    picture = Image.new("RGB", size, colour)
    if box is not None:
        w, h = size
        ImageDraw.Draw(picture).rectangle(
            (box[0] * w, box[1] * h, box[2] * w, box[3] * h), outline=(255, 230, 0), width=3
        )
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return out.getvalue()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def post_event(
    stack: Stack,
    credential: str,
    *,
    label: str = "person",
    obj: str | None = "person",
    event_id: str | None = None,
    seq: int = 0,
    phase: str = "start",
    score: float = 0.8,
    box: Sequence[float] | None = (0.25, 0.25, 0.75, 0.75),
    zones: Sequence[str] = (),
    started_at: datetime | None = None,
    at: datetime | None = None,
    snapshot: bytes | None = None,
) -> str:
    """POST /api/edge/events as the camera's edge (contract 3); the event id."""
    event_id = event_id or str(uuid.uuid4())
    started = started_at or datetime.now(UTC)
    when = at or (started if phase == "start" else datetime.now(UTC))
    body = {
        "key": f"{event_id}:{seq}",
        "event_id": event_id,
        "seq": seq,
        "phase": phase,
        "label": label,
        "object": obj,
        "score": score,
        "box": list(box) if box is not None else None,
        "zones": list(zones),
        "started_at": iso(started),
        "at": iso(when),
        "ended_at": iso(when) if phase == "end" else None,
        "snapshot": base64.b64encode(snapshot).decode() if snapshot is not None else None,
    }
    resp = httpx.post(
        f"{stack.api.url}/api/edge/events",
        json=body,
        headers={"Authorization": f"Bearer {credential}"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "stored", resp.text
    return event_id


def admin_get(stack: Stack, path: str) -> Any:
    """GET an admin API path; the JSON answer."""
    with stack.api.client() as c:
        resp = c.get(path)
        resp.raise_for_status()
        return resp.json()


def collect_csp_violations(context: BrowserContext) -> None:
    """Record Content-Security-Policy violations of every page in ``window.__cspViolations``."""
    context.add_init_script(
        "window.__cspViolations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));"
    )
