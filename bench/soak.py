"""Soak: two cameras for half an hour while the infrastructure fails under them.

    ./run bench soak [--minutes 30] [--cut-s 60]

Everything real, on this machine: PostgreSQL and Redis (Debian's), one livekit-server,
two API replicas sharing them, and one edge process with two cameras running inside a
network namespace of its own (``ip netns``, a veth pair), so its network can be cut like
a Wi-Fi outage. The cameras loop a recorded scene in which a visitor comes and goes every
44 s, which makes motion events; the edge records continuously and cuts a clip per
event. An SSE client follows each replica (reconnecting with Last-Event-ID).

Faults, at fixed shares of the run: restart livekit-server; restart the API replica the
edge talks to; restart Redis; cut the edge's network for ``--cut-s``; restart the other
replica. After each, the time until a fresh subscriber decodes both cameras again.

At the end (after the edge has drained its outbox) it prints and checks: every event the
edge started is stored (none lost), none is stored twice (no two rows for one start), each
replica's SSE client saw every event, and each camera's recording has no gap (recording
is local to the edge, so not even the cut may leave one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.live import CACHE
from scripts.dbservers import running_postgres, running_redis
from scripts.devstack import (
    Api,
    EdgeCamera,
    ManagedProcess,
    create_camera,
    free_tcp_port,
    start_api,
    start_livekit,
    write_edge_config,
)
from scripts.media import make_scene_clip
from scripts.viewer import Viewer

CLIP = CACHE / "soak-visitor-640x480-44s.mp4"
EVENT_STARTED = re.compile(r"event started camera=(\S+) event=(\S+)")
EVENT_ENDED = re.compile(r"event ended camera=(\S+) event=(\S+)")
MAX_GAP_S = 1.0


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@dataclass
class Namespace:
    """A network namespace joined to this host by a veth pair."""

    name: str
    host_if: str
    host_ip: str
    ns_ip: str
    cuts: list[tuple[float, float]] = field(default_factory=list)

    def prefix(self) -> list[str]:
        """argv prefix that runs a program inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def cut(self, seconds: float) -> None:
        """Take the link down for ``seconds`` (the edge sees its network vanish)."""
        start = time.time()
        sh("ip", "link", "set", self.host_if, "down")
        try:
            time.sleep(seconds)
        finally:
            sh("ip", "link", "set", self.host_if, "up")
            self.cuts.append((start, time.time()))


@contextlib.contextmanager
def edge_namespace() -> Iterator[Namespace]:
    """A fresh namespace with 10.X.Y.2 inside and 10.X.Y.1 on this host."""
    if os.geteuid() != 0:
        raise SystemExit("soak: network namespaces need root (the edge's network is cut)")
    tag = secrets.token_hex(3)
    name, host_if, ns_if = f"lcsoak-{tag}", f"lch{tag}", f"lce{tag}"
    octet2, octet3 = 100 + secrets.randbelow(100), secrets.randbelow(250)
    host_ip, ns_ip = f"10.{octet2}.{octet3}.1", f"10.{octet2}.{octet3}.2"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", name)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        inside = ["ip", "netns", "exec", name]
        sh(*inside, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        sh(*inside, "ip", "link", "set", ns_if, "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        yield Namespace(name, host_if, host_ip, ns_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


class SseFollower(threading.Thread):
    """Follows one replica's event stream forever, reconnecting with Last-Event-ID."""

    def __init__(self, api: Api, name: str) -> None:
        super().__init__(daemon=True, name=f"sse-{name}")
        self.api = api
        self.label = name
        self.seen: set[str] = set()
        #: Streams opened (1 + the reconnects that worked).
        self.opened = 0
        self.last_id: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            headers = {"Authorization": f"Bearer {self.api.admin_key}"}
            if self.last_id is not None:
                headers["Last-Event-ID"] = self.last_id
            try:
                with (
                    httpx.Client(timeout=httpx.Timeout(10.0, read=30.0)) as client,
                    client.stream("GET", self.api.url + "/api/events/stream", headers=headers) as r,
                ):
                    if r.status_code == 200:
                        self.opened += 1
                    for line in r.iter_lines():
                        if self.stop.is_set():
                            return
                        if line.startswith("id: "):
                            self.last_id = line[4:]
                        elif line.startswith("data: "):
                            self.seen.add(json.loads(line[6:])["id"])
            except (httpx.HTTPError, OSError):
                pass
            self.stop.wait(0.5)


@dataclass
class Recovery:
    fault: str
    seconds: float


def ensure_clip() -> Path:
    if not CLIP.exists():
        print(f"soak: encoding {CLIP.name} (once)...", file=sys.stderr)
        visitor = np.zeros((240, 100, 3), np.uint8)
        visitor[:, :] = (200, 60, 40)
        visitor[20:60, 30:70] = (230, 200, 170)
        tmp = CLIP.with_suffix(".tmp.mp4")
        # Long empty stretches: the motion background settles between visits, so each
        # visit is an event of its own.
        make_scene_clip(
            tmp, visitor, width=640, height=480, fps=15, empty_s=20, visit_s=4, after_s=20
        )
        tmp.rename(CLIP)
    return CLIP


async def video_back(api: Api, cameras: list[str], timeout: float = 120.0) -> float:
    """Seconds until a fresh subscriber decodes frames of every camera."""
    start = time.monotonic()
    deadline = start + timeout
    for cam in cameras:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no video from {cam} within {timeout:.0f} s")
            try:
                with httpx.Client(base_url=api.url, timeout=10) as c:
                    token = c.post(
                        f"/api/cameras/{cam}/viewer-token",
                        headers={"Authorization": f"Bearer {api.admin_key}"},
                    ).json()
                viewer = Viewer(token["url"], token["token"])
                try:
                    await viewer.connect(timeout=min(20.0, left))
                    await viewer.wait_frames(5, timeout=min(20.0, left))
                    break
                finally:
                    await viewer.close()
            except (TimeoutError, httpx.HTTPError, KeyError, Exception):
                await asyncio.sleep(1.0)
    return time.monotonic() - start


def server_events(api: Api) -> list[dict[str, Any]]:
    """Every event the server has (all pages)."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(
        base_url=api.url, timeout=20, headers={"Authorization": f"Bearer {api.admin_key}"}
    ) as c:
        while True:
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/api/events", params=params).json()
            out += page["events"]
            cursor = page["next_cursor"]
            if not cursor:
                return out


def edge_events(log: Path) -> tuple[set[str], set[str]]:
    """(started, ended) event ids from the edge's log."""
    text = log.read_text(errors="replace")
    return (
        {m.group(2) for m in EVENT_STARTED.finditer(text)},
        {m.group(2) for m in EVENT_ENDED.finditer(text)},
    )


def recording_gaps(data_dir: Path, camera: str) -> tuple[int, list[tuple[float, float]]]:
    """(segments, gaps longer than MAX_GAP_S as (start, end) wall times) of a camera."""
    index = data_dir / camera / "segments" / "index.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT start_us, end_us FROM segments WHERE end_us IS NOT NULL ORDER BY start_us"
        ).fetchall()
    gaps = []
    for (_, end), (start, _) in itertools.pairwise(rows):
        if (start - end) / 1e6 > MAX_GAP_S:
            gaps.append((end / 1e6, start / 1e6))
    return len(rows), gaps


async def soak(args: argparse.Namespace) -> int:
    ensure_clip()
    total_s = args.minutes * 60
    workdir = CACHE / "soak" / time.strftime("%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"soak: {args.minutes:.0f} min; logs in {workdir}", file=sys.stderr)
    recoveries: list[Recovery] = []
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(edge_namespace())
        pg = stack.enter_context(running_postgres(workdir / "postgres"))
        redis = stack.enter_context(running_redis(workdir / "redis"))
        ports = [free_tcp_port(), free_tcp_port()]
        livekit = start_livekit(
            workdir,
            webhook_url=f"http://{ns.host_ip}:{ports[0]}/api/livekit/webhook",
            host=ns.host_ip,
        )
        stack.callback(livekit.stop)
        apis: list[Api] = []
        for i, port in enumerate(ports):
            api = start_api(
                workdir,
                livekit,
                port,
                workdir / "data",
                extra_env={"DATABASE_URL": pg.url, "LIVECAM_REDIS_URL": redis.url},
                name=f"api{i}",
                host=ns.host_ip,
            )
            stack.callback(api.stop)
            apis.append(api)
        cams = []
        for name in ("Porch", "Garden"):
            cam_id, credential = create_camera(apis[0], name)
            cams.append(
                EdgeCamera(
                    cam_id,
                    credential,
                    {"kind": "file", "path": str(CLIP)},
                    # Short events: the visitor's arrival and departure are one each.
                    detect={"motion_quiet_s": 1.0, "end_after_s": 3.0},
                    record={"segment_s": 30},
                )
            )
        edge_data = workdir / "edge-data"
        config = write_edge_config(
            workdir / "edge.toml",
            apis[0].url,
            cams,
            heartbeat_interval_s=2.0,
            data_dir=str(edge_data),
        )
        edge = ManagedProcess(
            "edge",
            [*ns.prefix(), sys.executable, "-m", "edge", "run", "--config", str(config)],
            workdir / "edge.log",
            {**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        edge.start()
        stack.callback(edge.stop)
        camera_ids = [c.camera_id for c in cams]
        followers = [SseFollower(api, f"api{i}") for i, api in enumerate(apis)]
        for f in followers:
            f.start()
        recoveries.append(Recovery("start", await video_back(apis[0], camera_ids)))
        started = time.monotonic()

        async def at(share: float) -> None:
            delay = started + share * total_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

        def restart(proc: Any) -> None:
            proc.stop()
            proc.start()

        faults: list[tuple[float, str, Any]] = [
            (0.15, "livekit-server restarted", lambda: restart(livekit)),
            (0.30, "API replica 1 (the edge's) restarted", lambda: restart(apis[0])),
            (0.45, "Redis restarted", lambda: restart(redis)),
            (0.60, f"edge network cut {args.cut_s:.0f} s", lambda: ns.cut(args.cut_s)),
            (0.75, "API replica 2 restarted", lambda: restart(apis[1])),
        ]
        for share, label, action in faults:
            await at(share)
            print(f"soak: {label}", file=sys.stderr)
            await asyncio.to_thread(action)
            recoveries.append(Recovery(label, await video_back(apis[0], camera_ids)))
        await at(1.0)
        # The cameras keep running; stop counting new events, let the outbox drain.
        edge_started, edge_ended = edge_events(edge.log_path)
        deadline = time.monotonic() + 300
        while True:
            stored = {e["id"]: e for e in server_events(apis[0])}
            missing = edge_started - set(stored)
            unended = {i for i in edge_ended if i in stored and stored[i]["active"]}
            if (not missing and not unended) or time.monotonic() > deadline:
                break
            await asyncio.sleep(2)
        await asyncio.sleep(3)  # let SSE deliver the last changes
        for f in followers:
            f.stop.set()
        rows = server_events(apis[1])
        starts = [(e["camera_id"], e["started_at"]) for e in rows]
        duplicates = len(starts) - len(set(starts))
        ours = {e["id"] for e in rows if e["id"] in edge_started}
        sse_missing = {f.label: len(ours - f.seen) for f in followers}
        clips = sum(1 for e in rows if e.get("clip"))
        gaps = {cam: recording_gaps(edge_data, cam) for cam in camera_ids}
    return report(
        args,
        recoveries,
        edge_started,
        missing,
        unended,
        duplicates,
        sse_missing,
        [f.opened for f in followers],
        len(rows),
        clips,
        gaps,
        ns.cuts,
    )


def report(
    args: argparse.Namespace,
    recoveries: list[Recovery],
    started: set[str],
    missing: set[str],
    unended: set[str],
    duplicates: int,
    sse_missing: dict[str, int],
    opened: list[int],
    stored: int,
    clips: int,
    gaps: dict[str, tuple[int, list[tuple[float, float]]]],
    cuts: list[tuple[float, float]],
) -> int:
    print()
    print(
        f"livecam soak, {args.minutes:.0f} min, 2 cameras, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    for r in recoveries:
        print(f"  {r.fault:<40} live video back in {r.seconds:5.1f} s")
    print(
        f"  events: edge started {len(started)}, server stored {stored} "
        f"(lost {len(missing)}, still open on the server though ended {len(unended)}, "
        f"duplicate rows {duplicates}); with a clip {clips}"
    )
    print(
        "  SSE: events missed per replica "
        + ", ".join(f"{k} {v}" for k, v in sse_missing.items())
        + f" (streams opened {opened})"
    )
    bad_gaps = 0
    for cam, (segments, cam_gaps) in gaps.items():
        outside = [
            g for g in cam_gaps if not any(c0 - 1 <= g[0] and g[1] <= c1 + 30 for c0, c1 in cuts)
        ]
        bad_gaps += len(outside)
        print(
            f"  recording {cam}: {segments} segments, gaps > {MAX_GAP_S:.0f} s: {len(cam_gaps)}"
            f" ({len(outside)} outside the cut)"
        )
    ok = not missing and not unended and duplicates == 0 and not any(sse_missing.values())
    ok = ok and bad_gaps == 0 and len(started) > 0
    print("result:", "no event lost or repeated, recordings continuous" if ok else "FAILED")
    return 0 if ok else 1


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="./run bench soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--cut-s", type=float, default=60.0)
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
