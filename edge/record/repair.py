"""Repairs an MP4 cut short (kill -9, power cut, full disk) so that every player takes it.

A fragmented MP4 is a row of top-level boxes: ``ftyp``, ``moov`` (the header), then
``moof`` + ``mdat`` pairs (one per GOP), perhaps ``mfra`` at the end. A file cut
mid-write ends in a partial box, or in a ``moof`` whose ``mdat`` never came. FFmpeg
skips such a tail, but stricter players (browsers, hardware decoders) refuse the file,
so the tail is cut off: the file is truncated after its last complete fragment. A file
without a complete header or without any fragment holds nothing playable.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import av


@dataclass(frozen=True, slots=True)
class Box:
    """One top-level box: its four-letter type, where it starts and its size in bytes."""

    type: bytes
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class RepairResult:
    """What ``repair`` found and did."""

    playable: bool  # a complete header and at least one complete fragment remain
    size: int  # file size after the repair
    cut_bytes: int  # bytes removed from the end
    fragments: int  # complete moof + mdat pairs kept


def top_level_boxes(path: Path) -> tuple[list[Box], int]:
    """The complete top-level boxes at the start of ``path`` and the file size; scanning
    stops at the first box that is incomplete or malformed."""
    boxes: list[Box] = []
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if box_size == 1:  # 64-bit size follows the type
                if len(header) < 16:
                    break
                box_size = struct.unpack(">Q", header[8:16])[0]
                if box_size < 16:
                    break
            elif box_size == 0 or box_size < 8:  # "to the end of the file" is never ours
                break
            if offset + box_size > size:
                break
            boxes.append(Box(box_type, offset, box_size))
            offset += box_size
    return boxes, size


def repair(path: Path) -> RepairResult:
    """Truncate ``path`` after its last complete fragment and fsync it.

    Keeps ``ftyp``, ``moov``, complete ``moof``+``mdat`` pairs and complete boxes
    between them (``sidx``, ``styp``, ``free``, ``mfra``); a ``moof`` without its
    ``mdat`` and everything after it go.
    """
    boxes, size = top_level_boxes(path)
    types = [b.type for b in boxes]
    has_header = len(types) >= 2 and b"ftyp" in types[:2] and b"moov" in types
    keep_end = 0
    fragments = 0
    i = 0
    while i < len(boxes):
        box = boxes[i]
        if box.type == b"moof":
            if i + 1 < len(boxes) and boxes[i + 1].type == b"mdat":
                fragments += 1
                keep_end = boxes[i + 1].offset + boxes[i + 1].size
                i += 2
                continue
            break  # a moof without its data: the cut is here
        if box.type == b"mdat":
            break  # data without a moof (not something we write)
        keep_end = box.offset + box.size
        i += 1
    if keep_end < size:
        with path.open("r+b") as f:
            f.truncate(keep_end)
            os.fsync(f.fileno())
    return RepairResult(
        playable=has_header and fragments > 0,
        size=keep_end,
        cut_bytes=size - keep_end,
        fragments=fragments,
    )


@dataclass(frozen=True, slots=True)
class MediaSpan:
    """How much video a file holds, by demuxing it (no decoding)."""

    frames: int
    keyframes: int
    duration_us: int  # from the first frame's start to the last frame's end
    end_us: int  # where the last frame ends, from timestamp 0 (a segment's first frame)


def media_span(path: Path) -> MediaSpan:
    """Count the video packets of ``path`` and find where its media ends."""
    frames = keyframes = 0
    first: float | None = None
    end = 0.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = float(stream.time_base or 0)
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            frames += 1
            keyframes += int(packet.is_keyframe)
            start = packet.pts * tb
            first = start if first is None else min(first, start)
            end = max(end, (packet.pts + (packet.duration or 0)) * tb)
    duration = 0 if first is None else round((end - first) * 1e6)
    return MediaSpan(
        frames=frames, keyframes=keyframes, duration_us=duration, end_us=round(end * 1e6)
    )
