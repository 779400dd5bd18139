"""Scale-out on loopback, every part real: two livekit-server nodes sharing a Redis
(Debian's redis-server), two API replicas (`python -m app`) on one PostgreSQL (Debian's
postgresql) fanning events out over the same Redis, and nginx/livecam.conf in front of
both with every replica and node in its upstreams.

The edge knows only https://nginx: its heartbeats and event posts are spread over both
replicas, its control websocket goes to the primary, its media to whichever LiveKit node
nginx picks. Viewers connect to each node directly, so one of them is on the node that
does not host the camera's room and is served across the cluster.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis as redis_client

from scripts.dbservers import Postgres, Redis, running_redis
from scripts.devstack import (
    Api,
    EdgeCamera,
    LiveKit,
    ManagedProcess,
    create_camera,
    free_tcp_port,
    start_api,
    start_edge,
    start_livekit,
    write_edge_config,
)
from scripts.nginxstack import Nginx, running_nginx
from scripts.viewer import Viewer
from tests.app.event_helpers import message


@dataclass
class Cluster:
    redis: Redis
    nodes: list[LiveKit]
    apis: list[Api]
    nginx: Nginx
    camera: str
    edge: ManagedProcess

    def client(self, base: str | None = None) -> httpx.Client:
        """Admin client for nginx (default) or one replica."""
        return httpx.Client(
            base_url=base or self.nginx.url,
            verify=self.nginx.ssl_context(),
            timeout=15.0,
            headers={"Authorization": f"Bearer {self.apis[0].admin_key}"},
        )


def wait(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("scaleout")
    database = postgres.create_database("scaleout_" + secrets.token_hex(4))
    https_port = free_tcp_port()
    api_ports = [free_tcp_port(), free_tcp_port()]
    lk_ports = [free_tcp_port(), free_tcp_port()]
    key, secret = "dev" + secrets.token_hex(4), secrets.token_urlsafe(32)
    with ExitStack() as stack:
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        redis = stack.enter_context(running_redis(workdir / "redis"))
        nginx = stack.enter_context(
            running_nginx(
                workdir / "nginx", api_port=api_ports, livekit_port=lk_ports, https_port=https_port
            )
        )
        # Edges, LiveKit's webhook client and this process trust nginx's certificate.
        mp.setenv("SSL_CERT_FILE", str(nginx.cert))
        nodes = []
        for i, port in enumerate(lk_ports):
            node = start_livekit(
                workdir / "livekit",
                # Webhooks through nginx: they land on either replica.
                webhook_url=f"{nginx.url}/api/livekit/webhook",
                api_key=key,
                api_secret=secret,
                port=port,
                redis_address=redis.address,
                name=f"node{i}",
            )
            stack.callback(node.stop)
            nodes.append(node)
        data_dir = workdir / "data"  # shared: server secret, VAPID key, snapshots, clips
        apis = []
        for i, port in enumerate(api_ports):
            api = start_api(
                workdir,
                nodes[i],
                port,
                data_dir,
                public_url=nginx.livekit_url,
                extra_env={"DATABASE_URL": database, "LIVECAM_REDIS_URL": redis.url},
                name=f"api{i}",
            )
            stack.callback(api.stop)
            apis.append(api)
        camera, credential = create_camera(apis[1], "Porch")
        config = write_edge_config(
            workdir / "edge.toml",
            nginx.url,
            [
                EdgeCamera(
                    camera,
                    credential,
                    {"kind": "synthetic", "width": 320, "height": 240, "fps": 15},
                )
            ],
            heartbeat_interval_s=1.0,
        )
        edge = start_edge(workdir, config)
        stack.callback(edge.stop)
        cluster = Cluster(redis, nodes, apis, nginx, camera, edge)
        for api in apis:
            with cluster.client(api.url) as c:
                wait(
                    lambda c=c: (
                        c.get(f"/api/cameras/{camera}/status").json()["state"] == "publishing"
                    ),
                    f"publishing, as seen by {api.url}",
                )
        yield cluster


def test_both_replicas_share_the_database_and_the_redis_link(cluster: Cluster) -> None:
    nodes = set()
    for api in cluster.apis:
        with cluster.client(api.url) as c:
            health = c.get("/api/health").json()
            assert health["status"] == "ok", health
            assert health["cluster"]["ok"] is True
            nodes.add(health["cluster"]["node"])
            assert [cam["id"] for cam in c.get("/api/cameras").json()] == [cluster.camera]
    assert len(nodes) == 2


def test_heartbeats_and_webhooks_reach_both_replicas(cluster: Cluster) -> None:
    """nginx spreads the edge's heartbeats (and LiveKit's webhooks) over both replicas."""
    access = wait(
        lambda: _upstreams_for(cluster, "POST /api/edge/heartbeat"),
        "heartbeats on both replicas",
    )
    assert access == {f"127.0.0.1:{api.port}" for api in cluster.apis}
    webhooks = _upstreams_for(cluster, "POST /api/livekit/webhook", need=1)
    assert webhooks, "LiveKit's webhooks went through nginx to a replica"


def _upstreams_for(cluster: Cluster, request: str, need: int = 2) -> set[str]:
    upstreams = set()
    for line in (cluster.nginx.process.log_path.parent / "upstream.log").read_text().splitlines():
        if request in line:
            upstreams.add(line.rsplit(" ", 2)[-2])
    return upstreams if len(upstreams) >= need else set()


async def test_viewers_on_either_node_see_the_camera(cluster: Cluster) -> None:
    """One room, hosted on one node (LiveKit's room→node map in Redis); a viewer on each
    node, with a token from a different replica, decodes the edge's H.264."""
    viewers = []
    try:
        for i, node in enumerate(cluster.nodes):
            with cluster.client(cluster.apis[i].url) as c:
                token = c.post(f"/api/cameras/{cluster.camera}/viewer-token").json()
            viewer = Viewer(node.url, token["token"])
            await viewer.connect(timeout=30)
            viewers.append(viewer)
        results = await asyncio.gather(*(v.wait_frames(15, timeout=60) for v in viewers))
        for viewer, frames in zip(viewers, results, strict=True):
            assert viewer.mime_type == "video/H264"
            assert {(f.width, f.height) for f in frames} == {(320, 240)}
    finally:
        for viewer in viewers:
            await viewer.close()
    r = redis_client.Redis.from_url(cluster.redis.url, decode_responses=True)
    room_hosts: dict[str, str] = r.hgetall("room_node_map")  # type: ignore[assignment]
    assert len(room_hosts) == 1, room_hosts  # one room, on one node
    assert len(r.hkeys("nodes")) == 2  # both nodes registered in the cluster


def test_an_event_posted_through_nginx_reaches_sse_clients_of_both_replicas(
    cluster: Cluster,
) -> None:
    credential = _edge_credential(cluster)
    streams = []
    with ExitStack() as stack:
        for api in cluster.apis:
            c = stack.enter_context(cluster.client(api.url))
            response = stack.enter_context(c.stream("GET", "/api/events/stream"))
            assert response.status_code == 200
            streams.append(response.iter_lines())
        sent = []
        with httpx.Client(
            base_url=cluster.nginx.url, verify=cluster.nginx.ssl_context(), timeout=15
        ) as edge:
            for _ in range(4):  # round robin: both replicas store some
                body = message()
                event_id = body["event_id"]
                response = edge.post(
                    "/api/edge/events",
                    json=body,
                    headers={"Authorization": f"Bearer {credential}"},
                )
                assert response.status_code == 200, response.text
                sent.append(event_id)
        for lines in streams:
            # The edge's own detector may post events too: look only at ours, in order.
            got: list[str] = []
            deadline = time.monotonic() + 30
            for line in lines:
                assert time.monotonic() < deadline, f"only {got} of {sent}"
                if line.startswith("data: "):
                    event_id = json.loads(line[6:])["id"]
                    if event_id in sent:
                        got.append(event_id)
                    if len(got) == len(sent):
                        break
            assert got == sent


def test_mjpeg_and_the_edge_websocket_go_through_nginx(cluster: Cluster) -> None:
    """JPEGs reach the server only over the edge's control websocket, which the edge
    opened through nginx; so MJPEG frames through nginx prove both ways work."""
    with (
        cluster.client() as c,
        c.stream("GET", f"/api/cameras/{cluster.camera}/mjpeg") as response,
    ):
        assert response.status_code == 200
        seen = b""
        for chunk in response.iter_bytes():
            seen += chunk
            if seen.count(b"\xff\xd8") >= 2:
                break
    assert seen.count(b"\xff\xd8") >= 2


def _edge_credential(cluster: Cluster) -> str:
    for line in (cluster.edge.log_path.parent / "edge.toml").read_text().splitlines():
        if line.startswith("credential = "):
            return str(json.loads(line.split(" = ", 1)[1]))
    raise AssertionError("no credential in the edge config")
