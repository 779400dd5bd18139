"""A recorded file as a camera: mp4/mkv/mov or raw .h264, looped and paced in real time.

The bytes go out as they are stored (no re-encode), which makes a file the stand-in
for a Pi's hardware encoder in tests and benchmarks.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from edge.h264 import AccessUnitReader
from edge.sources.base import (
    CapturedFrame,
    FatalSourceError,
    FrameSink,
    Pacer,
    wall_us,
)
from edge.sources.demux import annexb_packets, open_h264

log = logging.getLogger("edge.sources.file")

RAW_SUFFIXES = {".h264", ".264", ".h26l", ".avc"}
CHUNK = 64 * 1024


class FileSource:
    """Plays a file at its own frame rate; ``loop`` restarts it at the end."""

    kind = "file"
    # A stored stream cannot make a new keyframe; its GOP bounds a late viewer's wait.
    can_force_keyframe = False

    def __init__(
        self, *, name: str, path: str | Path, loop: bool = True, fps: float | None = None
    ) -> None:
        self.name = name
        self.path = Path(path).expanduser()
        self.loop = loop
        self.fps = fps  # only for raw streams without VUI timing
        self.index = 0

    def request_keyframe(self) -> None:
        """Files cannot honour keyframe requests."""

    def run(self, sink: FrameSink, stop: threading.Event) -> None:
        """Emit the file's access units in real time until stopped (or its end if not looping)."""
        if not self.path.is_file():
            raise FatalSourceError(f"{self.name}: file {self.path} does not exist")
        raw = self.path.suffix.lower() in RAW_SUFFIXES
        log.info(
            "file source started camera=%s path=%s raw=%s loop=%s",
            self.name,
            self.path,
            raw,
            self.loop,
        )
        pacer = Pacer(stop)
        passes = 0
        while not stop.is_set():
            pacer.restart()
            sent = (
                self._play_raw(sink, stop, pacer)
                if raw
                else self._play_container(sink, stop, pacer)
            )
            passes += 1
            if sent == 0:
                raise FatalSourceError(
                    f"{self.name}: {self.path} holds no decodable H.264 access unit "
                    "(no SPS/PPS + keyframe found)"
                )
            log.debug("file pass done camera=%s pass=%d frames=%d", self.name, passes, sent)
            if not self.loop:
                return

    def _emit(self, sink: FrameSink, frame: CapturedFrame) -> None:
        sink(frame)
        self.index += 1

    def _play_raw(self, sink: FrameSink, stop: threading.Event, pacer: Pacer) -> int:
        reader = AccessUnitReader(name=self.name)
        sent = 0
        with self.path.open("rb") as f:
            while not stop.is_set():
                chunk = f.read(CHUNK)
                aus = reader.feed(chunk) if chunk else reader.flush()
                for au in aus:
                    fps = self.fps or au.sps.fps or 30.0
                    if not pacer.wait_until(sent / fps):
                        return sent
                    self._emit(sink, CapturedFrame(au=au, capture_us=wall_us(), index=self.index))
                    sent += 1
                if not chunk:
                    break
        if reader.stats.dropped_bytes or reader.stats.dropped_nals:
            log.warning(
                "file had damaged data camera=%s path=%s dropped_bytes=%d dropped_nals=%d",
                self.name,
                self.path,
                reader.stats.dropped_bytes,
                reader.stats.dropped_nals,
            )
        return sent

    def _play_container(self, sink: FrameSink, stop: threading.Event, pacer: Pacer) -> int:
        container, stream = open_h264(str(self.path), name=self.name)
        reader = AccessUnitReader(name=self.name)
        sent = 0
        first_pts: float | None = None
        fps = self.fps or float(stream.average_rate or 30)
        try:
            for packet in annexb_packets(container, stream):
                au = reader.push_access_unit(packet.data)
                if au is None:
                    continue
                if packet.pts_s is not None:
                    first_pts = packet.pts_s if first_pts is None else first_pts
                    media_s = packet.pts_s - first_pts
                else:
                    media_s = sent / fps
                if not pacer.wait_until(media_s):
                    break
                self._emit(sink, CapturedFrame(au=au, capture_us=wall_us(), index=self.index))
                sent += 1
        finally:
            container.close()
        return sent
