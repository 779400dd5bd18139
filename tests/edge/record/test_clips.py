"""Event clips cut from real H.264: pre-roll + event + post-roll, no re-encoding."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import av
import pytest

from edge.events.message import EventMessage, Phase
from edge.h264 import AccessUnit
from edge.record.clips import ClipCutter, ClipFile
from edge.record.files import SyncedFile
from edge.record.fmp4 import Fmp4Writer
from edge.record.repair import top_level_boxes
from edge.record.settings import RecordSettings
from edge.sources.base import CapturedFrame, wall_us
from tests.edge.record.faults import Faults
from tests.edge.record.media import captured, decoded_frames, packets, wait_for

SETTINGS = RecordSettings(
    pre_roll_s=2, post_roll_s=2, queue_max_frames=5000, queue_max_bytes=1 << 30
)
A, B = "6f1c2d3e-0000-4000-8000-00000000000a", "6f1c2d3e-0000-4000-8000-00000000000b"


def message(
    event_id: str, phase: Phase, started_us: int, ended_us: int | None = None
) -> EventMessage:
    seq = {"start": 0, "update": 1, "end": 2}[phase]
    at = ended_us if ended_us is not None else started_us
    return EventMessage(
        event_id, seq, phase, "person", "person", 0.9, None, (), started_us, at, ended_us
    )


class Clips:
    """Collects what ``on_clip`` receives (on the cutter's worker thread)."""

    def __init__(self) -> None:
        self.got: list[ClipFile] = []
        self.threads: set[str] = set()

    def __call__(self, clip: ClipFile) -> None:
        self.threads.add(threading.current_thread().name)
        self.got.append(clip)

    def wait(self, n: int) -> list[ClipFile]:
        wait_for(lambda: len(self.got) >= n, f"{n} clips")
        return self.got


@pytest.fixture
def clips() -> Clips:
    return Clips()


@pytest.fixture
def cutter(tmp_path: Path, clips: Clips) -> Iterator[ClipCutter]:
    c = ClipCutter("cam", tmp_path, SETTINGS, clips)
    c.start()
    yield c
    c.close()


def play(
    cutter: ClipCutter,
    frames: Sequence[CapturedFrame],
    events: Mapping[int, Sequence[EventMessage]],
) -> None:
    """Frames as the source sends them, with event messages arriving before frame ``i``."""
    for i, frame in enumerate(frames):
        for m in events.get(i, ()):
            cutter.on_event(m)
        cutter.on_frame(frame)


def check_file(clip: ClipFile) -> list[tuple[int, int, bool]]:
    """The clip is what a browser plays: H.264 in avc1 (avcC), index first; its size and
    SHA-256 are the file's. Returns its packets."""
    data = clip.path.read_bytes()
    assert (clip.size, clip.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    types = [b.type for b in top_level_boxes(clip.path)[0]]
    assert types[0] == b"ftyp"
    assert types.index(b"moov") < types.index(b"mdat")
    with av.open(str(clip.path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_tag == "avc1"
        assert (stream.codec_context.extradata or b"")[:1] == b"\x01"  # avcC
    got = packets(clip.path)
    assert got[0][2]  # starts on a keyframe
    assert decoded_frames(clip.path) == len(got)
    return got


def test_clip_has_pre_roll_event_and_post_roll(
    tmp_path: Path, cutter: ClipCutter, clips: Clips, stream_320: list[AccessUnit]
) -> None:
    frames = captured(stream_320)  # 12 s, keyframe every second
    started = frames[135].capture_us  # the event began at 4.5 s, reported at 5 s
    ended = frames[235].capture_us  # ended at 7.83 s, reported at 8 s
    play(
        cutter,
        frames,
        {
            150: [message(A, "start", started)],
            180: [message(A, "update", started)],
            240: [message(A, "end", started, ended)],
        },
    )
    (clip,) = clips.wait(1)
    assert clip.event_id == A
    assert clip.path == tmp_path / "clips" / f"{A}.mp4"
    got = check_file(clip)
    # From the keyframe at 2 s (≥ 2 s before 4.5 s) to the last frame ≤ 9.83 s (end + 2 s).
    assert len(got) == 296 - 60
    assert clip.started_us == frames[60].capture_us
    assert clip.ended_us == pytest.approx(frames[296].capture_us, abs=2)
    assert clip.duration_s == pytest.approx(236 / 30, abs=0.001)
    assert got[-1][0] + got[-1][1] == pytest.approx(236 / 30 * 1e6, abs=20)
    assert [p.name for p in (tmp_path / "clips").iterdir()] == [f"{A}.mp4"]  # no temp files
    assert clips.threads == {"clips-cam"}
    assert cutter.active == 0


def test_overlapping_events_each_get_their_clip(
    cutter: ClipCutter, clips: Clips, stream_320: list[AccessUnit]
) -> None:
    frames = captured(stream_320)
    a0, b0 = frames[100].capture_us, frames[160].capture_us
    play(
        cutter,
        frames,
        {
            100: [message(A, "start", a0)],
            160: [message(B, "start", b0)],
            200: [message(A, "end", a0, frames[200].capture_us)],
            300: [message(B, "end", b0, frames[290].capture_us)],
        },
    )
    by_event = {c.event_id: c for c in clips.wait(2)}
    a, b = by_event[A], by_event[B]
    # Keyframes at or before 2 s ahead of each start; frames up to 2 s after each end.
    assert (a.started_us, b.started_us) == (frames[30].capture_us, frames[90].capture_us)
    assert len(check_file(a)) == 261 - 30
    assert len(check_file(b)) == 351 - 90


def test_close_mid_clip_finishes_it_with_what_it_has(
    tmp_path: Path, clips: Clips, stream_320: list[AccessUnit]
) -> None:
    cutter = ClipCutter("cam", tmp_path, SETTINGS, clips)
    cutter.start()
    frames = captured(stream_320[:200])
    play(cutter, frames, {100: [message(A, "start", frames[100].capture_us)]})
    cutter.close()
    (clip,) = clips.got
    assert len(check_file(clip)) == 200 - 30  # keyframe at 1 s ≤ 3.33 s - 2 s


def test_a_clip_never_exceeds_max_clip_s(
    tmp_path: Path, clips: Clips, stream_320: list[AccessUnit]
) -> None:
    cutter = ClipCutter("cam", tmp_path, dataclasses.replace(SETTINGS, max_clip_s=5), clips)
    cutter.start()
    frames = captured(stream_320)
    play(cutter, frames, {90: [message(A, "start", frames[90].capture_us)]})  # never ends
    (clip,) = clips.wait(1)
    cutter.close()
    assert len(check_file(clip)) == 150  # 5 s from the keyframe at 1 s
    assert clip.duration_s == pytest.approx(5.0, abs=0.001)


def test_a_clip_ends_when_the_frames_stop(
    tmp_path: Path, clips: Clips, stream_320: list[AccessUnit], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "edge.record")
    cutter = ClipCutter("cam", tmp_path, SETTINGS, clips)
    cutter.start()
    frames = captured(stream_320[:130], t0_us=wall_us() - 20_000_000)  # the camera went away
    started = frames[60].capture_us
    play(cutter, frames, {60: [message(A, "start", started)]})
    cutter.on_event(message(A, "end", started, frames[129].capture_us))
    (clip,) = clips.wait(1)
    cutter.close()
    assert len(check_file(clip)) == 130
    assert "reason=no-frames" in caplog.text


def test_repeats_and_unknown_events_are_ignored(
    cutter: ClipCutter, clips: Clips, stream_320: list[AccessUnit]
) -> None:
    frames = captured(stream_320[:200])
    s = frames[50].capture_us
    play(
        cutter,
        frames,
        {
            50: [message(A, "start", s), message("../../etc", "start", s)],
            60: [message(A, "start", s), message(B, "end", s, s)],
            70: [message(A, "end", s, frames[70].capture_us)],
            80: [message(A, "start", s)],  # a retry of the start after the clip was cut
        },
    )
    (clip,) = clips.wait(1)
    cutter.close()
    assert [c.event_id for c in clips.got] == [A]
    # From keyframe 0 (1.67 s − 2 s is before the stream: the oldest) to 70 + 2 s.
    assert len(check_file(clip)) == 131


def test_disk_full_loses_the_clip_not_the_cutter(
    tmp_path: Path, clips: Clips, stream_320: list[AccessUnit], caplog: pytest.LogCaptureFixture
) -> None:
    faults = Faults()
    cutter = ClipCutter("cam", tmp_path, SETTINGS, clips, opener=faults.opener)
    cutter.start()
    frames = captured(stream_320)
    faults.errno = errno.ENOSPC
    play(cutter, frames[:150], {60: [message(A, "start", frames[60].capture_us)]})
    wait_for(lambda: cutter.stats.failed == 1, "the clip given up")
    faults.errno = None
    play(
        cutter,
        frames[150:],
        {
            10: [message(B, "start", frames[160].capture_us)],
            100: [message(B, "end", frames[160].capture_us, frames[250].capture_us)],
        },
    )
    (clip,) = clips.wait(1)
    cutter.close()
    assert clip.event_id == B
    assert len(check_file(clip)) == 311 - 90
    assert "clip lost camera=cam event=" + A + " reason=disk-full" in caplog.text
    assert [p.name for p in (tmp_path / "clips").iterdir()] == [f"{B}.mp4"]


def test_partial_clips_left_by_a_crash_are_finished_on_start(
    tmp_path: Path, clips: Clips, stream_320: list[AccessUnit]
) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    frames = captured(stream_320[:100])
    first = frames[0].capture_us
    # Clip A: killed mid-write, its third fragment cut short.
    writing = tmp_path / "writing.mp4"
    writer = Fmp4Writer(SyncedFile(writing, 0), frames[0])
    for f in frames[1:]:
        writer.write(f)
    assert writer.fragments == 3
    data = writing.read_bytes()  # what was on disk when the process died
    writer.abandon()
    partial = folder / f".{A}.{first}.partial.mp4"
    partial.write_bytes(data[: len(data) - 3000])
    # Clip B: renamed to its final name, but the crash came before the partial was deleted.
    final_b = folder / f"{B}.mp4"
    writer = Fmp4Writer(SyncedFile(final_b, 0), frames[0])
    for f in frames[1:60]:
        writer.write(f)
    writer.close()
    (folder / f".{B}.{first}.partial.mp4").write_bytes(b"")
    (folder / f".{B}.tmp.mp4").write_bytes(b"half a remux")
    cutter = ClipCutter("cam", tmp_path, SETTINGS, clips)
    cutter.start()
    got = {c.event_id: c for c in clips.wait(2)}
    cutter.close()
    assert len(check_file(got[A])) == 60  # the two complete fragments (GOPs) of three
    assert got[A].started_us == first
    assert got[A].ended_us == pytest.approx(frames[60].capture_us, abs=2)
    assert got[B].path == final_b
    assert got[B].duration_s == pytest.approx(2.0, abs=0.001)
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{A}.mp4", f"{B}.mp4"])
    assert cutter.stats.recovered == 1


def test_clips_off_means_nothing_is_kept(
    tmp_path: Path, clips: Clips, stream_320: list[AccessUnit]
) -> None:
    cutter = ClipCutter("cam", tmp_path, dataclasses.replace(SETTINGS, clips=False), clips)
    cutter.start()
    frames = captured(stream_320[:100])
    play(cutter, frames, {50: [message(A, "start", frames[50].capture_us)]})
    cutter.close()
    assert clips.got == []
    assert not (tmp_path / "clips").exists()
    assert cutter.active == 0
