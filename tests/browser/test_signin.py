"""Signing in: the admin key goes in a form, lives in sessionStorage only, rides in the
Authorization header and never in a URL; a 401 brings the form back. Text from the API is
shown as text."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, Request, expect

from scripts.devstack import Stack
from tests.browser.dashboard import KEY_STORAGE, open_dashboard, tile

pytestmark = [pytest.mark.live, pytest.mark.browser]


def test_wrong_key_is_refused_and_the_key_stays_out_of_urls(
    browser: BrowserContext, stack: Stack
) -> None:
    key = stack.api.admin_key
    requests: list[Request] = []
    page = browser.new_page()
    page.on("request", lambda r: requests.append(r))
    page.goto(f"{stack.api.url}/")
    field = page.get_by_label("Admin key")
    expect(field).to_be_focused()
    expect(page.locator("#bar")).to_be_hidden()

    field.fill("lca_" + "x" * 40)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "That admin key was not accepted. Check it and try again."
    )
    assert page.evaluate("sessionStorage.length") == 0

    field.fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#bar")).to_be_visible()
    expect(page.locator("#summary")).to_have_text("0 of 0 online")
    page.get_by_role("link", name="Health").click()
    expect(page.locator(".health-table")).to_be_visible()

    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") == key
    assert page.evaluate("localStorage.length") == 0
    assert browser.cookies() == []
    assert all(key not in r.url for r in requests)
    assert key not in page.url
    api_calls = [r for r in requests if "/api/" in r.url]
    assert api_calls
    good = [r for r in api_calls if r.headers.get("authorization") == f"Bearer {key}"]
    assert len(good) >= len(api_calls) - 1  # all but the refused attempt

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("alert")).to_have_text("You are signed out.")
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.get_by_label("Admin key")).to_be_visible()


def test_a_401_returns_to_the_sign_in_form(browser: BrowserContext, stack: Stack) -> None:
    page = open_dashboard(browser, stack)
    expect(page.locator("#bar")).to_be_visible()
    # The key stops working mid-session (revoked): the next call gets a 401.
    page.evaluate(f"sessionStorage.setItem('{KEY_STORAGE}', 'lca_revoked')")
    page.get_by_role("link", name="Health").click()
    expect(page.get_by_role("alert")).to_contain_text("did not accept the admin key (401)")
    expect(page.get_by_label("Admin key")).to_be_visible()
    expect(page.locator("#bar")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_camera_names_are_shown_as_text(browser: BrowserContext, stack: Stack) -> None:
    evil = '<img src=x onerror="window.__pwned=1">Porch & "yard"'
    with stack.api.client() as c:
        created = c.post("/api/cameras", json={"name": evil})
        created.raise_for_status()
    cam = created.json()["camera"]["id"]

    page = open_dashboard(browser, stack)
    t = tile(page, cam)
    expect(t.locator(".name")).to_have_text(evil)
    expect(t.locator(".badge")).to_have_text("OFFLINE")
    expect(t.locator(".seen")).to_have_text("last seen never")
    expect(t.locator(".tile-notice")).to_have_text("No picture yet")
    page.get_by_role("link", name="Health").click()
    expect(page.locator(f'tr[data-camera-id="{cam}"] th')).to_have_text(evil)
    t.page.get_by_role("link", name=evil).click()
    expect(page.locator("h1")).to_have_text(evil)
    assert page.evaluate("window.__pwned") is None
    assert page.locator('img[src="x"]').count() == 0


def test_unknown_camera_says_so(browser: BrowserContext, stack: Stack) -> None:
    page = open_dashboard(browser, stack, route="#/camera/nope")
    expect(page.locator("h1")).to_have_text("No such camera")
    expect(page.locator(".single-view .notice")).to_have_text('There is no camera with id "nope".')
