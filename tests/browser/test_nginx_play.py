"""The dashboard through nginx/livecam.conf: headless Chromium opens https://nginx/, signs
in, and a camera plays over WebRTC with its signalling through nginx's /rtc (media goes
straight to LiveKit's ports, as in production)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.devstack import Stack, free_tcp_port, running_stack
from scripts.nginxstack import Nginx, running_nginx
from tests.browser.conftest import Launch
from tests.browser.dashboard import open_dashboard, tile, wait_modes, wait_video_plays
from tests.livestack import start_edge_cameras, wait_status


@dataclass
class Site:
    stack: Stack
    nginx: Nginx
    camera: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir: Path = tmp_path_factory.mktemp("nginx-browser")
    https_port = free_tcp_port()
    with (
        pytest.MonkeyPatch.context() as mp,
        running_stack(workdir / "stack", public_url=f"wss://127.0.0.1:{https_port}") as stack,
        running_nginx(
            workdir / "nginx",
            api_port=stack.api.port,
            livekit_port=stack.livekit.port,
            https_port=https_port,
        ) as nginx,
    ):
        mp.setenv("SSL_CERT_FILE", str(nginx.cert))  # the edge trusts nginx's CA
        (camera,), _edge = start_edge_cameras(
            stack,
            workdir,
            [{"kind": "synthetic", "width": 320, "height": 240, "fps": 15, "bitrate_kbps": 300}],
        )
        wait_status(stack, camera, lambda s: s["state"] == "publishing", timeout=60)
        yield Site(stack, nginx, camera)


def test_dashboard_plays_a_camera_through_nginx(launch: Launch, site: Site) -> None:
    # A self-signed certificate: Chromium is told to accept it, as a user would a real one.
    browser = launch(["--ignore-certificate-errors"])
    page = open_dashboard(browser, site.stack, base_url=site.nginx.url)
    wait_modes(page, [site.camera], "webrtc", timeout_s=45)
    wait_video_plays(page, tile(page, site.camera).locator("video"))
    assert page.url.startswith(site.nginx.url)
    # The browser's signalling websocket went through nginx (101 Switching Protocols);
    # nginx logs it when it closes, so close the page and wait for the line.
    page.close()
    log = site.nginx.process.log_path.parent / "access.log"

    def upgraded() -> bool:
        return any(
            '"GET /rtc' in line and '" 101 ' in line and "Chrome" in line
            for line in log.read_text().splitlines()
        )

    deadline = time.monotonic() + 30
    while not upgraded():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
