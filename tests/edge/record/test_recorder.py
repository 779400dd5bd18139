"""The continuous recorder with real H.264: segments, rolls, resume after a crash, errors."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from edge.h264 import AccessUnit
from edge.record.recorder import INDEX_NAME, Recorder, segment_name
from edge.record.repair import repair, top_level_boxes
from edge.record.settings import RecordSettings
from edge.sources.base import CapturedFrame
from tests.edge.record.faults import Faults
from tests.edge.record.media import captured, decoded_frames, packets, wait_for

ROOT = Path(__file__).resolve().parents[3]

#: Tests feed frames faster than real time: a queue that holds them all, no reserve.
FAST = RecordSettings(
    segment_s=4, min_free_gb=0, queue_max_frames=5000, queue_max_bytes=1 << 30, retry_s=0.05
)


def feed(rec: Recorder, frames: Sequence[CapturedFrame], chunk: int = 10_000) -> None:
    """Hand ``frames`` to the recorder, ``chunk`` at a time, waiting each time until its
    worker has taken them all."""

    def done() -> int:
        return rec.stats.handled + rec.stats.dropped_frames

    for i in range(0, len(frames), chunk):
        part = frames[i : i + chunk]
        target = done() + len(part)
        for frame in part:
            rec.on_frame(frame)
        wait_for(lambda goal=target: done() >= goal, "frames handled")  # type: ignore[misc]


def segment_files(directory: Path) -> list[Path]:
    """The segment files, oldest first (a running recorder may delete some meanwhile)."""
    found: list[tuple[int, Path]] = []
    for path in directory.glob("segments/*/*.mp4"):
        with contextlib.suppress(FileNotFoundError):
            found.append((path.stat().st_mtime_ns, path))
    return [p for _, p in sorted(found)]


def rows(directory: Path) -> list[tuple[str, int, int | None, int, int]]:
    with sqlite3.connect(directory / "segments" / INDEX_NAME) as db:
        return list(
            db.execute("SELECT path, start_us, end_us, bytes, frames FROM segments ORDER BY id")
        )


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    rec = Recorder("cam", tmp_path, FAST)
    rec.start()
    yield rec
    rec.close()


def test_segments_roll_on_keyframes_at_segment_s(
    tmp_path: Path, recorder: Recorder, stream_320: list[AccessUnit]
) -> None:
    frames = captured(stream_320)  # 12 s, a keyframe every second
    feed(recorder, frames[:200])
    health = recorder.health()
    assert health["recording"]
    assert health["segment"].startswith("cam-")
    assert health["disk_full"] is False
    assert health["free_bytes"] > 0
    feed(recorder, frames[200:])
    recorder.close()
    files = segment_files(tmp_path)
    assert len(files) == 3
    index = rows(tmp_path)
    for i, path in enumerate(files):
        first = frames[120 * i]
        day, name = segment_name("cam", first.capture_us)
        assert (path.parent.name, path.name) == (day, name)
        got = packets(path)
        assert len(got) == 120
        assert [p[2] for p in got] == [j % 30 == 0 for j in range(120)]
        assert got[-1][0] + got[-1][1] == pytest.approx(4_000_000, abs=50)
        assert decoded_frames(path) == 120
        rel, start, end, size, count = index[i]
        assert (rel, start, size, count) == (
            str(path.relative_to(tmp_path)),
            first.capture_us,
            path.stat().st_size,
            120,
        )
        assert end == pytest.approx(first.capture_us + 4_000_000, abs=2)
        assert [b.type for b in top_level_boxes(path)[0]][-1] == b"mfra"  # closed properly
    assert index[0][2] == index[1][1]
    assert index[1][2] == index[2][1]
    assert recorder.stats.segments == 3
    assert recorder.stats.frames == 360


def test_format_change_and_time_gap_roll(
    tmp_path: Path,
    recorder: Recorder,
    stream_320: list[AccessUnit],
    stream_640: list[AccessUnit],
) -> None:
    t0 = captured(stream_320[:1])[0].capture_us
    small = captured(stream_320[:45], t0_us=t0)
    big = captured(stream_640[:60], t0_us=t0 + 1_500_000)
    later = captured(stream_640[:60], t0_us=t0 + 13_500_000)  # 10 s without frames
    mid_gop = captured(stream_640[15:75], t0_us=t0 + 25_500_000)  # resumes mid-GOP
    feed(recorder, small + big + later + mid_gop)
    recorder.close()
    files = segment_files(tmp_path)
    assert [len(packets(f)) for f in files] == [45, 60, 60, 45]
    assert len({f.name for f in files}) == 4  # unique names within one second
    sizes = []
    for f in files:
        got = packets(f)
        assert got[0][2]  # every segment starts with a keyframe
        import av

        with av.open(str(f)) as c:
            sizes.append((c.streams.video[0].width, c.streams.video[0].height))
    assert sizes == [(320, 240), (640, 360), (640, 360), (640, 360)]
    assert recorder.stats.skipped_frames == 15


def test_writer_error_closes_the_segment_cleanly_and_restarts_at_a_keyframe(
    tmp_path: Path, stream_320: list[AccessUnit], caplog: pytest.LogCaptureFixture
) -> None:
    faults = Faults()
    rec = Recorder("cam", tmp_path, dataclasses.replace(FAST, segment_s=60), opener=faults.opener)
    rec.start()
    frames = captured(stream_320[:180])
    feed(rec, frames[:61])  # GOP 1 written when the keyframe at 30 went out
    faults.errno = errno.EIO
    feed(rec, frames[61:91])  # the keyframe at 60 goes out: GOP 2 fails
    faults.errno = None
    feed(rec, frames[91:])
    rec.close()
    assert rec.stats.write_errors == 1
    assert rec.last_error is not None
    assert "Input/output error" in rec.last_error
    first, second = segment_files(tmp_path)
    assert len(packets(first)) == 30
    assert decoded_frames(first) == 30
    assert repair(first).cut_bytes == 0
    got = packets(second)
    assert got[0][2]
    assert len(got) == 90
    assert [r[4] for r in rows(tmp_path)] == [30, 90]
    assert "segment write failed camera=cam" in caplog.text


def test_garbage_access_units_do_not_break_a_segment(
    tmp_path: Path, recorder: Recorder, stream_320: list[AccessUnit]
) -> None:
    aus = list(stream_320[:90])
    aus[40] = dataclasses.replace(aus[40], data=aus[40].data[: len(aus[40].data) // 2])
    junk = random.Random(5).randbytes(400)
    aus[50] = dataclasses.replace(aus[50], data=b"\x00\x00\x00\x01\x41" + junk)
    aus[55] = dataclasses.replace(aus[55], data=b"")
    feed(recorder, captured(aus))
    recorder.close()
    (path,) = segment_files(tmp_path)
    assert len(packets(path)) == 89  # the empty one is skipped
    # A player shows all but the damaged pictures, and everything from the next keyframe.
    assert tolerant_decode(path) >= 80


def tolerant_decode(path: Path) -> int:
    """Pictures decoded packet by packet, skipping packets the decoder refuses (as players do)."""
    import av

    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                n += len(stream.codec_context.decode(packet))
            except av.error.InvalidDataError:
                continue
    return n


def test_a_stalled_card_drops_frames_up_to_the_next_keyframe(
    tmp_path: Path, stream_320: list[AccessUnit], caplog: pytest.LogCaptureFixture
) -> None:
    faults = Faults()
    settings = dataclasses.replace(FAST, segment_s=60, queue_max_frames=20)
    rec = Recorder("cam", tmp_path, settings, opener=faults.opener)
    rec.start()
    frames = captured(stream_320[:180])
    faults.flowing.clear()
    rec.on_frame(frames[0])
    rec.on_frame(frames[1])
    wait_for(faults.waiting.is_set, "the writer stuck in a write")
    for frame in frames[2:90]:
        rec.on_frame(frame)  # never blocks
    assert rec.stats.dropped_frames == 88 - 20
    assert rec.health()["dropped_frames"] == 68
    faults.flowing.set()
    wait_for(lambda: rec.stats.handled == 22, "the queue drained")
    feed(rec, frames[90:], chunk=10)
    rec.close()
    (path,) = segment_files(tmp_path)
    got = packets(path)
    assert len(got) == 22 + 90
    assert got[22][2]  # after the drop, the recording goes on at a keyframe
    assert decoded_frames(path) == 112
    assert caplog.text.count("recorder behind camera=cam") == 1


def test_resume_repairs_a_cut_segment_and_records_into_a_new_one(
    tmp_path: Path, stream_320: list[AccessUnit], caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(FAST, segment_s=60)
    rec = Recorder("cam", tmp_path, settings)
    rec.start()
    frames = captured(stream_320)
    feed(rec, frames[:150])
    rec.close()
    (path,) = segment_files(tmp_path)
    # As a power cut leaves it: the index row without an end, the file cut mid-fragment.
    data = path.read_bytes()
    mdats = [b for b in top_level_boxes(path)[0] if b.type == b"mdat"]
    path.write_bytes(data[: mdats[3].offset + mdats[3].size // 2])
    with sqlite3.connect(tmp_path / "segments" / INDEX_NAME) as db:
        db.execute("UPDATE segments SET end_us = NULL")
    caplog.set_level(logging.INFO, "edge.record")
    rec = Recorder("cam", tmp_path, settings)
    rec.start()
    assert rec.stats.repaired == 1
    assert decoded_frames(path) == 90
    assert repair(path).cut_bytes == 0
    ((_, start, end, size, count),) = rows(tmp_path)
    assert (count, size) == (90, path.stat().st_size)
    assert end == pytest.approx(start + 3_000_000, abs=20)  # its real end
    assert "segment repaired camera=cam" in caplog.text
    feed(rec, frames[150:240])
    rec.close()
    old, new = segment_files(tmp_path)
    assert old == path
    assert len(packets(new)) == 90


def test_resume_rebuilds_a_lost_index_from_the_files(
    tmp_path: Path, stream_320: list[AccessUnit]
) -> None:
    rec = Recorder("cam", tmp_path, FAST)
    rec.start()
    frames = captured(stream_320)
    feed(rec, frames[:200])
    rec.close()
    for p in (tmp_path / "segments").glob(INDEX_NAME + "*"):
        p.unlink()
    (tmp_path / "segments" / "stray.mp4").write_bytes(b"not a segment")  # ignored
    rec = Recorder("cam", tmp_path, FAST)
    rec.start()
    rec.close()
    found = rows(tmp_path)
    assert [r[4] for r in found] == [120, 80]
    assert all(r[2] is not None for r in found)


CHILD = """
import sys, time
from pathlib import Path
from edge.record import Recorder, RecordSettings
from tests.edge.record.media import access_units, captured

aus = access_units(Path(sys.argv[2]))
rec = Recorder("cam", Path(sys.argv[1]), RecordSettings(segment_s=3600, fsync_s=0, min_free_gb=0))
rec.start()
last = -1
for frame in captured(aus * 20):
    rec.on_frame(frame)
    time.sleep(0.002)  # a camera faster than real time, but a camera: frames keep coming
    if rec.flushed_frames != last:
        last = rec.flushed_frames
        print(f"flushed={last}", flush=True)
print("done", flush=True)
time.sleep(600)
"""


def test_kill_9_mid_segment_keeps_every_complete_fragment(
    tmp_path: Path, stream_320: list[AccessUnit]
) -> None:
    raw = tmp_path / "camera.h264"
    raw.write_bytes(b"".join(au.data for au in stream_320))
    directory = tmp_path / "rec"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), str(raw)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    flushed = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            assert line.startswith("flushed="), line
            flushed = int(line.split("=")[1])
            if flushed >= 150:  # five GOPs in the file, the sixth being written
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    (path,) = segment_files(directory)
    # The file as the kill left it plays up to its last fragment.
    played = decoded_frames(path)
    assert played >= flushed
    # The next start repairs it (every top-level box complete), keeps all those frames,
    # records its real end, and goes on in a new segment.
    rec = Recorder("cam", directory, FAST)
    rec.start()
    assert rec.stats.repaired == 1
    assert repair(path).cut_bytes == 0
    assert decoded_frames(path) == played
    ((_, start, end, _, count),) = rows(directory)
    assert count == played
    assert end == pytest.approx(start + played * 1e6 / 30, abs=20)
    feed(rec, captured(stream_320[:60]))
    rec.close()
    assert len(segment_files(directory)) == 2
