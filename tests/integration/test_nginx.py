"""nginx/livecam.conf in front of the real stack: Debian's nginx with a self-signed
certificate; the API over HTTPS and HTTP/2, LiveKit signalling through /rtc (an edge
publishes and a livekit.rtc subscriber decodes, both only knowing wss://nginx), MJPEG and
SSE unbuffered, rate limits on the sign-in and token endpoints, the client's address
passed on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scripts.devstack import Stack, free_tcp_port, running_stack
from scripts.nginxstack import Nginx, running_nginx
from scripts.viewer import Viewer
from tests.livestack import start_edge_cameras, wait_status


@dataclass
class Proxied:
    stack: Stack
    nginx: Nginx
    camera: str

    def client(self, **kwargs: object) -> httpx.Client:
        """An admin client that talks to nginx only (trusting its self-signed cert)."""
        return httpx.Client(
            base_url=self.nginx.url,
            verify=self.nginx.ssl_context(),
            http2=False,
            timeout=15.0,
            headers={"Authorization": f"Bearer {self.stack.api.admin_key}"},
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    workdir = tmp_path_factory.mktemp("nginx")
    https_port = free_tcp_port()
    public = f"wss://127.0.0.1:{https_port}"
    with (
        pytest.MonkeyPatch.context() as mp,
        running_stack(workdir / "stack", public_url=public) as stack,
        running_nginx(
            workdir / "nginx",
            api_port=stack.api.port,
            livekit_port=stack.livekit.port,
            https_port=https_port,
        ) as nginx,
    ):
        # The edge (a child process) and this process's subscriber reach LiveKit only via
        # wss://nginx; they trust its certificate like a Pi trusts a real one.
        mp.setenv("SSL_CERT_FILE", str(nginx.cert))
        (camera,), _edge = start_edge_cameras(
            stack,
            workdir,
            [{"kind": "synthetic", "width": 320, "height": 240, "fps": 15, "bitrate_kbps": 300}],
        )
        wait_status(stack, camera, lambda s: s["state"] == "publishing", timeout=60)
        yield Proxied(stack, nginx, camera)


def test_api_over_https_with_security_headers(proxied: Proxied) -> None:
    with proxied.client() as c:
        health = c.get("/api/health")
        assert health.status_code == 200
        assert health.headers["strict-transport-security"].startswith("max-age=")
        assert "frame-ancestors 'none'" in health.headers["content-security-policy"]
        assert "server" not in health.headers or "nginx/" not in health.headers["server"]
        page = c.get("/")
        assert page.status_code == 200
        assert "<html" in page.text.lower()
        cams = c.get("/api/cameras").json()
        assert [cam["id"] for cam in cams] == [proxied.camera]


def test_http2_is_offered(proxied: Proxied) -> None:
    curl = shutil.which("curl")
    assert curl, "curl is missing: ./run test installs it"
    version = subprocess.run(
        [
            curl,
            "-sS",
            "--http2",
            "--cacert",
            str(proxied.nginx.cert),
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            proxied.nginx.url + "/api/health",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert version == "2"


def test_plain_http_redirects_to_https(proxied: Proxied) -> None:
    response = httpx.get(f"http://127.0.0.1:{proxied.nginx.http_port}/api/health")
    assert response.status_code == 301
    assert response.headers["location"].startswith("https://")


async def test_edge_and_viewer_meet_through_rtc(proxied: Proxied) -> None:
    with proxied.client() as c:
        token = c.post(f"/api/cameras/{proxied.camera}/viewer-token").json()
    assert token["url"] == proxied.nginx.livekit_url
    viewer = Viewer(token["url"], token["token"])
    await viewer.connect(timeout=30)
    try:
        frames = await viewer.wait_frames(15, timeout=60)
        assert viewer.mime_type == "video/H264"
        assert {(f.width, f.height) for f in frames} == {(320, 240)}
    finally:
        await viewer.close()
    access = (proxied.nginx.process.log_path.parent / "access.log").read_text()
    assert "GET /rtc" in access, "signalling went through nginx"


def test_mjpeg_streams_unbuffered(proxied: Proxied) -> None:
    with proxied.client() as c:
        start = time.monotonic()
        with c.stream("GET", f"/api/cameras/{proxied.camera}/mjpeg") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
            seen = b""
            for chunk in response.iter_bytes():
                seen += chunk
                if seen.count(b"\xff\xd8") >= 2:
                    break
        # Two whole JPEGs within seconds: a buffering proxy would hold them back.
        assert time.monotonic() - start < 15


def test_sse_events_arrive_through_nginx(proxied: Proxied) -> None:
    with proxied.client() as c:
        ticket = c.post("/api/events/stream-ticket").json()
        with c.stream("GET", ticket["url"], headers={"Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            first = next(lines)  # the stream's first line arrives unbuffered
            assert first.startswith((":", "event:", "data:", "id:", "retry:"))


def test_sign_in_is_rate_limited_and_the_client_ip_reaches_the_api(proxied: Proxied) -> None:
    codes = []
    # From 127.0.0.2: nginx reaches the API from 127.0.0.1, so the audit log can only show
    # .2 if nginx passed the client's address on and the API trusted it.
    transport = httpx.HTTPTransport(local_address="127.0.0.2", verify=proxied.nginx.ssl_context())
    with httpx.Client(base_url=proxied.nginx.url, transport=transport) as c:
        for _ in range(12):
            body = {"username": "nobody", "password": "wrong-password"}
            codes.append(c.post("/api/auth/login", json=body).status_code)
    assert 429 in codes, codes
    assert codes[0] in {401, 403}, codes
    with proxied.client() as c:
        audit = c.get("/api/audit").json()
    failed = [e for e in audit if "nobody" in json.dumps(e)]
    assert failed, "failed sign-ins are audited"
    assert {e["ip"] for e in failed} == {"127.0.0.2"}


def test_token_endpoint_is_rate_limited(proxied: Proxied) -> None:
    codes = []
    with proxied.client() as c:
        for _ in range(60):
            codes.append(c.post(f"/api/cameras/{proxied.camera}/viewer-token").status_code)
    assert codes[0] == 200
    assert 429 in codes, codes


def test_clip_chunk_size_limit(proxied: Proxied, tmp_path: Path) -> None:
    # 1 MiB is the limit for JSON bodies; a 2 MiB body elsewhere is refused by nginx.
    with proxied.client() as c:
        response = c.post("/api/cameras", content=b"x" * (2 << 20))
    assert response.status_code == 413
