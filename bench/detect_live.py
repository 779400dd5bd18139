"""Detection on the real stack: from a person appearing in a camera's picture to the event
on an SSE client. livekit-server, the API and an edge process (file camera: a yard with
the astronaut photograph standing in it from 6 s to 12 s of every 16 s loop). A
`livekit.rtc` subscriber finds, in the published video itself, the first frame of each
visit (its capture timestamp travels with it as frame metadata); an SSE client on
/api/events/stream notes when each person event arrives."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.photos import skimage_picture
from scripts.devstack import (
    EdgeCamera,
    Stack,
    create_camera,
    running_stack,
    start_edge,
    write_edge_config,
)
from scripts.media import make_scene_clip
from scripts.sse import EventStreamReader
from scripts.viewer import Viewer

EMPTY_S, VISIT_S, AFTER_S = 6.0, 6.0, 4.0


@dataclass
class LiveLatency:
    """Per visit: appearance → event on SSE, and detected picture → event on SSE (s)."""

    appear_to_sse: list[float]
    detect_to_sse: list[float]
    visits: int
    events: int


def _parse(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def _watch(stack: Stack, camera_id: str, seconds: float) -> Viewer:
    with stack.api.client() as c:
        token = c.post(f"/api/cameras/{camera_id}/viewer-token").json()["token"]
    viewer = Viewer(stack.livekit.url, token)
    await viewer.connect()
    await asyncio.sleep(seconds)
    await viewer.close()
    return viewer


def _visits(viewer: Viewer) -> list[float]:
    """Capture times (s since the epoch) of the first frame of each visit."""
    frames = [f for f in viewer.frames if f.capture_us is not None]
    if not frames:
        return []
    h, w = frames[0].thumb.shape
    centre = (slice(h // 4, h - 2), slice(w // 3, 2 * w // 3))
    empty = np.median([f.thumb[centre].astype(np.float64) for f in frames[:10]], axis=0)
    out, present = [], False
    for f in frames:
        diff = float(np.mean(np.abs(f.thumb[centre].astype(np.float64) - empty)))
        if diff > 25 and not present:
            out.append((f.capture_us or 0) / 1e6)
        present = diff > 25
    return out


def measure_live(workdir: Path, loops: int = 6) -> LiveLatency:
    """Runs the stack for ``loops`` visits and pairs each visit with its person event."""
    clip = make_scene_clip(
        workdir / "visit.mp4",
        skimage_picture("astronaut"),
        empty_s=EMPTY_S,
        visit_s=VISIT_S,
        after_s=AFTER_S,
    )
    with running_stack(workdir / "stack") as stack:
        cam_id, cred = create_camera(stack.api, "bench porch")
        detect = {"enabled": True, "interval_s": 0.5, "end_after_s": 3.0}
        source = {"kind": "file", "path": str(clip)}
        config = write_edge_config(
            workdir / "edge.toml", stack.api.url, [EdgeCamera(cam_id, cred, source, detect)]
        )
        stack.edges.append(start_edge(workdir, config))
        deadline = time.monotonic() + 60
        with stack.api.client() as c:
            while not c.get(f"/api/cameras/{cam_id}").json()["online"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the bench camera never came online")
                time.sleep(0.2)
        reader = EventStreamReader(stack.api.url, stack.api.admin_key)
        period = EMPTY_S + VISIT_S + AFTER_S
        viewer = asyncio.run(_watch(stack, cam_id, loops * period + 4))
        reader.close()
        events = list(reader.events)
    starts = [
        (at, e)
        for at, e in events
        if e["camera_id"] == cam_id and e["label"] == "person" and e.get("version") is not None
    ]
    seen: dict[str, tuple[float, dict[str, Any]]] = {}
    for at, e in starts:
        seen.setdefault(e["id"], (at, e))  # the first time each event shows up
    visits = _visits(viewer)
    appear, detect_lat = [], []
    for at, e in seen.values():
        before = [v for v in visits if v <= at]
        if before:
            appear.append(at - before[-1])
        detect_lat.append(at - _parse(e["started_at"]))
    return LiveLatency(appear, detect_lat, len(visits), len(seen))
