"""Signing in to the dashboard with a user name and password: a viewer granted one of two
cameras sees and plays only that one, cannot reach the other, and signs out again."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, expect

from scripts.devstack import Stack
from tests.browser.dashboard import tile, wait_modes, wait_video_plays
from tests.livestack import EdgeFactory

SOURCE = {"kind": "synthetic", "width": 320, "height": 240, "fps": 15, "bitrate_kbps": 300}
PASSWORD = "correct horse battery"


def test_viewer_signs_in_and_sees_only_granted_cameras(
    browser: BrowserContext, stack: Stack, start_cameras: EdgeFactory
) -> None:
    (granted, other), _edge = start_cameras(SOURCE, SOURCE)
    with stack.api.client() as c:
        made = c.post(
            "/api/users",
            json={"username": "nina", "password": PASSWORD, "role": "viewer", "cameras": [granted]},
        )
        assert made.status_code == 201, made.text

    page = browser.new_page()
    logs: list[str] = []
    page.on("console", lambda m: logs.append(m.text))
    page.on("response", lambda r: logs.append(f"{r.status} {r.url}"))
    page.goto(f"{stack.api.url}/#/")
    page.fill("#username", "nina")
    page.fill("#password", "wrong password!")
    page.click("#password-form button[type=submit]")
    expect(page.locator("#password-error")).to_have_text("Wrong user name or password.")

    page.fill("#password", PASSWORD)
    page.click("#password-form button[type=submit]")
    try:
        wait_modes(page, [granted], "webrtc", timeout_s=45)
    except Exception:
        print("\n".join(logs[-40:]))
        print(page.locator("main").inner_text())
        raise
    wait_video_plays(page, tile(page, granted).locator("video"))
    expect(page.locator(".tile")).to_have_count(1)
    expect(tile(page, other)).to_have_count(0)
    expect(page.locator('nav a[data-route="add-camera"]')).to_be_hidden()
    cookies = {c["name"]: c for c in browser.cookies()}
    assert cookies["livecam_session"]["httpOnly"]
    assert cookies["livecam_session"]["sameSite"] == "Strict"

    # The page's own credentials (the cookie) reach the granted camera only.
    status = page.evaluate(
        """async ([a, b]) => [
             (await fetch(`/api/cameras/${a}/status`)).status,
             (await fetch(`/api/cameras/${b}/status`)).status,
             (await fetch(`/api/cameras/${b}/viewer-token`, {method: 'POST'})).status,
           ]""",
        [granted, other],
    )
    assert status == [200, 404, 404]

    # A reload keeps the session (the cookie), without the form.
    page.reload()
    wait_modes(page, [granted], "webrtc", timeout_s=45)

    page.click("#sign-out")
    expect(page.locator("#password-form")).to_be_visible()
    assert page.evaluate("async () => (await fetch('/api/auth/me')).status") == 401
