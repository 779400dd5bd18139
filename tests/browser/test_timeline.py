"""The timeline (#/events) and the event page (#/events/<id>) in headless Chromium against
the real API: events posted through POST /api/edge/events with an edge credential, as an
edge would, appear grouped by day with their snapshots; new ones arrive over the event
stream without a reload; filters narrow the list and live in the route; paging loads
the rest."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from scripts.devstack import Stack, create_camera
from tests.browser.dashboard import admin_get, open_dashboard, post_event, snapshot_jpeg

pytestmark = [pytest.mark.live, pytest.mark.browser]

# The dashboard's page size (assets/events.js PAGE_SIZE).
PAGE_SIZE = 30

# The mean colour of a picture, drawn through a canvas.
_MEAN_RGB_JS = """(img) => {
  const canvas = document.createElement('canvas');
  canvas.width = 32;
  canvas.height = 18;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(img, 0, 0, 32, 18);
  const d = ctx.getImageData(0, 0, 32, 18).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < d.length; i += 4) { sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2]; }
  return sum.map((v) => v / (d.length / 4));
}"""

Camera = tuple[str, str]  # (camera id, edge credential)


@pytest.fixture
def new_camera(stack: Stack) -> Callable[[str], Camera]:
    """Creates and enrolls a camera (no edge process: events are posted by the test)."""

    def _new(name: str) -> Camera:
        return create_camera(stack.api, name)

    return _new


def card(page: Page, event_id: str) -> Any:
    return page.locator(f'.event-card[data-event-id="{event_id}"]')


def card_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        ".event-card", "(cards) => cards.map((c) => c.dataset.eventId)"
    )
    return ids


def expect_cards(page: Page, ids: list[str]) -> None:
    """The list shows exactly these events, in this order (waits for a reload to finish)."""
    page.wait_for_function(
        """(ids) => {
          const shown = [...document.querySelectorAll('.event-card')].map((c) => c.dataset.eventId);
          return shown.length === ids.length && shown.every((id, i) => id === ids[i]);
        }""",
        arg=ids,
    )


def mark_page(page: Page) -> None:
    """Marks the loaded document: the mark is gone if the page reloads."""
    page.evaluate("window.__sameDocument = true")


def same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def local_day(moment: datetime) -> str:
    """The YYYY-MM-DD of ``moment`` in the browser's zone (the test process's zone)."""
    return moment.astimezone().strftime("%Y-%m-%d")


def test_events_appear_grouped_by_day_with_thumbnails(
    browser: BrowserContext, stack: Stack, new_camera: Callable[[str], Camera], out_dir: Path
) -> None:
    door, door_cred = new_camera("Front door")
    garden, garden_cred = new_camera("Garden")
    now = datetime.now(UTC).replace(microsecond=0)
    red, green, blue = (200, 40, 40), (40, 180, 60), (40, 70, 200)
    # Newest first: an ongoing person now, a car two days ago, a dog three days ago.
    person = post_event(
        stack,
        door_cred,
        zones=["Porch"],
        score=0.91,
        started_at=now - timedelta(seconds=5),
        snapshot=snapshot_jpeg(red, (0.25, 0.25, 0.75, 0.75)),
    )
    car_start = now - timedelta(days=2)
    car = post_event(
        stack,
        garden_cred,
        label="vehicle",
        obj="car",
        score=0.77,
        started_at=car_start,
        snapshot=snapshot_jpeg(green, (0.1, 0.4, 0.6, 0.9)),
    )
    post_event(
        stack,
        garden_cred,
        label="vehicle",
        obj="car",
        event_id=car,
        seq=1,
        phase="end",
        started_at=car_start,
        at=car_start + timedelta(seconds=95),
        score=0.6,
    )
    dog_start = now - timedelta(days=3, hours=1)
    dog = post_event(
        stack,
        door_cred,
        label="pet",
        obj="dog",
        started_at=dog_start,
        snapshot=snapshot_jpeg(blue, (0.5, 0.5, 0.9, 0.9)),
    )
    post_event(
        stack,
        door_cred,
        label="pet",
        obj="dog",
        event_id=dog,
        seq=1,
        phase="end",
        started_at=dog_start,
        at=dog_start + timedelta(seconds=12),
    )
    motion = post_event(
        stack, garden_cred, label="motion", obj=None, box=None, started_at=now - timedelta(days=3)
    )

    page = open_dashboard(browser, stack, route="#/events")
    for event_id in (person, car, dog, motion):
        expect(card(page, event_id)).to_be_visible()
    ids = [i for i in card_ids(page) if i in {person, car, dog, motion}]
    assert ids == [person, car, motion, dog], "newest first"

    # One heading per local day, newest first; each card under its own day.
    days = page.eval_on_selector_all("section.day", "(s) => s.map((d) => d.dataset.day)")
    for event_id, started in ((person, now), (car, car_start), (dog, dog_start)):
        day = card(page, event_id).evaluate("(c) => c.closest('section.day').dataset.day")
        assert day == local_day(started)
    assert days == sorted(days, reverse=True)
    today = page.locator(f'section.day[data-day="{local_day(now)}"] h2')
    expect(today).to_have_text("Today")

    # What a card says.
    expect(card(page, person).locator(".event-title")).to_have_text("Person")
    expect(card(page, person).locator(".camera-name")).to_have_text("Front door")
    expect(card(page, person).locator(".duration")).to_have_text("ongoing")
    expect(card(page, person).locator(".score")).to_have_text("91 %")
    expect(card(page, person).locator(".event-zones")).to_have_text("Zones: Porch")
    expect(card(page, car).locator(".event-title")).to_have_text("Vehicle · car")
    expect(card(page, car).locator(".duration")).to_have_text("1 min 35 s")
    expect(card(page, car).locator(".score")).to_have_text("77 %")
    expect(card(page, dog).locator(".duration")).to_have_text("12 s")
    assert card(page, car).get_attribute("data-label") == "vehicle"
    expect(card(page, motion).locator(".thumb-none")).to_be_visible()

    # Thumbnails: the event's own snapshot, fetched with the key (a blob: URL).
    for event_id, colour in ((person, red), (car, green), (dog, blue)):
        img = card(page, event_id).locator("img.thumb-img")
        img.scroll_into_view_if_needed()
        expect(img).to_have_attribute("data-state", "loaded")
        assert (img.get_attribute("src") or "").startswith("blob:")
        mean = img.evaluate(_MEAN_RGB_JS)
        # Mostly the colour (the yellow box adds a little).
        dominant = max(range(3), key=lambda i: colour[i])
        assert max(range(3), key=lambda i: mean[i]) == dominant, (event_id, mean)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(out_dir / "timeline.png"), full_page=True)

    # The event page: the large snapshot, the details, a link to the live view.
    card(page, car).locator("a.event-link").click()
    page.wait_for_url(f"**/#/events/{car}")
    expect(page.locator("h1")).to_have_text("Vehicle · car at Garden")
    picture = page.locator("img.event-snapshot")
    expect(picture).to_be_visible()
    assert picture.evaluate("(img) => img.naturalWidth") == 320
    details = page.locator(".event-details")
    expect(details).to_contain_text("1 min 35 s")
    expect(details).to_contain_text("77 %")
    expect(page.get_by_role("link", name="Watch live")).to_have_attribute(
        "href", f"#/camera/{garden}"
    )
    page.screenshot(path=str(out_dir / "event.png"))
    page.get_by_role("link", name="← Events").click()
    page.wait_for_url("**/#/events")
    expect(card(page, person)).to_be_visible()
    expect(card(page, person).locator(".camera-name")).to_have_text("Front door")
    assert door != garden


def test_a_new_event_appears_live_and_its_card_follows_it(
    browser: BrowserContext, stack: Stack, new_camera: Callable[[str], Camera], out_dir: Path
) -> None:
    cam, cred = new_camera("Driveway")
    page = open_dashboard(browser, stack, route=f"#/events?camera={cam}")
    expect(page.locator(".timeline-empty")).to_contain_text("No events match these filters.")
    expect(page.locator(".live-status")).to_have_text("Live")
    mark_page(page)

    started = datetime.now(UTC)
    posted_at = time.monotonic()
    event_id = post_event(
        stack, cred, score=0.7, started_at=started, snapshot=snapshot_jpeg((200, 40, 40))
    )
    expect(card(page, event_id)).to_be_visible(timeout=10_000)
    # Edge POST → server → SSE → card on screen (Playwright polls: an upper bound).
    latency_ms = (time.monotonic() - posted_at) * 1000
    (out_dir / "latency.txt").write_text(f"timeline_card_ms={latency_ms:.0f}\n")
    print(f"timeline_card_ms={latency_ms:.0f}")
    expect(card(page, event_id).locator(".duration")).to_have_text("ongoing")
    expect(card(page, event_id).locator("img.thumb-img")).to_have_attribute("data-state", "loaded")
    assert page.locator(".timeline-empty").is_hidden()

    # A better snapshot and the end: the same card changes, and shows the new picture.
    post_event(
        stack,
        cred,
        event_id=event_id,
        seq=1,
        phase="update",
        score=0.95,
        started_at=started,
        at=started + timedelta(seconds=2),
        snapshot=snapshot_jpeg((40, 180, 60)),
    )
    expect(card(page, event_id).locator(".score")).to_have_text("95 %")
    page.wait_for_function(
        """(img) => {
          const c = document.createElement('canvas'); c.width = 4; c.height = 4;
          const x = c.getContext('2d'); x.drawImage(img, 0, 0, 4, 4);
          const d = x.getImageData(0, 0, 4, 4).data; return d[1] > d[0] + 60;
        }""",
        arg=card(page, event_id).locator("img.thumb-img").element_handle(),
    )
    post_event(
        stack,
        cred,
        event_id=event_id,
        seq=2,
        phase="end",
        started_at=started,
        at=started + timedelta(seconds=7),
    )
    expect(card(page, event_id).locator(".duration")).to_have_text("7 s")
    assert card(page, event_id).get_attribute("data-active") == "false"
    assert page.locator(".event-card").count() == 1
    assert same_document(page), "no reload"


def test_filters_narrow_the_list_and_are_kept_in_the_route(
    browser: BrowserContext, stack: Stack, new_camera: Callable[[str], Camera]
) -> None:
    cam, cred = new_camera("Yard")
    other, other_cred = new_camera("Shed")
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    person = post_event(stack, cred, zones=["Gate"], started_at=now - timedelta(minutes=1))
    car = post_event(
        stack,
        cred,
        label="vehicle",
        obj="truck",
        zones=["Drive"],
        started_at=now - timedelta(minutes=2),
    )
    cat = post_event(stack, cred, label="pet", obj="cat", zones=["Gate"], started_at=yesterday)
    shed = post_event(stack, other_cred, started_at=now - timedelta(minutes=3))

    page = open_dashboard(browser, stack, route=f"#/events?camera={cam}")
    expect(card(page, cat)).to_be_visible()
    assert set(card_ids(page)) == {person, car, cat}
    expect(page).to_have_title("Events · Yard · livecam")

    # Labels: ticking narrows to those labels, and the route says so.
    page.get_by_label("Person").check()
    page.get_by_label("Pet").check()
    page.wait_for_url(re.compile(r"label=person&label=pet"))
    expect_cards(page, [person, cat])

    # Zone (typed): only the events seen in it.
    page.get_by_label("Pet").uncheck()
    page.get_by_label("Zone").fill("Gate")
    page.wait_for_url(re.compile(r"zone=Gate"))
    expect_cards(page, [person])

    # Date: only that local day.
    page.get_by_label("Person").uncheck()
    page.get_by_label("Zone").fill("")
    page.get_by_label("Date").fill(local_day(yesterday))
    page.wait_for_url(re.compile(rf"#/events\?camera={cam}&date={local_day(yesterday)}$"))
    expect_cards(page, [cat])

    # The filtered view is a bookmark: reloading it shows the same, and the key is not in it.
    page.reload()
    expect(card(page, cat)).to_be_visible()
    expect_cards(page, [cat])
    assert page.get_by_label("Date").input_value() == local_day(yesterday)
    assert stack.api.admin_key not in page.url

    # Camera: the menu lists the cameras by name.
    page.get_by_role("button", name="Clear filters").click()
    expect(card(page, shed)).to_be_visible()
    page.get_by_label("Camera").select_option(label="Shed")
    page.wait_for_url(re.compile(rf"camera={other}"))
    expect_cards(page, [shed])

    # A live event that does not match the filter stays out.
    post_event(stack, cred, started_at=datetime.now(UTC))
    newer = post_event(stack, other_cred, started_at=datetime.now(UTC))
    expect(card(page, newer)).to_be_visible(timeout=10_000)
    expect_cards(page, [newer, shed])


def test_paging_loads_the_rest(
    browser: BrowserContext, stack: Stack, new_camera: Callable[[str], Camera]
) -> None:
    cam, cred = new_camera("Busy street")
    total = PAGE_SIZE * 2 + 7
    start = datetime.now(UTC) - timedelta(hours=1)
    posted = [
        post_event(stack, cred, label="vehicle", obj="car", started_at=start - timedelta(minutes=i))
        for i in range(total)
    ]
    page = open_dashboard(browser, stack, route=f"#/events?camera={cam}")
    expect(page.locator(".event-card").first).to_be_visible()
    # The first page only; then the list grows as it is scrolled to the end.
    assert page.locator(".event-card").count() == PAGE_SIZE
    expect(page.get_by_role("button", name="Load more")).to_be_visible()
    for _ in range(10):
        if page.locator(".event-card").count() == total:
            break
        page.get_by_role("button", name="Load more").scroll_into_view_if_needed()
        page.wait_for_function(
            "(n) => document.querySelectorAll('.event-card').length > n",
            arg=page.locator(".event-card").count(),
        )
    assert card_ids(page) == posted, "every event once, newest first"
    expect(page.locator(".list-end")).to_have_text("No older events.")
    assert page.get_by_role("button", name="Load more").is_hidden()


def test_empty_error_and_missing_states(
    browser: BrowserContext, stack: Stack, new_camera: Callable[[str], Camera]
) -> None:
    cam, cred = new_camera("Quiet corner")
    page = open_dashboard(browser, stack, route=f"#/events?camera={cam}&label=pet")
    expect(page.locator(".timeline-empty")).to_contain_text("No events match these filters.")

    # The server failing: the page says so and offers to try again, which works.
    failing = {"on": True}

    def fail(route: Route) -> None:
        if failing["on"]:
            route.fulfill(
                status=503,
                json={"error": {"code": "unavailable", "message": "Database is down"}},
            )
        else:
            route.fallback()

    page.route(re.compile(r".*/api/events\?.*"), fail)
    page.get_by_label("Pet").uncheck()
    alert = page.locator(".timeline-view .notice")
    expect(alert).to_contain_text("Cannot load events: Database is down")
    assert page.locator(".timeline-empty").is_hidden()
    event_id = post_event(stack, cred)
    failing["on"] = False
    page.get_by_role("button", name="Try again").click()
    expect(card(page, event_id)).to_be_visible()
    assert alert.is_hidden()

    # An event that does not exist (deleted by retention, or a bad link).
    page.goto(f"{stack.api.url}/#/events/00000000-0000-4000-8000-000000000000")
    expect(page.locator("h1")).to_have_text("No such event")
    expect(page.locator(".event-view .notice")).to_contain_text("retention")


def test_timeline_on_a_phone(
    browser: BrowserContext, stack: Stack, new_camera: Callable[[str], Camera], out_dir: Path
) -> None:
    cam, cred = new_camera("Porch")
    for i in range(3):
        post_event(
            stack,
            cred,
            started_at=datetime.now(UTC) - timedelta(minutes=i),
            snapshot=snapshot_jpeg((60 * i, 90, 160)),
        )
    page = open_dashboard(browser, stack, route=f"#/events?camera={cam}")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.locator(".event-card")).to_have_count(3)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator(".event-card").first.bounding_box()
    assert box is not None
    assert box["width"] > 330, "one card per row"
    page.screenshot(path=str(out_dir / "timeline-phone.png"), full_page=True)
    assert admin_get(stack, f"/api/events?camera={cam}")["events"]
