"""MJPEG fan-out benchmark: one camera → the API's relay → many MJPEG viewers.

Starts the real stack (livekit-server, the API, one edge process), opens ``--viewers``
MJPEG streams with tickets (plus ``--slow`` viewers that read through a tiny window at
~10 KB/s) and, for ``--seconds``, counts the JPEGs each fast viewer gets against the
ones the relay sent (the X-Frame-Seq numbers). Prints frames delivered per viewer
(min / median %), the JPEG rate and size, the API process's CPU %, and the edge
process's CPU % with and without JPEG demand (what watching costs the camera).

    ./run bench mjpeg [--viewers 20] [--seconds 20] [--slow 1] [--source synthetic|file]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import psutil

from scripts.devstack import (
    EdgeCamera,
    Stack,
    create_camera,
    running_stack,
    start_edge,
    write_edge_config,
)
from scripts.media import make_h264_file
from scripts.mjpeg import slow_reader, watch_window

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "livecam" / "bench"
TARGET_DELIVERED_PCT = 95.0


class CpuMeter:
    """CPU % of one core used by a process (and its children) between start() and stop()."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self._start = (0.0, 0.0)

    def _used(self) -> float:
        t = self.proc.cpu_times()
        used = t.user + t.system
        for child in self.proc.children(recursive=True):
            try:
                ct = child.cpu_times()
                used += ct.user + ct.system
            except psutil.NoSuchProcess:
                pass
        return float(used)

    def start(self) -> None:
        self._start = (self._used(), time.monotonic())

    def stop(self) -> float:
        used, started = self._start
        return 100.0 * (self._used() - used) / max(1e-6, time.monotonic() - started)


def ticket(stack: Stack, camera_id: str) -> str:
    with stack.api.client() as c:
        resp = c.post(f"/api/cameras/{camera_id}/mjpeg-ticket")
        resp.raise_for_status()
        url: str = resp.json()["url"]
        return url


async def run(args: argparse.Namespace, workdir: Path) -> int:
    with running_stack(workdir) as stack:
        if args.source == "file":
            clip = make_h264_file(
                workdir / "clip.mp4", width=1280, height=720, fps=30, seconds=10, gop=30
            )
            source: dict[str, object] = {"kind": "file", "path": str(clip)}
        else:
            source = {
                "kind": "synthetic",
                "width": 1280,
                "height": 720,
                "fps": 30,
                "bitrate_kbps": 2500,
            }
        cam_id, cred = create_camera(stack.api, "bench mjpeg")
        config = write_edge_config(
            workdir / "edge.toml",
            stack.api.url,
            [EdgeCamera(cam_id, cred, source)],
            heartbeat_interval_s=1.0,
        )
        edge = start_edge(workdir, config)
        stack.edges.append(edge)
        assert edge.proc is not None
        assert stack.api.process.proc is not None
        api_cpu = CpuMeter(stack.api.process.proc.pid)
        edge_cpu = CpuMeter(edge.proc.pid)
        # Wait until the camera is live, then measure the edge with nobody watching.
        deadline = time.monotonic() + 60
        with stack.api.client() as c:
            while not c.get(f"/api/cameras/{cam_id}").json()["online"]:
                if time.monotonic() > deadline:
                    raise SystemExit(f"camera never came online:\n{edge.log_tail()}")
                await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)
        edge_cpu.start()
        await asyncio.sleep(min(10.0, args.seconds))
        edge_idle = edge_cpu.stop()

        stop_slow = asyncio.Event()
        slow = [
            asyncio.create_task(
                slow_reader("127.0.0.1", stack.api.port, ticket(stack, cam_id), stop_slow)
            )
            for _ in range(args.slow)
        ]
        go = asyncio.Event()
        ready = [asyncio.Event() for _ in range(args.viewers)]
        viewers = [
            asyncio.create_task(
                watch_window(stack.api.url, ticket(stack, cam_id), args.seconds, ready[i], go)
            )
            for i in range(args.viewers)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 60)
        api_cpu.start()
        edge_cpu.start()
        go.set()
        results = await asyncio.wait_for(asyncio.gather(*viewers), args.seconds + 60)
        api_busy = api_cpu.stop()
        edge_busy = edge_cpu.stop()
        stop_slow.set()
        slow_bytes = await asyncio.gather(*slow)

    shares = sorted(100.0 * r.delivered for r in results)
    fps = statistics.median(r.fps for r in results)
    kb = statistics.median(sum(len(p.body) for p in r.parts) / len(r.parts) / 1024 for r in results)
    print()
    print(
        f"livecam MJPEG relay: 1 {args.source} camera (1280x720 → 640 wide) → "
        f"{args.viewers} viewers + {args.slow} slow, {args.seconds:.0f} s, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(
        f"  frames delivered per viewer   min {shares[0]:.1f} %   median "
        f"{statistics.median(shares):.1f} %   (target ≥ {TARGET_DELIVERED_PCT:.0f} %)"
    )
    print(f"  JPEG rate per viewer          {fps:.2f} fps, {kb:.1f} KiB per JPEG")
    print(f"  API process CPU               {api_busy:.1f} % of one core")
    print(
        f"  edge process CPU              {edge_idle:.1f} % unwatched, "
        f"{edge_busy:.1f} % making JPEGs"
    )
    if args.slow:
        per_s = [b / args.seconds / 1024 for b in slow_bytes]
        print(f"  slow viewers read             {', '.join(f'{v:.1f}' for v in per_s)} KiB/s")
    ok = shares[0] >= TARGET_DELIVERED_PCT
    print(
        f"  {'PASS' if ok else 'FAIL'}: every viewer got ≥ {TARGET_DELIVERED_PCT:.0f} % of frames"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mjpeg", description=__doc__)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--slow", type=int, default=1, help="slow viewers beside them")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--source", choices=["synthetic", "file"], default="synthetic")
    args = parser.parse_args()
    # The last run's logs stay there (api.log, edge.log), as with bench/live.
    return asyncio.run(run(args, CACHE / "mjpeg"))


if __name__ == "__main__":
    sys.exit(main())
