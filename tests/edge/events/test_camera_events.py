"""A whole camera runner (synthetic source) against a small stand-in API on loopback:
zones arrive over the control websocket, JPEGs come back masked, motion events are
delivered through the outbox, heartbeats report the event fields, and the event still
open at shutdown is ended and delivered."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from edge.camera import CameraRunner
from edge.events.pipeline import DetectSettings
from edge.events.tracker import TrackerSettings
from edge.sources.synthetic import SyntheticSource
from edge.uplink import ServerClient
from tests.edge.events.test_delivery import free_port

CREDENTIAL = "lce_camera_test"
MASK = {"id": "m", "kind": "mask", "points": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]}


class StandInApi:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.jpegs: list[bytes] = []
        self.auth: set[str] = set()
        self.app = Starlette(
            routes=[
                Route("/api/edge/events", self.post_event, methods=["POST"]),
                Route("/api/edge/heartbeat", self.heartbeat, methods=["POST"]),
                Route("/api/edge/token", self.token, methods=["POST"]),
                WebSocketRoute("/api/edge/ws", self.control),
            ]
        )

    async def post_event(self, request: Request) -> JSONResponse:
        self.auth.add(request.headers.get("authorization", ""))
        self.events.append(await request.json())
        return JSONResponse({"status": "stored", "event_id": self.events[-1]["event_id"]})

    async def heartbeat(self, request: Request) -> JSONResponse:
        self.heartbeats.append(await request.json())
        return JSONResponse({"ok": True, "server_time": "2030-01-01T00:00:00Z"})

    async def token(self, request: Request) -> JSONResponse:
        # No LiveKit here: the publisher retries in the background, the rest goes on.
        return JSONResponse({"error": {"message": "livekit not configured"}}, 503)

    async def control(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(json.dumps({"type": "zones", "zones": [MASK]}))
        await ws.send_text(json.dumps({"type": "jpeg", "want": True, "fps": 5, "max_width": 320}))
        try:
            while True:
                self.jpegs.append(await ws.receive_bytes())
        except (WebSocketDisconnect, KeyError, RuntimeError):
            return


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_camera_runner_makes_masked_jpegs_and_delivers_events(tmp_path: Path) -> None:
    api = StandInApi()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(api.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    source = SyntheticSource(name="synth", width=640, height=360, fps=10, bitrate_kbps=500)
    runner = CameraRunner(
        "synth",
        source,
        ServerClient(f"http://127.0.0.1:{port}", "synth", CREDENTIAL),
        data_dir=tmp_path,
        heartbeat_interval_s=0.5,
        detect=DetectSettings(tracker=TrackerSettings(update_interval_s=0.5)),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        # The synthetic picture moves (a sweeping box, a running clock): motion events.
        await until(lambda: any(e["label"] == "motion" for e in api.events))
        await until(lambda: len(api.jpegs) >= 3)
        await until(lambda: any(h.get("motion") for h in api.heartbeats))
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        server.should_exit = True
        await asyncio.wait_for(serving, 10)

    assert api.auth == {f"Bearer {CREDENTIAL}"}
    first = api.events[0]
    assert (first["label"], first["phase"], first["seq"]) == ("motion", "start", 0)
    assert first["snapshot"] is not None
    # The event open at shutdown was ended and delivered before the runner returned.
    assert api.events[-1]["phase"] == "end"
    assert api.events[-1]["event_id"] == first["event_id"]
    assert (tmp_path / "synth" / "zones.json").exists(), "the zones are kept for a restart"

    for jpeg in api.jpegs[-2:]:
        grey = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"), dtype=int)
        assert grey.shape == (180, 320)
        assert grey[:, 165:].max() < 16, "the masked half is black in the JPEGs sent"
        assert grey[:, :150].mean() > 40

    beat = api.heartbeats[-1]
    assert beat["detect"] in ("motion", "objects")
    assert beat["motion_ms"] is not None
    assert beat["events_queued"] >= 0
    assert beat["events_dead"] == 0
    assert beat["events_paused"] is False
