"""The MJPEG fallback: when WebRTC shows nothing (LiveKit blocked or down), tiles switch
to the server's MJPEG stream, and back to WebRTC when it plays again. Offline cameras show
their last snapshot.

Needs the MJPEG/snapshot endpoints (POST .../mjpeg-ticket, GET .../mjpeg, GET
.../snapshot.jpg) and the edge's JPEG tap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, WebSocketRoute, expect

from scripts.devstack import Stack
from tests.browser.dashboard import (
    modes,
    open_dashboard,
    tile,
    wait_modes,
    wait_picture_changes,
    wait_video_plays,
)
from tests.livestack import start_edge_cameras, wait_status

pytestmark = [pytest.mark.live, pytest.mark.browser]

SYNTH = {"kind": "synthetic", "width": 320, "height": 240, "fps": 15, "bitrate_kbps": 250}


@pytest.fixture(scope="module")
def cameras(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    ids, edge = start_edge_cameras(
        stack, tmp_path_factory.mktemp("edge"), [SYNTH, SYNTH], names=["Porch", "Yard"]
    )
    for cam in ids:
        wait_status(stack, cam, lambda s: s["online"], timeout=60)
    yield ids
    edge.stop()


def test_mjpeg_when_webrtc_cannot_connect(
    browser: BrowserContext, stack: Stack, cameras: list[str]
) -> None:
    """LiveKit's websocket refused from the start: no frame within ~4 s → MJPEG."""

    def refuse(ws: WebSocketRoute) -> None:
        ws.close(code=1011, reason="blocked by the test")

    browser.route_web_socket(re.compile(r"/rtc"), refuse)
    page = open_dashboard(browser, stack)
    wait_modes(page, cameras, "mjpeg", timeout_s=30)
    for cam in cameras:
        t = tile(page, cam)
        expect(t.locator(".badge")).to_have_text("LIVE · MJPEG")
        wait_picture_changes(page, t.locator("img.mjpeg"))
    waited = page.evaluate(
        "performance.getEntriesByType('mark').filter((m) => m.name.startsWith('livecam:token:'))"
        ".map((m) => m.startTime)"
    )
    assert waited, "WebRTC was tried first"
    assert not page.evaluate(
        "performance.getEntriesByType('mark')"
        ".some((m) => m.name.startsWith('livecam:first-frame:'))"
    )


def test_falls_back_when_livekit_stops_and_returns_when_it_is_back(
    browser: BrowserContext, stack: Stack, cameras: list[str], out_dir: Path
) -> None:
    page = open_dashboard(browser, stack)
    wait_modes(page, cameras, "webrtc", timeout_s=30)
    stack.livekit.stop()
    try:
        wait_modes(page, cameras, "mjpeg", timeout_s=30)
        for cam in cameras:
            wait_picture_changes(page, tile(page, cam).locator("img.mjpeg"))
        page.screenshot(path=str(out_dir / "mjpeg.png"))
    finally:
        stack.livekit.start()
    # WebRTC kept retrying underneath (backoff ≤ 15 s) and takes over again.
    wait_modes(page, cameras, "webrtc", timeout_s=90)
    for cam in cameras:
        t = tile(page, cam)
        expect(t.locator(".badge")).to_have_text("LIVE · WebRTC")
        wait_video_plays(page, t.locator("video"))
        expect(t.locator("img.mjpeg")).to_have_count(0)  # the MJPEG stream was closed


def test_offline_camera_shows_its_last_snapshot(
    browser: BrowserContext, stack: Stack, cameras: list[str], tmp_path: Path
) -> None:
    (cam,), edge = start_edge_cameras(stack, tmp_path, [SYNTH], name="short", names=["Shed"])
    wait_status(stack, cam, lambda s: s["online"], timeout=60)
    with stack.api.client() as c:
        assert c.get(f"/api/cameras/{cam}/snapshot.jpg").status_code == 200
    edge.stop()
    wait_status(stack, cam, lambda s: not s["online"], timeout=60)

    page = open_dashboard(browser, stack)
    t = tile(page, cam)
    expect(t.locator(".badge")).to_have_text("OFFLINE")
    expect(t.locator(".seen")).to_have_text(re.compile(r"last seen (just now|\d+ seconds? ago)"))
    still = t.locator("img.still")
    expect(still).to_be_visible()
    expect(still).to_have_attribute("src", re.compile(r"^blob:"))
    expect(still).to_have_attribute("alt", "Last picture from Shed")
    assert still.evaluate("(img) => img.complete && img.naturalWidth") == 320
    assert modes(page)[cam] == "offline"
