"""The notifications page (#/notifications) in headless Chromium against the real API.

Headless Chromium has no push service, so PushManager.subscribe() fails there: the page
is tested up to a clear "push service unavailable" message (and the other refusals a
browser can give); listing, editing and removing subscriptions is tested on ones made
through the API directly, as another browser would have made them."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import BrowserContext, Page, expect

from scripts.devstack import Stack, create_camera
from tests.browser.dashboard import admin_get, open_dashboard

pytestmark = [pytest.mark.live, pytest.mark.browser]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def browser_subscription() -> dict[str, Any]:
    """What PushSubscription.toJSON() gives: an https endpoint and real-looking keys."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "endpoint": f"https://push.example.invalid/send/{secrets.token_urlsafe(16)}",
        "keys": {"p256dh": b64url(point), "auth": b64url(secrets.token_bytes(16))},
    }


def subscribe(stack: Stack, **prefs: Any) -> dict[str, Any]:
    with stack.api.client() as c:
        resp = c.post(
            "/api/push/subscriptions", json={"subscription": browser_subscription(), **prefs}
        )
        resp.raise_for_status()
        created: dict[str, Any] = resp.json()
        return created


def device(page: Page, subscription_id: str) -> Any:
    return page.locator(f'.device[data-subscription-id="{subscription_id}"]')


def test_lists_edits_and_removes_devices(browser: BrowserContext, stack: Stack) -> None:
    door, _ = create_camera(stack.api, "Front door")
    create_camera(stack.api, "Garden")
    phone = subscribe(
        stack,
        device="Anna's phone",
        cameras=[door],
        labels=["person", "vehicle"],
        quiet_hours={"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"},
    )
    laptop = subscribe(stack, device="Office laptop")

    page = open_dashboard(browser, stack, route="#/notifications")
    expect(page.locator(".device")).to_have_count(2)
    expect(device(page, phone["id"]).locator(".device-name")).to_have_text("Anna's phone")
    expect(device(page, phone["id"]).locator(".device-summary")).to_have_text(
        "Person, Vehicle · Front door · quiet 22:00–07:00 (Europe/Berlin)"
    )
    expect(device(page, laptop["id"]).locator(".device-summary")).to_have_text(
        "Person, Vehicle, Pet · all cameras · no quiet hours"
    )
    expect(device(page, laptop["id"])).to_contain_text("via push.example.invalid")

    # Edit: all cameras, pets too, no quiet hours.
    item = device(page, phone["id"])
    item.get_by_role("button", name="Edit").click()
    form = item.locator("form.edit-form")
    expect(form.get_by_label("Device name")).to_have_value("Anna's phone")
    assert form.get_by_label("Only these:").is_checked()
    assert form.get_by_label("Front door").is_checked()
    form.get_by_label("All cameras").check()
    form.get_by_label("Pet").check()
    form.get_by_label("No notifications between").uncheck()
    form.get_by_label("Device name").fill("Anna's new phone")
    form.get_by_role("button", name="Save").click()
    expect(device(page, phone["id"]).locator(".device-name")).to_have_text("Anna's new phone")
    expect(device(page, phone["id"]).locator(".device-summary")).to_have_text(
        "Person, Vehicle, Pet · all cameras · no quiet hours"
    )
    stored = admin_get(stack, f"/api/push/subscriptions/{phone['id']}")
    assert stored["device"] == "Anna's new phone"
    assert stored["cameras"] is None
    assert stored["labels"] == ["person", "vehicle", "pet"]
    assert stored["quiet_hours"] is None

    # A bad edit is refused in the page, nothing sent.
    item.get_by_role("button", name="Edit").click()
    for label in ("Person", "Vehicle", "Pet"):
        form.get_by_label(label).uncheck()
    form.get_by_role("button", name="Save").click()
    expect(form.locator(".form-error")).to_have_text(
        "Tick at least one kind of event to be notified about."
    )
    assert admin_get(stack, f"/api/push/subscriptions/{phone['id']}")["labels"] == [
        "person",
        "vehicle",
        "pet",
    ]

    # Remove.
    device(page, laptop["id"]).get_by_role("button", name="Remove Office laptop").click()
    expect(device(page, laptop["id"])).to_have_count(0)
    expect(page.locator(".device")).to_have_count(1)
    ids = [s["id"] for s in admin_get(stack, "/api/push/subscriptions")]
    assert ids == [phone["id"]]

    # A test notification to a push service that does not exist: the error is shown.
    device(page, phone["id"]).get_by_role("button", name="Send test").click()
    expect(device(page, phone["id"]).locator(".device-message")).to_contain_text("Not sent:")


def test_enable_says_when_the_push_service_is_unavailable(
    browser: BrowserContext, stack: Stack
) -> None:
    browser.grant_permissions(["notifications"], origin=stack.api.url)
    page = open_dashboard(browser, stack, route="#/notifications")
    support = page.locator("#push-support")
    expect(support).to_have_text("This device gets no notifications yet.")
    # Prefilled: a name for this browser and its time zone.
    assert page.get_by_label("Device name").input_value() == "Chrome on Linux"
    timezone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    expect(page.get_by_label("Time zone")).to_have_value(timezone)
    before = admin_get(stack, "/api/push/subscriptions")

    page.get_by_role("button", name="Enable on this device").click()
    error = page.locator("#push-error")
    # Headless Chromium never answers subscribe(): the page gives up after 15 s.
    expect(page.locator(".form-status")).to_contain_text("push service")
    expect(error).to_contain_text("push service is unavailable", timeout=30_000)
    expect(error).to_contain_text("no answer within 15 s")
    # The service worker was installed on the way, for the whole site.
    scope = page.evaluate("navigator.serviceWorker.getRegistration().then((r) => r && r.scope)")
    assert scope == f"{stack.api.url}/"
    assert admin_get(stack, "/api/push/subscriptions") == before, "nothing registered"
    expect(page.get_by_role("button", name="Enable on this device")).to_be_enabled()


def test_refusals_are_explained(browser: BrowserContext, stack: Stack) -> None:
    # Headless Chromium answers a permission prompt with "denied".
    page = open_dashboard(browser, stack, route="#/notifications")
    page.get_by_role("button", name="Enable on this device").click()
    expect(page.locator("#push-error")).to_contain_text("Notifications are blocked for this site")
    expect(page.locator("#push-support")).to_have_attribute("data-state", "denied")

    # A browser without the Push API (Safari outside a Home Screen app, say).
    page.add_init_script("delete window.PushManager;")
    page.reload()
    support = page.locator("#push-support")
    expect(support).to_contain_text("cannot receive push notifications")
    expect(page.get_by_role("button", name="Enable on this device")).to_be_disabled()
