"""Event path benchmark: edge message → API → SSE client and LiveKit room participant.

Starts the real stack (livekit-server and the API, SQLite), creates a camera, joins its
room with a livekit.rtc participant and opens ``GET /api/events/stream``. Then posts
``--events`` start messages one after another, each with a ~``--snapshot-kb`` JPEG, and
prints per message (p50 / p95 / max, milliseconds):

* ingest: the POST's round trip (validation, JPEG check, fsync'd snapshot, commit);
* sse: from sending the POST to the change arriving on the SSE stream;
* room: from sending the POST to the data message arriving in the LiveKit room;

then ``--concurrency`` edges' worth of parallel posts (throughput, events/s) and the
duplicate path (the same messages again).

    ./run bench events [--events 100] [--concurrency 8] [--snapshot-kb 40]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import numpy as np
from livekit import rtc
from PIL import Image

from scripts.devstack import Stack, create_camera, running_stack


def noisy_jpeg(kb: int) -> bytes:
    """A JPEG of roughly ``kb`` kilobytes (noise does not compress)."""
    side = 64
    while True:
        rng = np.random.default_rng(side)
        pixels = rng.integers(0, 256, (side * 3 // 4, side, 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=75)
        if out.tell() >= kb * 1024 or side > 4096:
            return out.getvalue()
        side = int(side * 1.25)


def body(event_id: str, seq: int, snapshot: str | None) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "key": f"{event_id}:{seq}",
        "event_id": event_id,
        "seq": seq,
        "phase": "start",
        "label": "person",
        "object": "person",
        "score": 0.8,
        "box": [0.1, 0.1, 0.4, 0.9],
        "zones": ["Driveway"],
        "started_at": now,
        "at": now,
        "ended_at": None,
        "snapshot": snapshot,
    }


def summary(name: str, values_ms: list[float]) -> str:
    values = sorted(values_ms)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return (
        f"{name:<8} p50 {statistics.median(values):6.1f} ms   p95 {p95:6.1f} ms   "
        f"max {values[-1]:6.1f} ms   (n={len(values)})"
    )


async def run(stack: Stack, args: argparse.Namespace) -> int:
    camera_id, credential = create_camera(stack.api, "Bench camera")
    edge = {"Authorization": f"Bearer {credential}"}
    admin = {"Authorization": f"Bearer {stack.api.admin_key}"}
    snapshot = base64.b64encode(noisy_jpeg(args.snapshot_kb)).decode()
    arrived_sse: dict[str, float] = {}
    arrived_room: dict[str, float] = {}
    with stack.api.client() as c:
        token = c.post(f"/api/cameras/{camera_id}/viewer-token").json()
    room = rtc.Room()

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == "livecam.event":
            arrived_room.setdefault(json.loads(packet.data)["id"], time.perf_counter())

    room.on("data_received", on_data)
    await room.connect(token["url"], token["token"])
    async with httpx.AsyncClient(base_url=stack.api.url, timeout=30) as http:

        async def follow() -> None:
            async with http.stream("GET", "/api/events/stream", headers=admin) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        event_id = json.loads(line[6:])["id"]
                        arrived_sse.setdefault(event_id, time.perf_counter())

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.5)
        sent: dict[str, float] = {}
        ingest_ms: list[float] = []
        bodies = []
        for _ in range(args.events):
            event_id = str(uuid.uuid4())
            message = body(event_id, 0, snapshot)
            bodies.append(message)
            sent[event_id] = time.perf_counter()
            response = await http.post("/api/edge/events", json=message, headers=edge)
            ingest_ms.append((time.perf_counter() - sent[event_id]) * 1000)
            assert response.json()["status"] == "stored", response.text
        deadline = time.monotonic() + 20
        while (len(arrived_sse) < len(sent) or len(arrived_room) < len(sent)) and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
        sse_ms = [(arrived_sse[k] - t) * 1000 for k, t in sent.items() if k in arrived_sse]
        room_ms = [(arrived_room[k] - t) * 1000 for k, t in sent.items() if k in arrived_room]

        started = time.perf_counter()
        duplicates = await asyncio.gather(
            *(http.post("/api/edge/events", json=m, headers=edge) for m in bodies)
        )
        dup_s = time.perf_counter() - started
        assert all(r.json()["status"] == "duplicate" for r in duplicates)

        semaphore = asyncio.Semaphore(args.concurrency)

        async def post_one() -> None:
            async with semaphore:
                response = await http.post(
                    "/api/edge/events", json=body(str(uuid.uuid4()), 0, snapshot), headers=edge
                )
                assert response.json()["status"] == "stored"

        started = time.perf_counter()
        await asyncio.gather(*(post_one() for _ in range(args.events)))
        parallel_s = time.perf_counter() - started
        follower.cancel()
    await room.disconnect()

    print(f"event path, SQLite, snapshot {len(base64.b64decode(snapshot)) // 1024} KB")
    print(summary("ingest", ingest_ms))
    print(summary("sse", sse_ms))
    print(summary("room", room_ms))
    print(
        f"parallel: {args.events} events from {args.concurrency} senders in {parallel_s:.2f} s "
        f"= {args.events / parallel_s:.0f} events/s"
    )
    print(f"duplicates: {args.events} in {dup_s:.2f} s = {args.events / dup_s:.0f} /s")
    lost = len(sent) - min(len(sse_ms), len(room_ms))
    print(f"lost: sse {len(sent) - len(sse_ms)}, room {len(sent) - len(room_ms)}")
    return 0 if lost == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--snapshot-kb", type=int, default=40)
    args = parser.parse_args()
    with (
        TemporaryDirectory(prefix="livecam-bench-events-") as tmp,
        running_stack(Path(tmp)) as stack,
    ):
        return asyncio.run(run(stack, args))


if __name__ == "__main__":
    sys.exit(main())
