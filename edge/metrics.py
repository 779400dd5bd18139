"""What the heartbeat reports about a camera: the source's rate, the host's CPU and heat."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil

from edge.sources.base import CapturedFrame

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


class RateMeter:
    """Frames and bytes per second produced by a source over the last reporting window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frames = 0
        self._bytes = 0
        self._since = time.monotonic()
        self.last_frame_at: float | None = None
        self.width: int | None = None
        self.height: int | None = None

    def on_frame(self, frame: CapturedFrame) -> None:
        """Count one access unit (source thread)."""
        with self._lock:
            self._frames += 1
            self._bytes += len(frame.au.data)
            self.last_frame_at = time.monotonic()
            self.width, self.height = frame.au.width, frame.au.height

    def take(self) -> tuple[float, float]:
        """(fps, kbit/s) since the previous call, and start a new window."""
        now = time.monotonic()
        with self._lock:
            elapsed = max(1e-6, now - self._since)
            fps, kbps = self._frames / elapsed, self._bytes * 8 / 1000 / elapsed
            self._frames = self._bytes = 0
            self._since = now
        return fps, kbps


def cpu_temperature_c() -> float | None:
    """SoC temperature on a Pi (and most Linux boards); None where there is no sensor."""
    try:
        return int(THERMAL_ZONE.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


class ProcessCpu:
    """This process's CPU use in % of one core since the previous call."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._proc.cpu_percent(interval=None)

    def take(self) -> float:
        """CPU % of one core over the last window."""
        return float(self._proc.cpu_percent(interval=None))
