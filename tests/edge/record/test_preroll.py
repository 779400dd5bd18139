"""The pre-roll buffer: whole GOPs, far enough back, never more than its byte bound."""

from __future__ import annotations

from edge.h264 import AccessUnit
from edge.record.preroll import GopBuffer
from tests.edge.record.media import captured

T0 = 1_000_000_000


def test_keeps_whole_gops_reaching_back_at_least_keep_s(stream_320: list[AccessUnit]) -> None:
    buffer = GopBuffer(keep_s=2.5, max_bytes=64 * 1024 * 1024)
    frames = captured(stream_320, t0_us=T0)
    for n, frame in enumerate(frames, 1):
        buffer.append(frame)
        oldest = buffer.oldest_us
        assert oldest is not None
        # Oldest keyframe: the newest one at least 2.5 s old (or the first of all).
        assert oldest <= max(T0, frame.capture_us - 2_500_000)
        assert frame.capture_us - oldest < 2_500_000 + 1_000_000  # at most one GOP more
        assert len(buffer) <= n
    held = buffer.since(frames[-1].capture_us - 2_500_000)
    assert held[0].au.keyframe
    assert held[-1] is frames[-1]
    assert [f.index for f in held] == list(range(held[0].index, frames[-1].index + 1))


def test_since_picks_the_keyframe_at_or_before_the_time(stream_320: list[AccessUnit]) -> None:
    buffer = GopBuffer(keep_s=30, max_bytes=64 * 1024 * 1024)
    frames = captured(stream_320[:300], t0_us=T0)  # keyframes at 0, 1, ..., 9 s
    for frame in frames:
        buffer.append(frame)
    assert buffer.since(T0 + 4_500_000)[0].index == 120  # keyframe at 4 s
    assert buffer.since(T0 + 4_000_000)[0].index == 120
    assert buffer.since(T0 + 3_999_000)[0].index == 90
    assert buffer.since(T0 - 10_000_000)[0].index == 0  # before the buffer: the oldest
    assert len(buffer.since(T0 + 60_000_000)) == 30  # after the newest keyframe: its GOP


def test_byte_bound_drops_whole_oldest_gops(stream_320: list[AccessUnit]) -> None:
    frames = captured(stream_320[:300], t0_us=T0)
    gop_bytes = sum(len(f.au.data) for f in frames[:30])
    buffer = GopBuffer(keep_s=60, max_bytes=int(gop_bytes * 3.5))
    for frame in frames:
        buffer.append(frame)
        assert buffer.bytes <= buffer.max_bytes
        held = buffer.since(0)
        assert held[0].au.keyframe
        assert buffer.bytes == sum(len(f.au.data) for f in held)
    assert buffer.dropped_gops >= 6
    assert 2 * 30 <= len(buffer) <= 4 * 30


def test_ignores_frames_before_the_first_keyframe_and_oversize_gops(
    stream_320: list[AccessUnit],
) -> None:
    frames = captured(stream_320[:90], t0_us=T0)
    buffer = GopBuffer(keep_s=5, max_bytes=1024)  # smaller than any GOP
    for frame in frames[5:]:
        buffer.append(frame)
    assert len(buffer) == 0
    assert buffer.bytes == 0
    assert buffer.since(T0) == []
    buffer = GopBuffer(keep_s=5, max_bytes=64 * 1024 * 1024)
    for frame in frames[5:40]:
        buffer.append(frame)
    assert [f.index for f in buffer.since(0)] == list(range(30, 40))
