"""`./run demo`: LiveKit, the API and N synthetic cameras on this machine, until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import secrets
import signal
import socket
import sys
import time
from pathlib import Path

from scripts.devstack import (
    ROOT,
    EdgeCamera,
    StackError,
    create_camera,
    free_tcp_port,
    start_api,
    start_edge,
    start_livekit,
    write_edge_config,
)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _udp_free(start: int, count: int) -> bool:
    socks = []
    try:
        for port in range(start, start + count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def _pick(port: int, what: str) -> int:
    if _port_free(port):
        return port
    other = free_tcp_port()
    print(f"demo: port {port} ({what}) is busy, using {other}", file=sys.stderr)
    return other


def _dev_keys(data: Path) -> tuple[str, str]:
    """Keep the dev LiveKit keys with the data so tokens and cameras survive a restart."""
    path = data / "livekit-dev.keys"
    if path.exists():
        key, secret = path.read_text().split()
        return key, secret
    data.mkdir(parents=True, exist_ok=True)
    key, secret = "devkey", secrets.token_urlsafe(32)
    path.write_text(f"{key} {secret}\n")
    path.chmod(0o600)
    return key, secret


def main() -> int:
    """Start the demo stack and wait for Ctrl-C."""
    parser = argparse.ArgumentParser(prog="./run demo", description=__doc__)
    parser.add_argument("--cameras", type=int, default=2, help="synthetic cameras (default 2)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--port", type=int, default=8080, help="API port")
    parser.add_argument("--livekit-port", type=int, default=7880)
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    args = parser.parse_args()
    if not 1 <= args.cameras <= 16:
        parser.error("--cameras must be 1..16")

    data: Path = args.data.resolve()
    run_dir = data / "demo"
    api_port = _pick(args.port, "API")
    lk_port = _pick(args.livekit_port, "LiveKit")
    key, secret = _dev_keys(data)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print("demo: starting livekit-server, the API and cameras...", file=sys.stderr)
    livekit = api = edge = None
    try:
        livekit = start_livekit(
            run_dir,
            webhook_url=f"http://127.0.0.1:{api_port}/api/livekit/webhook",
            api_key=key,
            api_secret=secret,
            port=lk_port,
            tcp_port=7881 if _port_free(7881) else None,
            udp_start=50000 if _udp_free(50000, 60) else None,
        )
        api = start_api(run_dir, livekit, api_port, data)
        cams = []
        for i in range(1, args.cameras + 1):
            cam_id, cred = create_camera(api, f"Demo camera {i}", f"demo-{i}")
            cams.append(
                EdgeCamera(
                    cam_id,
                    cred,
                    {
                        "kind": "synthetic",
                        "width": args.width,
                        "height": args.height,
                        "fps": args.fps,
                        "bitrate_kbps": 2000,
                    },
                )
            )
        config = write_edge_config(run_dir / "edge.toml", api.url, cams)
        edge = start_edge(run_dir, config)
        ids = " ".join(c.camera_id for c in cams)
        print(
            f"""
livecam demo is running ({args.cameras} synthetic cameras, {args.width}x{args.height}@{args.fps}).
  dashboard         {api.url}/   (sign in with the admin key below)
  API               {api.url}/api/health
  API docs          {api.url}/docs
  LiveKit           {livekit.url}
  admin key         {api.admin_key}   (also in {data / "admin.key"})
  cameras           {ids}
  watch one         ./run watch {cams[0].camera_id}
  logs              {run_dir}/{{livekit,api,edge}}.log
Press Ctrl-C to stop.
""",
            flush=True,
        )
        while not stopping:
            for proc in (livekit.process, api.process, edge):
                if not proc.running:
                    print(f"demo: {proc.name} exited:\n{proc.log_tail()}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    except StackError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        print("demo: stopping...", file=sys.stderr)
        for stoppable in (edge, api, livekit):
            if stoppable is not None:
                with contextlib.suppress(Exception):
                    stoppable.stop()
        print("demo: stopped.", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
