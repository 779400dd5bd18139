"""The service worker (/sw.js) in Chromium: a real push message (delivered through the
DevTools protocol, so a trusted PushEvent) becomes a notification with the title, body,
image, tag and data the server sent; a click on it shows the event in the dashboard."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Worker

from scripts.devstack import Stack

pytestmark = [pytest.mark.live, pytest.mark.browser]

PAYLOAD = {
    "title": "Person at Front door",
    "body": "12:03:44 · Driveway · 87 %",
    "tag": "door:person",
    "url": "/#/events/e1",
    "image": "/api/events/e1/snapshot.jpg?ticket=v1.1.x",
    "event_id": "e1",
    "camera_id": "door",
    "label": "person",
    "at": "2030-01-02T03:04:05+00:00",
}

NOTIFICATIONS_JS = """
navigator.serviceWorker.ready
  .then((r) => r.getNotifications())
  .then((ns) => ns.map((n) => ({title: n.title, body: n.body, tag: n.tag, image: n.image,
                                icon: n.icon, data: n.data, timestamp: n.timestamp})))
"""


def _wait(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def _poll(check: Any, timeout: float) -> Any:
    """check()'s first truthy value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_push_shows_the_notification_and_a_click_opens_the_event(
    browser: BrowserContext, stack: Stack
) -> None:
    origin = stack.api.url
    browser.grant_permissions(["notifications"], origin=origin)
    page = browser.new_page()
    page.goto(f"{origin}/")
    cdp = browser.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda e: registrations.extend(e["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    scope = page.evaluate(
        "navigator.serviceWorker.register('/sw.js')"
        ".then(() => navigator.serviceWorker.ready).then((r) => r.scope)"
    )
    assert scope == f"{origin}/", "served from the root, the worker controls the whole site"
    registration = _wait(lambda: next((r for r in registrations if not r["isDeleted"]), None))

    def push(message: dict[str, Any]) -> dict[str, Any]:
        """Delivers ``message``; the notification it shows (by tag). DevTools now and then
        drops a delivery on a loaded machine, so an unanswered one is sent again (a
        notification with the same tag replaces, never adds)."""
        for _ in range(3):
            cdp.send(
                "ServiceWorker.deliverPushMessage",
                {
                    "origin": origin,
                    "registrationId": registration["registrationId"],
                    "data": json.dumps(message),
                },
            )
            shown = _poll(
                lambda: [n for n in page.evaluate(NOTIFICATIONS_JS) if n["tag"] == message["tag"]],
                timeout=8,
            )
            if shown:
                return dict(shown[0])
        raise AssertionError(f"no notification for {message['tag']!r}")

    shown = push(PAYLOAD)
    assert shown["title"] == "Person at Front door"
    assert shown["body"] == "12:03:44 · Driveway · 87 %"
    assert shown["tag"] == "door:person"
    assert shown["image"] == f"{origin}/api/events/e1/snapshot.jpg?ticket=v1.1.x"
    assert shown["icon"] == f"{origin}/assets/icon.svg"
    assert shown["data"]["url"] == f"{origin}/#/events/e1"
    assert shown["timestamp"] == 1893553445000

    # A message that would send the user elsewhere opens nothing foreign.
    hostile = {
        **PAYLOAD,
        "tag": "x",
        "url": "https://evil.example/",
        "image": "https://evil.example/i",
    }
    other = push(hostile)
    assert len(page.evaluate(NOTIFICATIONS_JS)) == 2
    assert other["data"]["url"] == f"{origin}/"
    assert not other["image"]

    # A click (dispatched in the worker: DevTools cannot click a notification) shows the
    # event in the open dashboard window and closes the notification.
    worker: Worker = _wait(lambda: next(iter(browser.service_workers), None))
    worker.evaluate(
        """async () => {
          const [n] = await self.registration.getNotifications({tag: 'door:person'});
          try {
            self.dispatchEvent(new NotificationEvent('notificationclick', {notification: n}));
          } catch (e) { /* waitUntil refuses untrusted events after the handler ran */ }
        }"""
    )
    _wait(lambda: page.evaluate("location.hash") == "#/events/e1")
    remaining = _wait(lambda: (n := page.evaluate(NOTIFICATIONS_JS)) and len(n) == 1 and n)
    assert remaining[0]["tag"] == "x"
