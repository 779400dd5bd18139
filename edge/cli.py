"""`python -m edge`: run the configured cameras, or enroll a new one with the server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from edge.camera import CameraRunner
from edge.config import CameraConfig, ConfigError, EdgeConfig, load_config
from edge.detect import load_detector
from edge.detect.types import ObjectDetector
from edge.logs import setup_logging
from edge.metrics import ProcessCpu
from edge.pion_publisher import PionUnavailable, pionpub_binary
from edge.sources import create_source
from edge.uplink import ServerClient, ServerError, enroll
from edge.uploads.ratelimit import TokenBucket
from edge.watchdog import supervise

log = logging.getLogger("edge")

DEFAULT_CONFIG = os.environ.get("LIVECAM_EDGE_CONFIG", "edge.toml")


async def run_edge(
    config: EdgeConfig, stop: asyncio.Event | None = None, *, pionpub: Path | None = None
) -> None:
    """Serve every camera in ``config`` until ``stop`` (or SIGINT/SIGTERM); ``pionpub``:
    publish through that program instead of libwebrtc."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    # Signal handlers belong to the main thread (tests may run the edge in another one).
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    cpu = ProcessCpu()
    detectors = await asyncio.to_thread(open_detectors, config.cameras)
    # One model run at a time across cameras: a Pi has no cores to spare for two.
    detector_lock = threading.Lock()
    # One uplink for all cameras: one bandwidth limit for all their clip uploads.
    upload_bucket = TokenBucket(config.upload_kbps * 1000 / 8)
    runners = [
        CameraRunner(
            cam.id,
            create_source(cam.id, cam.kind, cam.options),
            ServerClient(config.server, cam.id, cam.credential),
            data_dir=config.data_dir,
            heartbeat_interval_s=config.heartbeat_interval_s,
            stall_timeout_s=config.stall_timeout_s,
            cpu=cpu,
            detect=cam.detect,
            detector=detectors.get(cam.detect.model),
            detector_lock=detector_lock,
            record=cam.record,
            upload_bucket=upload_bucket,
            upload_chunk_bytes=config.upload_chunk_kb * 1024,
            pionpub=pionpub,
        )
        for cam in config.cameras
    ]
    log.info(
        "edge starting cameras=%s server=%s data_dir=%s publisher=%s",
        ",".join(c.id for c in config.cameras),
        config.server,
        config.data_dir,
        f"pion ({pionpub})" if pionpub else "libwebrtc",
    )
    # systemd Type=notify: READY=1 and watchdog pings (edge/watchdog.py); no-op otherwise.
    await asyncio.gather(
        *(r.run(stop) for r in runners), supervise([c.id for c in config.cameras], stop)
    )
    log.info("edge stopped")


def open_detectors(cameras: Sequence[CameraConfig]) -> dict[str | None, ObjectDetector]:
    """One object detector per model the cameras with detection use (None: the default).

    A model that cannot be loaded (not installed, no runtime) leaves its cameras on motion
    only, with a log line saying so and how to fix it; the cameras run regardless. The
    detector reports everything above the lowest threshold any of its cameras uses; each
    camera's tracker applies its own.
    """
    wanted: dict[str | None, list[CameraConfig]] = {}
    for cam in cameras:
        if cam.detect.enabled:
            wanted.setdefault(cam.detect.model, []).append(cam)
    detectors: dict[str | None, ObjectDetector] = {}
    for model, users in wanted.items():
        ids = ",".join(c.id for c in users)
        thresholds = {
            kind: min(c.detect.tracker.thresholds.get(kind, 1.0) for c in users)
            for kind in ("person", "vehicle", "pet", "other")
        }
        try:
            detectors[model] = load_detector(model=model, thresholds=thresholds)
        except Exception as exc:
            log.warning(
                "object detection unavailable cameras=%s model=%s error=%s action='motion "
                "events only; install the model with scripts/setup-models.sh'",
                ids,
                model or "default",
                exc,
            )
            continue
        log.info("object detector loaded cameras=%s model=%s", ids, model or "default")
    return detectors


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def cmd_enroll(args: argparse.Namespace) -> int:
    """Exchange the code, store the credential (0600) and add the camera to the config."""
    try:
        result = asyncio.run(enroll(args.server, args.code))
    except ServerError as exc:
        print(f"enroll failed: {exc}", file=sys.stderr)
        return 1
    config = Path(args.config)
    cred_file = config.parent / f"{result.camera_id}.credential"
    _write_private(cred_file, result.credential + "\n")
    block = (
        f'\n[[camera]]\nid = "{result.camera_id}"\ncredential_file = "{cred_file.name}"\n'
        f'source = {{ kind = "{args.source}" }}\n'
    )
    existing = config.read_text() if config.exists() else f'server = "{args.server}"\n'
    config.write_text(existing + block)
    print(f"enrolled camera {result.camera_id}: credential in {cred_file}, config {config}")
    return 0


def choose_pionpub(publisher: str) -> Path | None:
    """The pionpub program to publish through, or None for libwebrtc.

    "auto" takes pion when its program is installed (it sends each frame at once and
    costs less CPU: bench/peers) and falls back to libwebrtc, saying so; "pion" insists.
    """
    if publisher == "libwebrtc":
        return None
    try:
        return pionpub_binary()
    except PionUnavailable as exc:
        if publisher == "pion":
            raise
        log.info("publisher auto: no pionpub program, publishing with libwebrtc (%s)", exc)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    """Run until interrupted."""
    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or config.log_level)
    try:
        pionpub = choose_pionpub(config.publisher)
    except PionUnavailable as exc:
        print(f"config error: {args.config}: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run_edge(config, pionpub=pionpub))
    except ValueError as exc:  # a source option the source refuses
        log.error("cannot start error=%s", exc)
        return 2
    except (OSError, sqlite3.Error) as exc:  # the outbox or zones cannot be stored
        log.error(
            "cannot use the data directory data_dir=%s error=%s action='set data_dir in the "
            "config (or LIVECAM_EDGE_DATA_DIR) to a writable directory'",
            config.data_dir,
            exc,
        )
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m edge`."""
    parser = argparse.ArgumentParser(prog="python -m edge", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="publish the configured cameras (default)")
    run.add_argument("--config", default=DEFAULT_CONFIG, help="edge TOML (default: %(default)s)")
    run.add_argument("--log-level", default=None)
    en = sub.add_parser("enroll", help="exchange an enrollment code for a credential")
    en.add_argument("--server", required=True, help="e.g. https://cams.example.com")
    en.add_argument("--code", required=True, help="the one-time code shown by the server")
    en.add_argument("--config", default=DEFAULT_CONFIG)
    en.add_argument("--source", default="picamera2", help="source kind for the new camera")
    args = parser.parse_args(argv)
    if args.command == "enroll":
        return cmd_enroll(args)
    if args.command is None:
        args = run.parse_args([])
    return cmd_run(args)
