"""`./run watch CAMERA`: subscribe to a camera like a viewer would and print what arrives."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

from scripts.devstack import ROOT
from scripts.viewer import Viewer, percentile


async def watch(server: str, key: str, camera: str, seconds: float) -> int:
    """Print resolution, fps and glass-to-glass latency once a second."""
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(
            f"{server}/api/cameras/{camera}/viewer-token",
            headers={"Authorization": f"Bearer {key}"},
        )
    if resp.status_code != 200:
        print(f"watch: {resp.status_code} {resp.text}", file=sys.stderr)
        return 1
    tok = resp.json()
    viewer = Viewer(tok["url"], tok["token"])
    await viewer.connect()
    end = time.monotonic() + seconds
    seen = 0
    try:
        while time.monotonic() < end:
            await asyncio.sleep(1.0)
            new = viewer.frames[seen:]
            seen = len(viewer.frames)
            lat = [f.latency_ms for f in new if f.latency_ms is not None]
            size = f"{new[-1].width}x{new[-1].height}" if new else "-"
            print(
                f"{camera}: {viewer.mime_type or 'no track yet'} {size} fps={len(new)} "
                f"latency_ms p50={percentile(lat, 50):.1f} p95={percentile(lat, 95):.1f}",
                flush=True,
            )
    finally:
        await viewer.close()
    return 0


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="./run watch", description=__doc__)
    parser.add_argument("camera")
    parser.add_argument("--server", default="http://127.0.0.1:8080")
    parser.add_argument("--key-file", type=Path, default=ROOT / "data" / "admin.key")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    key = args.key_file.read_text().strip()
    return asyncio.run(watch(args.server, key, args.camera, args.seconds))


if __name__ == "__main__":
    sys.exit(main())
