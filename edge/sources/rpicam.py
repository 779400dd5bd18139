"""A Raspberry Pi camera through `rpicam-vid`: the Pi's hardware H.264 encoder, Annex-B on stdout.

This is the fallback for Pis where picamera2 is not importable (e.g. a venv without
system site packages); picamera2 is preferred because it can force keyframes and
hands over whole frames. rpicam-vid is started with ``--inline`` (SPS/PPS before every
IDR) and ``--flush`` (no stdio buffering), so the reader sees each frame as it is made.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import subprocess
import threading

from edge.h264 import AccessUnitReader
from edge.sources.base import (
    CapturedFrame,
    EncoderSettings,
    FatalSourceError,
    FrameSink,
    SourceError,
    wall_us,
)

log = logging.getLogger("edge.sources.rpicam")

CHUNK = 256 * 1024


class RpicamSource:
    """Runs rpicam-vid and splits its stdout into access units."""

    kind = "rpicam"
    # rpicam-vid cannot be asked for an IDR at run time; --intra bounds the wait.
    can_force_keyframe = False

    def __init__(
        self,
        *,
        name: str,
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
        bitrate_kbps: int = 2500,
        gop_s: float = 1.0,
        camera_index: int = 0,
        hflip: bool = False,
        vflip: bool = False,
        command: list[str] | None = None,
    ) -> None:
        self.name = name
        self.settings = EncoderSettings(width, height, fps, bitrate_kbps, gop_s)
        self.camera_index = camera_index
        self.hflip = hflip
        self.vflip = vflip
        self._command = command
        self.index = 0

    def request_keyframe(self) -> None:
        """Not possible with rpicam-vid."""

    def command(self) -> list[str]:
        """The rpicam-vid command line (or the configured override)."""
        if self._command:
            return list(self._command)
        exe = shutil.which("rpicam-vid") or shutil.which("libcamera-vid")
        if exe is None:
            raise FatalSourceError(
                f"{self.name}: rpicam-vid not found; on Raspberry Pi OS run "
                '`sudo apt install rpicam-apps`, or use source kind "picamera2"'
            )
        cmd = [
            exe,
            "--timeout",
            "0",
            "--nopreview",
            "--verbose",
            "0",
            "--codec",
            "h264",
            "--inline",
            "--flush",
            "--profile",
            "baseline",
            "--level",
            "4.1",
            "--width",
            str(self.settings.width),
            "--height",
            str(self.settings.height),
            "--framerate",
            str(self.settings.fps),
            "--bitrate",
            str(self.settings.bitrate_kbps * 1000),
            "--intra",
            str(self.settings.gop),
            "--camera",
            str(self.camera_index),
            "--output",
            "-",
        ]
        if self.hflip:
            cmd.append("--hflip")
        if self.vflip:
            cmd.append("--vflip")
        return cmd

    def run(self, sink: FrameSink, stop: threading.Event) -> None:
        """Run the encoder process until stopped; SourceError if it exits on its own."""
        cmd = self.command()
        try:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            raise FatalSourceError(f"{self.name}: cannot start {cmd[0]}: {exc}") from exc
        log.info("rpicam started camera=%s pid=%d cmd=%s", self.name, proc.pid, " ".join(cmd))
        stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        drain = threading.Thread(
            target=_drain,
            args=(proc, stderr_tail, self.name),
            daemon=True,
            name=f"rpicam-stderr-{self.name}",
        )
        drain.start()
        # Closing the pipe is the only way to interrupt a blocking read: stop kills it.
        killer = threading.Thread(
            target=_kill_on_stop, args=(proc, stop), daemon=True, name=f"rpicam-stop-{self.name}"
        )
        killer.start()
        try:
            self._pump(proc, sink, stop)
        finally:
            _terminate(proc)
        if not stop.is_set():
            # The process has exited: let the drain thread reach EOF so the error carries
            # rpicam-vid's last words (its reason), not an empty tail.
            drain.join(timeout=2.0)
            tail = " | ".join(stderr_tail) or "no output"
            raise SourceError(f"{self.name}: rpicam-vid exited with code {proc.returncode}: {tail}")

    def _pump(self, proc: subprocess.Popen[bytes], sink: FrameSink, stop: threading.Event) -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        reader = AccessUnitReader(name=self.name)
        while not stop.is_set():
            chunk = os.read(fd, CHUNK)
            aus = reader.feed(chunk) if chunk else reader.flush()
            now = wall_us()
            for au in aus:
                sink(CapturedFrame(au=au, capture_us=now, index=self.index))
                self.index += 1
            if not chunk:
                return


def _drain(proc: subprocess.Popen[bytes], tail: collections.deque[str], name: str) -> None:
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            tail.append(line)
            log.info("rpicam-vid camera=%s: %s", name, line)


def _kill_on_stop(proc: subprocess.Popen[bytes], stop: threading.Event) -> None:
    while proc.poll() is None:
        if stop.wait(0.5):
            _terminate(proc)
            return


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
