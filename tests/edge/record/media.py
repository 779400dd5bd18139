"""Real H.264 streams for the recorder tests, split into access units as a source does."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import av

from edge.h264 import AccessUnit, AccessUnitReader
from edge.sources.base import CapturedFrame, wall_us
from scripts.media import make_h264_file

DATA = Path(__file__).parent.parent / "data"


def access_units(path: Path) -> list[AccessUnit]:
    """Every access unit of a raw Annex-B file."""
    reader = AccessUnitReader()
    return reader.feed(path.read_bytes()) + reader.flush()


def make_stream(
    directory: Path, *, width: int = 320, height: int = 240, seconds: float = 12.0, gop: int = 30
) -> list[AccessUnit]:
    """A 30 fps stream with a keyframe every ``gop`` frames."""
    name = f"s{width}x{height}_{seconds:g}s_g{gop}.h264"
    path = directory / name
    if not path.exists():
        make_h264_file(path, width=width, height=height, fps=30, seconds=seconds, gop=gop)
    return access_units(path)


def captured(
    aus: Sequence[AccessUnit], *, t0_us: int | None = None, fps: float = 30.0, first_index: int = 0
) -> list[CapturedFrame]:
    """The access units as a camera captured them, ``1/fps`` apart from ``t0_us`` (now)."""
    t0 = wall_us() if t0_us is None else t0_us
    step = 1e6 / fps
    return [CapturedFrame(au, t0 + round(i * step), first_index + i) for i, au in enumerate(aus)]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``check`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def packets(path: Path) -> list[tuple[int, int, bool]]:
    """(pts µs, duration µs, keyframe) of every video packet, by demuxing."""
    out: list[tuple[int, int, bool]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        assert tb is not None
        for p in container.demux(stream):
            if p.size == 0 or p.pts is None or p.duration is None:
                continue
            out.append(
                (round(p.pts * tb * 1_000_000), round(p.duration * tb * 1_000_000), p.is_keyframe)
            )
    return out


def decoded_frames(path: Path) -> int:
    """How many pictures a decoder gets out of ``path``."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))
