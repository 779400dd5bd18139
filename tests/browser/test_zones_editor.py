"""The zone and privacy-mask editor (#/camera/<id>/zones) in headless Chromium against
the real API: polygons drawn by clicks on the camera's snapshot are saved with PUT and
come back from GET; corners move by dragging and by keyboard; the server's validation
errors are shown next to the form; unsaved changes are not lost by a stray click."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, expect

from scripts.devstack import Stack, create_camera
from tests.browser.dashboard import admin_get, open_dashboard, start_camera_with_credential
from tests.livestack import wait_status

pytestmark = [pytest.mark.live, pytest.mark.browser]

# The opacity of each shape's fill colour (rgba(r, g, b, a); rgb() is opaque).
_FILL_ALPHAS_JS = r"""(els) => els.map((e) => {
  const m = /rgba\(.*,\s*([\d.]+)\)/.exec(getComputedStyle(e).fill);
  return m ? Number(m[1]) : 1;
})"""

SYNTH = {"kind": "synthetic", "width": 320, "height": 240, "fps": 10, "bitrate_kbps": 200}


@pytest.fixture(scope="module")
def camera(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A publishing camera, so the editor has a snapshot to draw on."""
    cam, _credential, edge = start_camera_with_credential(
        stack, tmp_path_factory.mktemp("edge"), "Front door", SYNTH
    )
    wait_status(stack, cam, lambda s: s["online"], timeout=60)
    yield cam
    edge.stop()


def zones_of(stack: Stack, cam: str) -> list[dict[str, Any]]:
    zones: list[dict[str, Any]] = admin_get(stack, f"/api/cameras/{cam}/zones")["zones"]
    return zones


def put_zones(stack: Stack, cam: str, zones: list[dict[str, Any]]) -> None:
    with stack.api.client() as c:
        c.put(f"/api/cameras/{cam}/zones", json={"zones": zones}).raise_for_status()


def click_at(page: Page, x: float, y: float) -> None:
    """Clicks the drawing at normalised (x, y) of the picture."""
    box = page.locator(".zones-svg").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])


def assert_points(got: Sequence[Sequence[float]], want: Sequence[Sequence[float]]) -> None:
    assert len(got) == len(want), got
    for (gx, gy), (wx, wy) in zip(got, want, strict=True):
        assert math.isclose(gx, wx, abs_tol=0.01), (got, want)
        assert math.isclose(gy, wy, abs_tol=0.01), (got, want)


def open_editor(browser: BrowserContext, stack: Stack, cam: str) -> Page:
    page = open_dashboard(browser, stack, route=f"#/camera/{cam}/zones")
    expect(page.locator("h1")).to_contain_text("Zones ·")
    expect(page.get_by_role("button", name="Add zone")).to_be_enabled()
    return page


def test_draw_name_and_save_a_zone_and_a_mask(
    browser: BrowserContext, stack: Stack, camera: str, out_dir: Path
) -> None:
    page = open_dashboard(browser, stack, route=f"#/camera/{camera}")
    page.get_by_role("link", name="Zones").click()
    page.wait_for_url(f"**/#/camera/{camera}/zones")
    expect(page.locator("h1")).to_have_text("Zones · Front door")
    # The camera's latest picture is the background, and the drawing has its shape.
    background = page.locator("img.zones-bg")
    expect(background).to_be_visible(timeout=20_000)
    assert background.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [320, 240]
    svg_box = page.locator(".zones-svg").bounding_box()
    assert svg_box is not None
    assert math.isclose(svg_box["width"] / svg_box["height"], 4 / 3, rel_tol=0.01)
    expect(page.locator(".zones-empty")).to_be_visible()

    zone = [(0.1, 0.5), (0.6, 0.45), (0.7, 0.95), (0.15, 0.9)]
    page.get_by_role("button", name="Add zone").click()
    for x, y in zone:
        click_at(page, x, y)
    # A click on the first corner closes the outline.
    click_at(page, *zone[0])
    expect(page.locator(".zones-canvas")).to_have_attribute("data-mode", "idle")
    expect(page.locator(".zones-svg polygon.outline")).to_have_count(1)
    item = page.locator(".zone-item").first
    item.get_by_label("Zone name").fill("Driveway")
    item.get_by_role("checkbox", name="Person").check()
    item.get_by_role("checkbox", name="Vehicle").check()
    assert page.locator(".zones-view").get_attribute("data-dirty") == "true"
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".zones-status")).to_contain_text("Saved.")
    (saved,) = zones_of(stack, camera)
    assert saved["name"] == "Driveway"
    assert saved["kind"] == "zone"
    assert saved["labels"] == ["person", "vehicle"]
    assert_points(saved["points"], zone)

    # A mask, closed with the button this time.
    mask = [(0.7, 0.05), (0.95, 0.05), (0.95, 0.3)]
    page.get_by_role("button", name="Add mask").click()
    for x, y in mask:
        click_at(page, x, y)
    page.get_by_role("button", name="Finish outline").click()
    page.locator(".zone-item").nth(1).get_by_label("Mask name").fill("Neighbour's window")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".zones-status")).to_contain_text("Saved.")
    driveway, window = zones_of(stack, camera)
    assert driveway["name"] == "Driveway"
    assert driveway["id"] == saved["id"]
    assert window["name"] == "Neighbour's window"
    assert window["kind"] == "mask"
    assert "labels" not in window
    assert_points(window["points"], mask)
    # Masks are drawn filled, zones outlined.
    alphas = page.eval_on_selector_all(".zones-svg g.shape .outline", _FILL_ALPHAS_JS)
    assert alphas[1] > 0.5 > alphas[0], alphas
    page.screenshot(path=str(out_dir / "zones.png"))

    # The editor shows what is stored when opened again.
    page.reload()
    expect(page.locator(".zone-item")).to_have_count(2)
    assert page.locator(".zone-item").first.get_by_label("Zone name").input_value() == "Driveway"


def test_corners_move_by_drag_and_keyboard_and_a_polygon_is_deleted(
    browser: BrowserContext, stack: Stack
) -> None:
    cam, _ = create_camera(stack.api, "Garden")
    put_zones(
        stack,
        cam,
        [{"name": "Lawn", "kind": "zone", "points": [[0.2, 0.2], [0.8, 0.2], [0.5, 0.8]]}],
    )
    page = open_editor(browser, stack, cam)
    # No picture from an offline camera: it says so, and drawing still works (16:9).
    expect(page.locator(".zones-view .notice")).to_contain_text("No picture from the camera")
    handles = page.locator(".zones-svg circle.handle")
    expect(handles).to_have_count(3)  # the first polygon is selected

    svg_box = page.locator(".zones-svg").bounding_box()
    assert svg_box is not None
    start = handles.nth(2).bounding_box()
    assert start is not None
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(
        svg_box["x"] + 0.6 * svg_box["width"], svg_box["y"] + 0.9 * svg_box["height"], steps=5
    )
    page.mouse.up()
    handles.nth(0).focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")  # 4 × 0.005
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".zones-status")).to_contain_text("Saved.")
    (lawn,) = zones_of(stack, cam)
    assert_points(lawn["points"], [(0.22, 0.2), (0.8, 0.2), (0.6, 0.9)])

    page.get_by_role("button", name="Delete Lawn").click()
    expect(page.locator(".zone-item")).to_have_count(0)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".zones-status")).to_contain_text("Saved.")
    assert zones_of(stack, cam) == []


def test_validation_errors_are_shown_and_nothing_is_stored(
    browser: BrowserContext, stack: Stack
) -> None:
    cam, _ = create_camera(stack.api, "Hall")
    page = open_editor(browser, stack, cam)
    error = page.locator("#zones-error")

    # Said in the page, before anything is sent: too few corners, a missing name.
    page.get_by_role("button", name="Add zone").click()
    click_at(page, 0.1, 0.1)
    click_at(page, 0.4, 0.1)
    page.get_by_role("button", name="Save").click()
    expect(error).to_contain_text("needs at least 3 points")
    click_at(page, 0.3, 0.5)
    page.locator(".zone-item").first.get_by_label("Zone name").fill("")
    page.get_by_role("button", name="Save").click()
    expect(error).to_contain_text("needs a name")

    # Refused by the server: an outline that crosses itself. The message says which.
    page.get_by_role("button", name="Undo changes").click()
    page.get_by_role("button", name="Add zone").click()
    for x, y in [(0.1, 0.1), (0.9, 0.6), (0.9, 0.1), (0.2, 0.9)]:
        click_at(page, x, y)
    page.get_by_role("button", name="Finish outline").click()
    page.get_by_role("button", name="Save").click()
    expect(error).to_contain_text("Not saved.")
    expect(error).to_contain_text("cross")
    expect(page.locator(".zone-item.invalid")).to_have_count(1)
    assert page.locator(".zone-item input.zone-name").get_attribute("aria-invalid") == "true"
    assert zones_of(stack, cam) == []


def test_unsaved_changes_are_not_lost_by_a_stray_click(
    browser: BrowserContext, stack: Stack
) -> None:
    cam, _ = create_camera(stack.api, "Garage")
    page = open_editor(browser, stack, cam)
    page.get_by_role("button", name="Add mask").click()
    for x, y in [(0.1, 0.1), (0.5, 0.1), (0.3, 0.5)]:
        click_at(page, x, y)

    asked: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("link", name="Timeline").click()
    page.wait_for_function("() => location.hash.endsWith('/zones')")
    assert len(asked) == 1
    assert "unsaved" in asked[0]
    expect(page.locator(".zone-item")).to_have_count(1)
    expect(page.locator("h1")).to_have_text("Zones · Garage")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="Timeline").click()
    page.wait_for_url("**/#/events")
    expect(page.locator("h1")).to_have_text("Events")
    assert zones_of(stack, cam) == []
