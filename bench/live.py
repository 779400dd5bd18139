"""Live path benchmark: a pre-encoded file source → edge → livekit-server → subscriber.

For each resolution it prints glass-to-glass latency (the edge's capture timestamp to
the decoded frame at a livekit.rtc subscriber), time to first frame for new
subscribers, frames delivered / sent, and the edge process's CPU next to a plain
`ffmpeg -re -c copy -f null` of the same file (the floor: reading and pacing only).
Everything runs on loopback with the real, pinned livekit-server.

    ./run bench live [--seconds 20] [--ttff-runs 10] [--only 720p]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
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
from scripts.media import make_h264_file, stream_stats
from scripts.viewer import Viewer, percentile

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "livecam" / "bench"

PROFILES = {
    # name: (width, height, fps, kbit/s) — what a Pi 4/5 camera is typically set to.
    "720p30": (1280, 720, 30, 2500),
    "1080p30": (1920, 1080, 30, 5000),
}
TARGETS = {"latency_p50_ms": 80.0, "ttff_p50_s": 1.0, "delivered_pct": 99.0, "cpu_ratio": 3.0}


@dataclass
class Result:
    """Figures for one profile."""

    profile: str
    latency_p50: float
    latency_p95: float
    ttff_p50: float
    ttff_p95: float
    delivered: int
    sent: int
    edge_cpu: float
    floor_cpu: float
    rtp_cpu: float
    file_kbps: float


def cpu_percent_of(proc: psutil.Process, seconds: float) -> float:
    """CPU % of one core used by ``proc`` and its children over ``seconds``."""

    def total() -> float:
        t = proc.cpu_times()
        used = t.user + t.system
        for child in proc.children(recursive=True):
            try:
                ct = child.cpu_times()
                used += ct.user + ct.system
            except psutil.NoSuchProcess:
                pass
        return float(used)

    start_cpu, start = total(), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (total() - start_cpu) / (time.monotonic() - start)


def sample_cpu(procs: dict[str, psutil.Process], seconds: float) -> dict[str, float]:
    """CPU % of one core of each process, over the same window."""
    results: dict[str, float] = {}
    threads = [
        threading.Thread(target=lambda k=k, p=p: results.__setitem__(k, cpu_percent_of(p, seconds)))
        for k, p in procs.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def ffmpeg_cpu(path: Path, seconds: float, output: list[str]) -> float:
    """CPU % of `ffmpeg -re -stream_loop -1 -i FILE -c copy OUTPUT...` over ``seconds``."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return float("nan")
    proc = subprocess.Popen(
        [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            str(path),
            "-c",
            "copy",
            *output,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # the RTP muxer prints its SDP
    )
    try:
        time.sleep(1.0)  # skip start-up
        return cpu_percent_of(psutil.Process(proc.pid), seconds)
    finally:
        proc.terminate()
        proc.wait()


def ffmpeg_floor(path: Path, seconds: float) -> float:
    """The issue's floor: read and pace the file, send it nowhere (`-f null`)."""
    return ffmpeg_cpu(path, seconds, ["-f", "null", "-"])


def ffmpeg_rtp(path: Path, seconds: float) -> float:
    """A reference: plain RTP over UDP to loopback (packetize + send; no SRTP, no BWE)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))  # bound, never read: the kernel drops, no ICMP errors
        port = sink.getsockname()[1]
        return ffmpeg_cpu(path, seconds, ["-f", "rtp", f"rtp://127.0.0.1:{port}"])


async def measure(stack: Stack, clip: Path, name: str, seconds: float, ttff_runs: int) -> Result:
    """Publish ``clip`` from an edge process and measure one profile."""
    cam_id, cred = create_camera(stack.api, f"bench {name}")
    config = write_edge_config(
        stack.workdir / f"edge-{name}.toml",
        stack.api.url,
        [EdgeCamera(cam_id, cred, {"kind": "file", "path": str(clip)})],
    )
    edge = start_edge(stack.workdir, config, name=f"edge-{name}")
    stack.edges.append(edge)
    with stack.api.client() as c:

        def token() -> dict[str, str]:
            resp = c.post(f"/api/cameras/{cam_id}/viewer-token")
            resp.raise_for_status()
            data: dict[str, str] = resp.json()
            return data

        # Steady state: one subscriber for the whole window, CPU sampled meanwhile.
        tok = token()
        viewer = Viewer(tok["url"], tok["token"])
        await viewer.connect()
        await viewer.wait_frames(30, timeout=60)
        start_index = len(viewer.frames)
        edge_cpu = await asyncio.to_thread(
            cpu_percent_of, psutil.Process(edge.proc.pid if edge.proc else 0), seconds
        )
        window = viewer.frames[start_index:]
        await viewer.close()
        ids = [f.frame_id for f in window if f.frame_id is not None]
        sent = (max(ids) - min(ids) + 1) if ids else 0
        delivered = len(set(ids))
        latencies = [f.latency_ms for f in window if f.latency_ms is not None]

        # Time to first frame: a fresh subscriber each run, from connect() to a decoded frame.
        ttffs = []
        for _ in range(ttff_runs):
            tok = token()
            v = Viewer(tok["url"], tok["token"])
            started = time.monotonic()
            await v.connect()
            await v.wait_frames(1, timeout=30)
            assert v.first_frame_at is not None
            ttffs.append(v.first_frame_at - started)
            await v.close()
            await asyncio.sleep(0.3)
    edge.stop()
    floor = await asyncio.to_thread(ffmpeg_floor, clip, seconds)
    rtp = await asyncio.to_thread(ffmpeg_rtp, clip, seconds)
    _, _, kbps = stream_stats(clip)
    return Result(
        name,
        percentile(latencies, 50),
        percentile(latencies, 95),
        percentile(ttffs, 50),
        percentile(ttffs, 95),
        delivered,
        sent,
        edge_cpu,
        floor,
        rtp,
        kbps,
    )


def report(results: list[Result]) -> None:
    """Print the figures and how they compare with the targets."""
    print()
    print(
        f"livecam live path, livekit-server on loopback, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    header = (
        "profile",
        "lat p50",
        "lat p95",
        "ttff p50",
        "ttff p95",
        "delivered",
        "edge cpu",
        "ffmpeg",
        "ratio",
        "ffmpeg rtp",
    )
    print("{:<8} {:>8} {:>8} {:>9} {:>9} {:>16} {:>9} {:>7} {:>6} {:>10}".format(*header))
    ok = True
    for r in results:
        pct = 100.0 * r.delivered / r.sent if r.sent else 0.0
        ratio = r.edge_cpu / r.floor_cpu if r.floor_cpu > 0 else float("nan")
        print(
            f"{r.profile:<8} {r.latency_p50:>6.1f}ms {r.latency_p95:>6.1f}ms "
            f"{r.ttff_p50:>8.2f}s {r.ttff_p95:>8.2f}s "
            f"{r.delivered:>6}/{r.sent:<6}{pct:>3.0f}% "
            f"{r.edge_cpu:>8.1f}% {r.floor_cpu:>6.1f}% {ratio:>5.1f}x {r.rtp_cpu:>9.1f}%"
        )
        checks = {
            "latency p50 ≤ 80 ms": r.latency_p50 <= TARGETS["latency_p50_ms"],
            "TTFF p50 ≤ 1.0 s": r.ttff_p50 <= TARGETS["ttff_p50_s"],
            "≥ 99 % frames": pct >= TARGETS["delivered_pct"],
            "edge CPU ≤ 3× floor": ratio <= TARGETS["cpu_ratio"],
        }
        failed = [k for k, v in checks.items() if not v]
        ok = ok and not failed
        print(
            f"         file {r.file_kbps:.0f} kbit/s; ffmpeg = -c copy -f null (the floor), "
            "ffmpeg rtp = -c copy -f rtp to loopback (a reference)"
        )
        print("         targets: " + ("all met" if not failed else "MISSED " + ", ".join(failed)))
    print("result:", "all targets met" if ok else "some targets missed")


async def amain(args: argparse.Namespace) -> int:
    """Run every selected profile on one stack."""
    results = []
    with running_stack(CACHE / "run") as stack:
        for name, (w, h, fps, kbps) in PROFILES.items():
            if args.only and args.only not in name:
                continue
            clip = CACHE / f"{name}-{kbps}k-gop{fps}.mp4"
            if not clip.exists():
                print(f"bench: encoding {clip.name} (once)...", file=sys.stderr)
                make_h264_file(
                    clip.with_suffix(".tmp.mp4"),
                    width=w,
                    height=h,
                    fps=fps,
                    seconds=20,
                    gop=fps,
                    bitrate_kbps=kbps,
                    profile="main",
                )
                clip.with_suffix(".tmp.mp4").rename(clip)
            print(f"bench: measuring {name} for {args.seconds:.0f} s...", file=sys.stderr)
            results.append(await measure(stack, clip, name, args.seconds, args.ttff_runs))
    report(results)
    return 0


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="./run bench live",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--ttff-runs", type=int, default=10)
    parser.add_argument("--only", default="")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
