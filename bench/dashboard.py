"""Dashboard benchmark: time from page load to the first decoded frame of every tile.

Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) opens the dashboard
served by the real API, with cameras published by a real edge through the real, pinned
livekit-server. Each tile marks `livecam:first-frame:<camera>` (User Timing) when its
<video> presents its first frame (requestVideoFrameCallback); marks are in ms since
navigation start. One browser runs throughout; every load is a new page: "cold" in a new
browser context (nothing cached, the 1.4 MB livekit-client included), "warm" a reload in
a context that has loaded the dashboard before.

Then the MJPEG relay part (bench/mjpeg.py): 1 camera to 20 viewers at the server's
5 fps, frames delivered per viewer and the API's CPU.

    ./run bench dashboard [--runs 10] [--cameras 1,4] [--width 320 --height 240 --fps 15]
                          [--mjpeg-viewers 20] [--mjpeg-seconds 20] [--no-mjpeg]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from bench import mjpeg
from scripts.devstack import (
    EdgeCamera,
    ManagedProcess,
    Stack,
    create_camera,
    running_stack,
    start_edge,
    write_edge_config,
)
from scripts.viewer import percentile
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VENDOR, VIEWPORT

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "livecam" / "bench"
TARGET_P50_S = 1.5
KEY_STORAGE = "livecam.adminKey"


@dataclass
class Scenario:
    """Figures for one number of cameras and one cache state."""

    cameras: int
    cache: str
    first_frame: list[float] = field(default_factory=list)  # s, one per tile
    all_tiles: list[float] = field(default_factory=list)  # s, one per run (slowest tile)
    token: list[float] = field(default_factory=list)  # s, viewer token received
    connected: list[float] = field(default_factory=list)  # s, LiveKit room joined
    failed: int = 0  # tiles without a frame within the timeout


def marks(page: Page) -> dict[str, float]:
    found: list[list[Any]] = page.evaluate(
        "performance.getEntriesByType('mark')"
        ".filter((m) => m.name.startsWith('livecam:')).map((m) => [m.name, m.startTime])"
    )
    return {str(name): float(t) / 1000 for name, t in found}


def measure_page(page: Page, url: str, camera_ids: list[str], result: Scenario) -> None:
    """Load (or reload) the dashboard and record the marks of every tile."""
    page.goto(url)
    # A tile without a frame within 20 s is counted below.
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(
            "(n) => performance.getEntriesByType('mark')"
            ".filter((m) => m.name.startsWith('livecam:first-frame:')).length >= n",
            arg=len(camera_ids),
            timeout=20_000,
            polling=50,
        )
    found = marks(page)
    firsts = []
    for cam in camera_ids:
        first = found.get(f"livecam:first-frame:{cam}")
        if first is None:
            result.failed += 1
            continue
        firsts.append(first)
        result.first_frame.append(first)
        if f"livecam:token:{cam}" in found:
            result.token.append(found[f"livecam:token:{cam}"])
        if f"livecam:connected:{cam}" in found:
            result.connected.append(found[f"livecam:connected:{cam}"])
    if len(firsts) == len(camera_ids):
        result.all_tiles.append(max(firsts))


def new_context(browser: Browser, stack: Stack) -> BrowserContext:
    """A fresh context: empty cache and storage, signed in through sessionStorage."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(
        f"sessionStorage.setItem({json.dumps(KEY_STORAGE)}, {json.dumps(stack.api.admin_key)})"
    )
    return context


def run_scenarios(
    browser: Browser, stack: Stack, camera_ids: list[str], runs: int
) -> tuple[Scenario, Scenario]:
    """``runs`` cold loads (a new context each: nothing cached) and ``runs`` warm reloads,
    all in one running browser."""
    url = f"{stack.api.url}/#/"
    cold = Scenario(len(camera_ids), "cold")
    warm = Scenario(len(camera_ids), "warm")
    for _ in range(runs):
        context = new_context(browser, stack)
        try:
            measure_page(context.new_page(), url, camera_ids, cold)
        finally:
            context.close()
    context = new_context(browser, stack)
    try:
        page = context.new_page()
        page.goto(url)  # fills the cache
        for _ in range(runs):
            page.goto("about:blank")
            measure_page(page, url, camera_ids, warm)
    finally:
        context.close()
    return cold, warm


def start_cameras(
    stack: Stack, count: int, first: int, source: dict[str, Any], name: str
) -> tuple[list[str], ManagedProcess]:
    cams = []
    for i in range(first, first + count):
        cam_id, cred = create_camera(stack.api, f"Bench {i + 1}", f"bench-{i + 1}")
        cams.append(EdgeCamera(cam_id, cred, source))
    config = write_edge_config(stack.workdir / f"{name}.toml", stack.api.url, cams)
    edge = start_edge(stack.workdir, config, name=name)
    stack.edges.append(edge)
    return [c.camera_id for c in cams], edge


def wait_online(stack: Stack, camera_ids: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with stack.api.client() as c:
        while time.monotonic() < deadline:
            cams = {cam["id"]: cam for cam in c.get("/api/cameras").json()}
            if all(cams.get(cam, {}).get("online") for cam in camera_ids):
                return
            time.sleep(0.2)
    raise RuntimeError(f"cameras {camera_ids} not online after {timeout:.0f} s")


def report(results: list[Scenario], source: dict[str, Any], browser: str) -> bool:
    print()
    print(
        f"livecam dashboard, time from navigation start to first decoded frame per tile; "
        f"{browser}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(
        f"cameras: synthetic {source['width']}x{source['height']}@{source['fps']} "
        f"{source['bitrate_kbps']} kbit/s, livekit-server on loopback"
    )
    header = (
        "cameras",
        "cache",
        "tiles",
        "first p50",
        "first p95",
        "all p50",
        "all p95",
        "token p50",
        "joined p50",
    )
    print("{:<8} {:<6} {:>6} {:>10} {:>10} {:>9} {:>9} {:>10} {:>10}".format(*header))
    ok = True
    for r in results:
        p50 = percentile(r.first_frame, 50)
        ok = ok and p50 <= TARGET_P50_S and r.failed == 0
        tiles = f"{len(r.first_frame)}/{len(r.first_frame) + r.failed}"
        print(
            f"{r.cameras:<8} {r.cache:<6} {tiles:>6} "
            f"{p50:>9.2f}s {percentile(r.first_frame, 95):>9.2f}s "
            f"{percentile(r.all_tiles, 50):>8.2f}s {percentile(r.all_tiles, 95):>8.2f}s "
            f"{percentile(r.token, 50):>9.2f}s {percentile(r.connected, 50):>9.2f}s"
        )
    print(
        "first = each tile's first frame; all = the slowest tile of a load; token = viewer "
        "token received; joined = LiveKit room joined"
    )
    print(
        f"target: first frame p50 ≤ {TARGET_P50_S:.1f} s, every tile playing: "
        + ("met" if ok else "MISSED")
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="./run bench dashboard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=10, help="page loads per scenario")
    parser.add_argument("--cameras", default="1,4", help="camera counts, ascending")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--bitrate", type=int, default=300, help="kbit/s")
    parser.add_argument("--mjpeg-viewers", type=int, default=20)
    parser.add_argument("--mjpeg-seconds", type=float, default=20.0)
    parser.add_argument("--no-mjpeg", action="store_true", help="skip the MJPEG relay part")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.cameras.split(",") if n.strip()})
    if not CHROMIUM.is_file():
        print(f"bench: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    if not VENDOR.is_file():
        print(f"bench: {VENDOR} is missing: bash scripts/setup-dashboard.sh", file=sys.stderr)
        return 2
    source = {
        "kind": "synthetic",
        "width": args.width,
        "height": args.height,
        "fps": args.fps,
        "bitrate_kbps": args.bitrate,
    }
    results: list[Scenario] = []
    CACHE.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="dashboard-", dir=CACHE))
    with running_stack(workdir) as stack, sync_playwright() as pw:
        # Playwright gives the browser a fresh temporary profile.
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        camera_ids: list[str] = []
        for count in counts:
            added, _edge = start_cameras(
                stack, count - len(camera_ids), len(camera_ids), source, f"edge-{count}"
            )
            camera_ids += added
            wait_online(stack, camera_ids)
            if len(camera_ids) == count == counts[0]:
                run_scenarios(browser, stack, camera_ids, 1)  # warms the browser up
            print(
                f"bench: {count} camera(s), {args.runs} cold + {args.runs} warm loads...",
                file=sys.stderr,
            )
            results += run_scenarios(browser, stack, camera_ids, args.runs)
        version = f"Chromium {browser.version}"
        browser.close()
    shutil.rmtree(workdir, ignore_errors=True)
    ok = report(results, source, version)
    if not args.no_mjpeg:
        relay = argparse.Namespace(
            viewers=args.mjpeg_viewers, slow=1, seconds=args.mjpeg_seconds, source="synthetic"
        )
        ok = asyncio.run(mjpeg.run(relay, CACHE / "mjpeg")) == 0 and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
