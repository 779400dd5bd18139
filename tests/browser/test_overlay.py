"""Live boxes over the video: an event posted as the camera's edge goes through the
server's room relay into the camera's LiveKit room as a data message; the dashboard
draws its box over the playing video exactly on the picture's content rectangle (the
320×240 picture is pillarboxed in a 16:9 tile), follows resizes and fullscreen, and
takes the box away when the event ends or goes quiet."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from scripts.devstack import Stack
from tests.browser.dashboard import (
    open_dashboard,
    post_event,
    start_camera_with_credential,
    tile,
    wait_modes,
)
from tests.livestack import wait_status

pytestmark = [pytest.mark.live, pytest.mark.browser]

SYNTH = {"kind": "synthetic", "width": 320, "height": 240, "fps": 15, "bitrate_kbps": 250}
#: The dashboard drops a box not updated for this long (assets/overlay.js EXPIRE_MS).
EXPIRE_S = 5.0

# The rectangle object-fit: contain draws the video's picture in, in page coordinates.
_CONTENT_RECT_JS = """(video) => {
  const r = video.getBoundingClientRect();
  const scale = Math.min(r.width / video.videoWidth, r.height / video.videoHeight);
  const w = video.videoWidth * scale, h = video.videoHeight * scale;
  return { x: r.left + (r.width - w) / 2, y: r.top + (r.height - h) / 2, width: w, height: h };
}"""


@pytest.fixture(scope="module")
def camera(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """One synthetic camera, publishing, and its edge credential."""
    cam, credential, edge = start_camera_with_credential(
        stack, tmp_path_factory.mktemp("edge"), "Front door", SYNTH
    )
    wait_status(stack, cam, lambda s: s["online"], timeout=60)
    yield cam, credential
    edge.stop()


def box_of(page: Page, event_id: str) -> Locator:
    return page.locator(f'.overlay-box[data-event-id="{event_id}"]')


def expected_rect(video: Locator, box: tuple[float, float, float, float]) -> dict[str, float]:
    content: dict[str, float] = video.evaluate(_CONTENT_RECT_JS)
    x0, y0, x1, y1 = box
    return {
        "x": content["x"] + x0 * content["width"],
        "y": content["y"] + y0 * content["height"],
        "width": (x1 - x0) * content["width"],
        "height": (y1 - y0) * content["height"],
    }


def assert_on_picture(page: Page, event_id: str, video: Locator, box: Any) -> dict[str, float]:
    """The box element covers exactly the box's part of the video's picture (±1.5 px)."""
    deadline = time.monotonic() + 5
    while True:
        # Both are read again each time: a resize settles over a frame or two.
        want = expected_rect(video, box)
        found = box_of(page, event_id).bounding_box()
        assert found is not None
        got = {"x": found["x"], "y": found["y"], "width": found["width"], "height": found["height"]}
        if all(math.isclose(got[k], want[k], abs_tol=1.5) for k in want):
            return want
        if time.monotonic() > deadline:
            raise AssertionError(f"box at {got}, expected {want}")
        page.wait_for_timeout(100)


def test_box_is_drawn_over_the_picture_and_follows_resizes(
    browser: BrowserContext, stack: Stack, camera: tuple[str, str], out_dir: Path
) -> None:
    cam, cred = camera
    page = open_dashboard(browser, stack)
    wait_modes(page, [cam], "webrtc", timeout_s=30)
    video = tile(page, cam).locator("video")
    page.wait_for_function("(v) => v.videoWidth > 0", arg=video.element_handle())
    # 4:3 in a 16:9 tile: bars left and right, so the picture is narrower than the tile.
    content = video.evaluate(_CONTENT_RECT_JS)
    frame = video.bounding_box()
    assert frame is not None
    assert content["width"] < frame["width"] - 50

    box = (0.1, 0.2, 0.6, 0.9)
    started = datetime.now(UTC)
    posted_at = time.monotonic()
    event_id = post_event(stack, cred, box=box, score=0.87, started_at=started)
    expect(box_of(page, event_id)).to_be_visible(timeout=10_000)
    # Edge POST → server → LiveKit room data → box on screen (Playwright polls: an upper bound).
    latency_ms = (time.monotonic() - posted_at) * 1000
    (out_dir / "latency.txt").write_text(f"overlay_box_ms={latency_ms:.0f}\n")
    print(f"overlay_box_ms={latency_ms:.0f}")
    expect(box_of(page, event_id)).to_have_text("Person 87 %")
    assert box_of(page, event_id).get_attribute("data-label") == "person"
    assert_on_picture(page, event_id, video, box)
    page.screenshot(path=str(out_dir / "overlay-grid.png"))

    # A narrower window: the tile shrinks, the box follows.
    page.set_viewport_size({"width": 700, "height": 600})
    assert_on_picture(page, event_id, video, box)

    # An update moves it.
    moved = (0.5, 0.1, 0.95, 0.5)
    post_event(stack, cred, event_id=event_id, seq=1, phase="update", box=moved, started_at=started)
    assert_on_picture(page, event_id, video, moved)

    # The end of the event takes it away.
    post_event(stack, cred, event_id=event_id, seq=2, phase="end", box=moved, started_at=started)
    expect(box_of(page, event_id)).to_have_count(0, timeout=10_000)


def test_single_view_fullscreen_toggle_and_expiry(
    browser: BrowserContext, stack: Stack, camera: tuple[str, str], out_dir: Path
) -> None:
    cam, cred = camera
    page = open_dashboard(browser, stack, route=f"#/camera/{cam}")
    wait_modes(page, [cam], "webrtc", timeout_s=30)
    video = tile(page, cam).locator("video")
    page.wait_for_function("(v) => v.videoWidth > 0", arg=video.element_handle())

    box = (0.3, 0.3, 0.7, 0.8)
    started = datetime.now(UTC)
    event_id = post_event(stack, cred, label="pet", obj="dog", box=box, started_at=started)
    expect(box_of(page, event_id)).to_be_visible(timeout=10_000)
    expect(box_of(page, event_id)).to_have_text("Pet · dog 80 %")
    before = assert_on_picture(page, event_id, video, box)

    # Fullscreen: a much larger picture; the box is where the dog is on it.
    page.get_by_role("button", name="Fullscreen").click()
    page.wait_for_function("() => document.fullscreenElement !== null")
    after = assert_on_picture(page, event_id, video, box)
    assert after["height"] > before["height"] * 1.1
    page.screenshot(path=str(out_dir / "overlay-fullscreen.png"))
    page.get_by_role("button", name="Exit fullscreen").click()
    page.wait_for_function("() => document.fullscreenElement === null")
    assert_on_picture(page, event_id, video, box)

    # The Boxes toggle hides them (and is remembered); showing them again brings them back.
    toggle = tile(page, cam).get_by_role("button", name="Boxes")
    assert toggle.get_attribute("aria-pressed") == "true"
    toggle.click()
    expect(box_of(page, event_id)).to_be_hidden()
    assert toggle.get_attribute("aria-pressed") == "false"
    assert page.evaluate("sessionStorage.getItem('livecam.overlays')") == "off"
    toggle.click()
    expect(box_of(page, event_id)).to_be_visible()

    # No update for a while: the box goes (the event itself may end later).
    quiet = post_event(stack, cred, box=(0.05, 0.05, 0.2, 0.3), started_at=datetime.now(UTC))
    expect(box_of(page, quiet)).to_be_visible(timeout=10_000)
    shown_at = time.monotonic()
    expect(box_of(page, quiet)).to_have_count(0, timeout=(EXPIRE_S + 5) * 1000)
    assert time.monotonic() - shown_at > EXPIRE_S - 1.5
