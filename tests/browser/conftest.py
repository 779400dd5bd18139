"""Browser tests: Debian's Chromium, headless, driven by Playwright, against the real stack.

Each test gets a fresh Chromium profile (launch_persistent_context on a new directory),
so sessionStorage and caches never leak between tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Playwright, ViewportSize, sync_playwright

from scripts.devstack import ROOT

CHROMIUM = Path(os.environ.get("LIVECAM_CHROMIUM", "/usr/bin/chromium"))
VENDOR = ROOT / "assets" / "vendor" / "livekit-client.esm.mjs"
OUT = ROOT / "out" / "browser"

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # LiveKit listens on 127.0.0.1 only. Chromium leaves loopback out of ICE by default;
    # it still works here through the host's other address, but not on a machine whose
    # only interface is lo.
    "--allow-loopback-in-peer-connection",
    # Keep timers and rendering going for pages that are not focused.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

VIEWPORT: ViewportSize = {"width": 1280, "height": 720}


@pytest.fixture(scope="module")
def pw() -> Iterator[Playwright]:
    """Playwright for one module (closed before other suites' event loops run)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `./run test` installs Debian's chromium")
    if not VENDOR.is_file():
        pytest.fail(f"{VENDOR} is missing: run `bash scripts/setup-dashboard.sh` (./run does)")
    with sync_playwright() as p:
        yield p


Launch = Callable[..., BrowserContext]


@pytest.fixture
def launch(pw: Playwright, tmp_path: Path) -> Iterator[Launch]:
    """Starts headless Chromium on a fresh profile (``extra_args`` added to the flags);
    everything it started is closed after the test."""
    contexts: list[BrowserContext] = []

    def _launch(extra_args: Sequence[str] = ()) -> BrowserContext:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / f"profile-{len(contexts)}"),
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, *extra_args],
            headless=True,
            viewport=VIEWPORT,
            accept_downloads=True,
        )
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context

    yield _launch
    for context in contexts:
        context.close()


@pytest.fixture
def browser(launch: Launch) -> BrowserContext:
    """A fresh headless Chromium profile."""
    return launch()


@pytest.fixture
def out_dir(request: pytest.FixtureRequest) -> Path:
    """out/browser/<test name>/ for screenshots a person may want to look at."""
    path: Path = OUT / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path
