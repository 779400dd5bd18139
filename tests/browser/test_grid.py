"""The dashboard in headless Chromium against the real stack: four synthetic cameras
published through livekit-server, watched over WebRTC by livekit-client."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from scripts.devstack import Stack, create_camera
from tests.browser.conftest import Launch
from tests.browser.dashboard import (
    modes,
    open_dashboard,
    post_event,
    snapshot_jpeg,
    tile,
    wait_modes,
    wait_picture_changes,
    wait_video_plays,
)
from tests.livestack import start_edge_cameras, wait_status

pytestmark = [pytest.mark.live, pytest.mark.browser]

SYNTH = {"kind": "synthetic", "width": 320, "height": 240, "fps": 15, "bitrate_kbps": 250}
NAMES = ["Front door", "Garden", "Garage", "Hall"]


@pytest.fixture(scope="module")
def cameras(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Four small synthetic cameras on one edge, online before the first test."""
    ids, edge = start_edge_cameras(
        stack, tmp_path_factory.mktemp("edge"), [SYNTH] * len(NAMES), names=NAMES
    )
    for cam in ids:
        wait_status(stack, cam, lambda s: s["online"], timeout=60)
    yield ids
    edge.stop()


def test_grid_plays_every_camera(
    browser: BrowserContext, stack: Stack, cameras: list[str], out_dir: Path
) -> None:
    page = open_dashboard(browser, stack)
    wait_modes(page, cameras, "webrtc", timeout_s=30)
    assert page.locator(".tile").count() == 4
    for cam, name in zip(cameras, NAMES, strict=True):
        t = tile(page, cam)
        assert t.locator(".name").text_content() == name
        assert t.locator(".badge").text_content() == "LIVE · WebRTC"
        wait_video_plays(page, t.locator("video"))
    # 2 × 2, 16:9 tiles, all on screen without scrolling.
    columns = page.locator(".grid").evaluate("(g) => getComputedStyle(g).gridTemplateColumns")
    assert len(columns.split()) == 2
    for cam in cameras:
        box = tile(page, cam).locator(".frame").bounding_box()
        assert box is not None
        assert math.isclose(box["width"] / box["height"], 16 / 9, rel_tol=0.02)
        assert box["y"] + box["height"] <= 720
    expect(page.locator("#summary")).to_have_text("4 of 4 online")
    page.screenshot(path=str(out_dir / "grid.png"))


def test_stats_on_demand(browser: BrowserContext, stack: Stack, cameras: list[str]) -> None:
    page = open_dashboard(browser, stack)
    wait_modes(page, cameras, "webrtc", timeout_s=30)
    t = tile(page, cameras[0])
    stats = t.locator(".stats")
    assert stats.count() == 0
    t.locator(".stats-toggle").click()
    assert t.locator(".stats-toggle").get_attribute("aria-pressed") == "true"

    def stat(name: str) -> str:
        return stats.locator(f'dd[data-stat="{name}"]').text_content() or ""

    page.wait_for_function(
        "(el) => /kbit/.test(el.textContent)",
        arg=stats.locator('dd[data-stat="bitrate"]').element_handle(),
    )
    assert stat("resolution") == "320×240"
    assert stat("codec") == "H264"
    assert re.fullmatch(r"1[0-9] fps", stat("fps")), stat("fps")
    kbps = float(stat("bitrate").split()[0])
    assert 50 < kbps < 1000, kbps
    assert stat("loss").startswith("0.0 %")
    # Loopback: a direct UDP path, no TURN relay.
    assert stat("transport").startswith("UDP"), stat("transport")
    t.locator(".stats-toggle").click()
    assert stats.is_hidden()


def test_single_camera_view(browser: BrowserContext, stack: Stack, cameras: list[str]) -> None:
    page = open_dashboard(browser, stack)
    cam = cameras[1]
    wait_modes(page, [cam], "webrtc", timeout_s=30)
    tile(page, cam).locator(".frame").click(position={"x": 200, "y": 150})
    page.wait_for_url(f"**/#/camera/{cam}")
    expect(page.locator("h1")).to_have_text(NAMES[1])
    expect(page).to_have_title(f"{NAMES[1]} · livecam")
    assert page.locator(".tile").count() == 1
    wait_modes(page, [cam], "webrtc", timeout_s=30)
    large = tile(page, cam)
    wait_video_plays(page, large.locator("video"))

    page.get_by_role("button", name="Fullscreen").click()
    page.wait_for_function("() => document.fullscreenElement?.classList.contains('single-view')")
    assert (
        page.get_by_role("button", name="Exit fullscreen").get_attribute("aria-pressed") == "true"
    )
    # Fullscreen fills the screen with the video, and the toolbar stays usable.
    box = large.locator(".frame").bounding_box()
    assert box is not None
    assert box["width"] > 1200 or box["height"] > 600, box
    page.get_by_role("button", name="Exit fullscreen").click()
    page.wait_for_function("() => document.fullscreenElement === null")

    page.get_by_role("link", name="← All cameras").click()
    page.wait_for_url("**/#/")
    wait_modes(page, cameras, "webrtc", timeout_s=30)


def test_snapshot_download(
    browser: BrowserContext, stack: Stack, cameras: list[str], tmp_path: Path
) -> None:
    """Needs GET /api/cameras/<id>/snapshot.jpg (the MJPEG/snapshot work)."""
    page = open_dashboard(browser, stack, route=f"#/camera/{cameras[0]}")
    wait_modes(page, [cameras[0]], "webrtc", timeout_s=30)
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Download snapshot").click()
    assert re.fullmatch(
        rf"{cameras[0]}-\d{{4}}-\d\d-\d\dT\d\d-\d\d-\d\d\.jpg", download.value.suggested_filename
    )
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    data = saved.read_bytes()
    assert data[:3] == b"\xff\xd8\xff", "a JPEG"
    assert len(data) > 1000
    expect(page.locator(".single-view .notice")).to_have_text("Snapshot downloaded.")


def test_health_page(browser: BrowserContext, stack: Stack, cameras: list[str]) -> None:
    page = open_dashboard(browser, stack, route="#/health")
    page.wait_for_function(
        "() => document.querySelectorAll('.health-table tbody tr').length === 4", timeout=15_000
    )
    cards = page.locator(".cards")
    assert "LiveKit" in (cards.text_content() or "")
    assert cards.locator(".card").nth(1).locator(".pill").text_content() == "OK"
    assert cards.locator(".card").nth(2).locator(".pill").text_content() == "OK"
    assert cards.locator(".card").nth(3).locator(".pill").text_content() == "4 / 4 online"
    # The heartbeat's figures, per camera; refreshed every 5 s.
    page.wait_for_function(
        """() => [...document.querySelectorAll('.health-table tbody tr')].every(
             (row) => /fps/.test(row.cells[5]?.textContent ?? ''))"""
    )
    for cam, name in zip(cameras, NAMES, strict=True):
        row = page.locator(f'.health-table tr[data-camera-id="{cam}"]')
        cells = row.locator("td")
        assert row.locator("th").text_content() == name
        assert cells.nth(0).text_content() == "ONLINE"
        assert cells.nth(1).text_content() == "publishing"
        assert cells.nth(3).text_content() == "320×240"
        assert float((cells.nth(4).text_content() or "0").split()[0]) > 10
        # The edge records by default: "REC · 0.0 GB · 57 GB free"; no clips waiting.
        assert re.fullmatch(r"REC · \d+\.\d GB · \d+ GB free", cells.nth(8).text_content() or "")
        assert cells.nth(9).text_content() == "idle"
    first = page.locator(".updated").text_content()
    page.wait_for_function(
        "(old) => document.querySelector('.updated').textContent !== old", arg=first
    )


STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "media-src 'self' blob:; connect-src 'self' ws://127.0.0.1:* http://127.0.0.1:*; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)


def test_works_under_a_strict_csp(launch: Launch, stack: Stack, cameras: list[str]) -> None:
    """No inline scripts, handlers or styles and no eval: a strict policy breaks nothing,
    on any page (grid, health, timeline, event, zone editor, notifications).

    The policy is added by intercepting the page. Chromium does not know the address a
    fulfilled response came from, so its Local Network Access checks would then treat the
    page as public and block LiveKit on loopback: those checks are off for this test only.
    """
    browser = launch(["--disable-features=LocalNetworkAccessChecks"])
    browser.add_init_script(
        "window.__cspViolations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));"
    )

    def with_csp(route: Route) -> None:
        response = route.fetch()
        route.fulfill(
            response=response,
            headers={**response.headers, "content-security-policy": STRICT_CSP},
        )

    browser.route(f"{stack.api.url}/", with_csp)
    page: Page = open_dashboard(browser, stack)
    wait_modes(page, cameras, "webrtc", timeout_s=30)
    wait_picture_changes(page, tile(page, cameras[0]).locator("video"))
    assert set(modes(page).values()) <= {"webrtc"}
    tile(page, cameras[0]).locator(".stats-toggle").click()
    tile(page, cameras[0]).get_by_role("button", name="Boxes").click()
    tile(page, cameras[0]).get_by_role("button", name="Boxes").click()
    page.get_by_role("link", name="Health").click()
    page.wait_for_selector(".health-table tbody tr")
    assert page.evaluate("window.__cspViolations") == []

    # The event pages (issue 4): timeline with thumbnails, an event, the zone editor,
    # notifications. The event belongs to a camera made for this test, removed after.
    extra, credential = create_camera(stack.api, "CSP check")
    try:
        event_id = post_event(stack, credential, snapshot=snapshot_jpeg((200, 40, 40)))
        page.get_by_role("link", name="Timeline").click()
        card = page.locator(f'.event-card[data-event-id="{event_id}"]')
        expect(card.locator("img.thumb-img")).to_have_attribute("data-state", "loaded")
        expect(page.locator(".live-status")).to_have_text("Live")
        page.get_by_label("Person").check()
        card.locator("a").click()
        expect(page.locator("img.event-snapshot")).to_be_visible()
        page.goto(f"{stack.api.url}/#/camera/{cameras[0]}")
        page.get_by_role("link", name="Zones").click()
        expect(page.locator("img.zones-bg")).to_be_visible(timeout=20_000)
        page.get_by_role("button", name="Add zone").click()
        for x, y in ((100, 100), (200, 100), (150, 200)):
            page.locator(".zones-svg").click(position={"x": x, "y": y})
        expect(page.locator(".zones-svg .handle")).to_have_count(3)
        page.get_by_role("button", name="Undo changes").click()
        page.get_by_role("link", name="Notifications").click()
        expect(page.locator("#push-support")).not_to_be_empty()
        expect(page.get_by_role("button", name="Enable on this device")).to_be_visible()
        assert page.evaluate("window.__cspViolations") == []
    finally:
        with stack.api.client() as c:
            c.delete(f"/api/cameras/{extra}").raise_for_status()


def test_phone_layout(
    browser: BrowserContext, stack: Stack, cameras: list[str], out_dir: Path
) -> None:
    page = open_dashboard(browser, stack)
    page.set_viewport_size({"width": 390, "height": 844})
    wait_modes(page, cameras, "webrtc", timeout_s=30)
    # One camera per row, full width; the page scrolls down, never sideways.
    columns = page.locator(".grid").evaluate("(g) => getComputedStyle(g).gridTemplateColumns")
    assert len(columns.split()) == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport()
    for cam in cameras:
        box = tile(page, cam).locator(".frame").bounding_box()
        assert box is not None
        assert math.isclose(box["width"] / box["height"], 16 / 9, rel_tol=0.03)
        assert box["width"] > 350
    page.screenshot(path=str(out_dir / "phone.png"), full_page=True)
