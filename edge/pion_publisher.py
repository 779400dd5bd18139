"""Publishes one camera's H.264 into its LiveKit room through edge/pionpub (pion, Go).

The same job as `edge.publisher.LiveKitPublisher`, with the same interface, for
``publisher = "pion"`` in the edge config. libwebrtc (inside livekit.rtc) paces frames
that are already encoded as if it had encoded them: a keyframe leaves in bursts ~40 ms
apart, and its threads cost more CPU than the forwarding. pionpub sends each access unit
at once (bench/peers: glass-to-glass p95 80 ms against libwebrtc's 105-110 ms).

    source thread ──on_frame──▶ bounded queue ──writer thread──▶ pionpub stdin
    pionpub stdout (JSON lines: publishing, keyframe_request, disconnected) ──▶ run()

The process is this camera's LiveKit session: when it exits, the session is over and
`run` starts another with a fresh token, with backoff, exactly like the libwebrtc path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from edge.backoff import Backoff
from edge.publisher import Publisher, TokenProvider
from edge.sources.base import CapturedFrame

log = logging.getLogger("edge.pion")

HEADER = struct.Struct(">IQI")  # length, capture µs, frame id: edge/pionpub/main.go


class PionUnavailable(RuntimeError):
    """The pionpub binary is missing or cannot run."""


#: Where the server's edge bundle carries prebuilt pionpub programs (one per Pi
#: architecture, see Dockerfile): bin/ beside edge/.
BUNDLE_BIN = Path(__file__).resolve().parent.parent / "bin"

_ARCHES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    # 32-bit Raspberry Pi OS: the armv6 build runs on every Pi, armv7 and armv8 kernels too.
    "armv6l": "armv6",
    "armv7l": "armv6",
    "armv8l": "armv6",
}


def bundled_name(machine: str | None = None) -> str | None:
    """The bundle's pionpub for this machine (``pionpub-linux-arm64``...), if one is built."""
    arch = _ARCHES.get((machine or platform.machine()).lower())
    return f"pionpub-linux-{arch}" if arch else None


def pionpub_binary(env: dict[str, str] | None = None, *, bundle_bin: Path = BUNDLE_BIN) -> Path:
    """The pionpub program: $LIVECAM_PIONPUB_BIN, else ``pionpub`` next to the edge's
    Python, else the edge bundle's build for this machine, else on PATH. Raises
    PionUnavailable saying how to build it."""
    env = dict(os.environ) if env is None else env
    candidates = [env.get("LIVECAM_PIONPUB_BIN", "")]
    candidates.append(str(Path(sys.executable).with_name("pionpub")))
    name = bundled_name()
    candidates.append(str(bundle_bin / name) if name else "")
    for path in env.get("PATH", "").split(os.pathsep):
        candidates.append(str(Path(path) / "pionpub") if path else "")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and Path(candidate).is_file():
            return Path(candidate)
    raise PionUnavailable(
        'publisher = "pion" needs the pionpub program: build it with '
        "scripts/setup-pionpub.sh (Go >= 1.26) and set LIVECAM_PIONPUB_BIN to the path it "
        'prints, or use publisher = "libwebrtc"'
    )


class PionPublisher(Publisher):
    """One camera's publication through pionpub, kept alive across restarts."""

    #: Frames waiting for the writer thread. At 30 fps this is one second; if pionpub
    #: falls that far behind, frames are dropped up to the next keyframe.
    QUEUE_FRAMES = 30
    STOP_TIMEOUT_S = 5.0

    def __init__(
        self,
        camera_id: str,
        tokens: TokenProvider,
        request_keyframe: Callable[[], None],
        *,
        binary: Path,
        connect_timeout_s: float = 20.0,
    ) -> None:
        super().__init__(camera_id, tokens, request_keyframe, connect_timeout_s=connect_timeout_s)
        self._binary = binary
        self._queue: queue.Queue[CapturedFrame | None] | None = None  # under _lock

    # -- source thread -------------------------------------------------------------------

    def _connected(self) -> bool:
        return self._queue is not None

    def _deliver(self, frame: CapturedFrame) -> None:
        """Queue one access unit for the writer thread (never blocks)."""
        assert self._queue is not None
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            # pionpub is stuck: drop, and restart the picture at the next keyframe.
            self._await_keyframe = True
            self.stats.frames_dropped += 1

    # -- writer thread -------------------------------------------------------------------

    def _write(self, frames: queue.Queue[CapturedFrame | None], stdin: IO[bytes]) -> None:
        try:
            while (frame := frames.get()) is not None:
                data = frame.au.data
                stdin.write(HEADER.pack(len(data), frame.capture_us, frame.index % (1 << 32)))
                stdin.write(data)
                stdin.flush()
                self.stats.frames_sent += 1
                self.stats.bytes_sent += len(data)
        except (BrokenPipeError, ValueError, OSError) as exc:
            log.debug("pionpub stdin closed camera=%s error=%r", self.camera_id, exc)
        finally:
            with contextlib.suppress(OSError, ValueError):
                stdin.close()

    # -- asyncio side --------------------------------------------------------------------

    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> None:
        token = await self._tokens()
        assert self._size is not None
        width, height = self._size
        proc = await asyncio.to_thread(_spawn, self._binary, token.url, token.token, width, height)
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        threading.Thread(target=_log_lines, args=(proc.stderr, self.camera_id), daemon=True).start()
        frames: queue.Queue[CapturedFrame | None] = queue.Queue(self.QUEUE_FRAMES)
        writer = threading.Thread(
            target=self._write, args=(frames, proc.stdin), name=f"pion-{self.camera_id}"
        )
        try:
            event = await asyncio.wait_for(_next_event(proc), self._connect_timeout_s)
            if event.get("event") != "publishing":
                raise RuntimeError(f"pionpub did not publish (exit {proc.poll()}): {event}")
            writer.start()
            with self._lock:
                self._queue = frames
                self._await_keyframe = True
            self._published(backoff)
            log.info(
                "publishing camera=%s room=%s url=%s size=%dx%d publisher=pion track=%s",
                self.camera_id,
                token.room,
                token.url,
                width,
                height,
                event.get("track"),
            )
            stopped = asyncio.create_task(stop.wait())
            try:
                while True:
                    reading = asyncio.create_task(_next_event(proc))
                    done, _ = await asyncio.wait(
                        {reading, stopped}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if stopped in done:
                        reading.cancel()
                        return
                    event = reading.result()
                    if event.get("event") == "keyframe_request":
                        self._keyframe_requested()
                    elif event.get("event") in ("disconnected", "exited"):
                        self.last_error = f"LiveKit session ended: {event}"
                        log.warning(
                            "livekit disconnected camera=%s event=%s", self.camera_id, event
                        )
                        return
            finally:
                stopped.cancel()
        finally:
            with self._lock:
                self._queue = None
            if writer.is_alive():
                with contextlib.suppress(queue.Full):
                    frames.put_nowait(None)
            else:
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.close()
            await asyncio.to_thread(_end, proc, self.STOP_TIMEOUT_S)
            if writer.is_alive():
                await asyncio.to_thread(writer.join, self.STOP_TIMEOUT_S)


def _spawn(binary: Path, url: str, token: str, width: int, height: int) -> subprocess.Popen[bytes]:
    # The token goes through the environment: command lines are visible to every user.
    return subprocess.Popen(
        [str(binary), "-url", url, "-width", str(width), "-height", str(height)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "LIVECAM_LIVEKIT_TOKEN": token},
    )


async def _next_event(proc: subprocess.Popen[bytes]) -> dict[str, str]:
    """The next JSON line pionpub prints; {"event": "exited"} when it has exited."""
    assert proc.stdout is not None
    while True:
        line = await asyncio.to_thread(proc.stdout.readline)
        if not line:
            return {"event": "exited", "code": str(await asyncio.to_thread(proc.wait))}
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            log.warning("pionpub printed something else: %r", line[:200])
            continue
        if isinstance(event, dict):
            return {str(k): str(v) for k, v in event.items()}


def _end(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Let pionpub leave the room after stdin closed; kill it if it does not."""
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _log_lines(stream: IO[bytes], camera_id: str) -> None:
    """pionpub's stderr (its own errors, the SDK's warnings) into the edge's log."""
    for line in stream:
        text = line.decode(errors="replace").rstrip()
        if text:
            log.warning("pionpub camera=%s %s", camera_id, text)
