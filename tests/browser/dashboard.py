"""Drives the dashboard in a Playwright page: open it, find tiles, prove pictures move."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from playwright.sync_api import BrowserContext, Locator, Page

from scripts.devstack import Stack

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
    context: BrowserContext, stack: Stack, *, key: str | None = None, route: str = "#/"
) -> Page:
    """A page on the dashboard, signed in with ``key`` (the admin key by default) through
    sessionStorage, as the sign-in form would leave it."""
    page = context.new_page()
    name, value = json.dumps(KEY_STORAGE), json.dumps(key or stack.api.admin_key)
    page.add_init_script(
        f"if (!sessionStorage.getItem({name})) sessionStorage.setItem({name}, {value});"
    )
    page.goto(f"{stack.api.url}/{route}")
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
