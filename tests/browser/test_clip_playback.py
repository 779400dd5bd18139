"""An event's clip on the event page (#/events/<id>), in headless Chromium against the real
API: uploaded as an edge uploads it (contract 5), played in a <video> whose src carries an
event ticket (never the admin key), seekable (the seek is a Range request answered with
206), under the dashboard's strict Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Response, Route, expect

from scripts.devstack import Stack, create_camera
from tests.app.clip_helpers import make_mp4, sha, upload
from tests.browser.conftest import Launch
from tests.browser.dashboard import collect_csp_violations, open_dashboard, post_event

pytestmark = [pytest.mark.live, pytest.mark.browser]

# The policy test_grid.py checks every page under; media-src 'self' covers the clip.
STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "media-src 'self' blob:; connect-src 'self' ws://127.0.0.1:* http://127.0.0.1:*; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)
SECONDS = 20.0


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """20 s of 640×360 at 4 Mbit/s (about 10 MB): a seek to the middle is past what the
    player loads for its metadata, so it needs a new Range request."""
    return make_mp4(
        tmp_path_factory.mktemp("clip") / "clip.mp4",
        seconds=SECONDS,
        bitrate_kbps=4000,
        width=640,
        height=360,
    )


@pytest.fixture
def event_with_clip(stack: Stack, mp4: bytes) -> Iterator[str]:
    """An event of a new camera, its clip uploaded through the edge API; the event id."""
    camera_id, credential = create_camera(stack.api, "Clip camera")
    edge = {"Authorization": f"Bearer {credential}"}
    event_id = post_event(stack, credential)
    with httpx.Client(base_url=stack.api.url, timeout=30) as http:
        final = upload(http, edge, event_id, mp4, chunk=4 * 1024 * 1024, duration_s=SECONDS)
    assert final["clip"]["sha256"] == sha(mp4)
    yield event_id
    with stack.api.client() as c:
        c.delete(f"/api/cameras/{camera_id}").raise_for_status()


def test_the_clip_plays_and_seeks_under_a_strict_csp(
    launch: Launch, stack: Stack, event_with_clip: str, mp4: bytes, out_dir: Path
) -> None:
    # As in test_grid.py: the policy is added by intercepting the page, which makes
    # Chromium treat it as public; its Local Network Access checks are off for that.
    browser = launch(["--disable-features=LocalNetworkAccessChecks"])
    collect_csp_violations(browser)

    def with_csp(route: Route) -> None:
        response = route.fetch()
        route.fulfill(
            response=response, headers={**response.headers, "content-security-policy": STRICT_CSP}
        )

    browser.route(f"{stack.api.url}/", with_csp)
    clip_requests: list[tuple[int, str | None, str]] = []

    def record(response: Response) -> None:
        if "/clip.mp4" in response.url:
            headers = response.request.all_headers()
            clip_requests.append((response.status, headers.get("range"), response.url))

    browser.on("response", record)
    page: Page = open_dashboard(browser, stack, route=f"#/events/{event_with_clip}")
    video = page.locator("video.event-clip-video")
    expect(video).to_be_visible()
    src = str(video.get_attribute("src"))
    assert "ticket=" in src
    assert stack.api.admin_key not in src
    download = page.locator("a.clip-download")
    expect(download).to_have_attribute("href", src)
    assert str(download.get_attribute("download")).endswith(".mp4")
    expect(page.locator(".clip-info")).to_contain_text("20 s")

    # Metadata loads: the duration is the clip's.
    page.wait_for_function(
        "(v) => v.readyState >= 1 && Number.isFinite(v.duration)", arg=video.element_handle()
    )
    duration = float(video.evaluate("(v) => v.duration"))
    assert abs(duration - SECONDS) < 0.5
    before_seek = len(clip_requests)

    # Seek to the middle: currentTime jumps there and a frame from there is decoded.
    middle = duration / 2
    video.evaluate("(v, t) => { v.muted = true; v.currentTime = t; }", middle)
    page.wait_for_function(
        "([v, t]) => !v.seeking && Math.abs(v.currentTime - t) < 0.5 && v.readyState >= 2",
        arg=[video.element_handle(), middle],
        timeout=20_000,
    )
    seeks = [r for r in clip_requests[before_seek:] if r[0] == 206]
    starts = [int(str(r[1]).split("=")[1].split("-")[0]) for r in seeks if r[1]]
    # The player asked for the middle of the file (not the start again).
    assert any(s > len(mp4) // 3 for s in starts), clip_requests
    # It plays on from there.
    video.evaluate("(v) => v.play()")
    page.wait_for_function(
        "([v, t]) => v.currentTime > t + 0.5",
        arg=[video.element_handle(), middle],
        timeout=20_000,
    )
    assert all(status in (200, 206) for status, _, _ in clip_requests), clip_requests
    assert all("ticket=" in url for _, _, url in clip_requests)
    page.screenshot(path=str(out_dir / "event-clip.png"), full_page=True)
    violations: list[Any] = page.evaluate("window.__cspViolations")
    assert violations == []


def test_the_timeline_marks_events_with_a_clip(
    launch: Launch, stack: Stack, event_with_clip: str
) -> None:
    page = open_dashboard(launch(), stack, route="#/events")
    card = page.locator(f'.event-card[data-event-id="{event_with_clip}"]')
    expect(card.locator(".thumb-clip")).to_be_visible()
    expect(card.locator(".thumb-clip")).to_have_text("▶ Clip")
