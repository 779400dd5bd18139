"""Retention in the running recorder, and a full disk: injected ENOSPC and a real tiny
file system (a tmpfs mounted for the test; needs root, skipped otherwise)."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from edge.h264 import AccessUnit
from edge.record.files import disk_space
from edge.record.index import SegmentIndex
from edge.record.recorder import Recorder
from edge.record.repair import repair
from edge.record.settings import GB
from edge.sources.base import wall_us
from tests.edge.record.faults import Faults
from tests.edge.record.media import captured, decoded_frames, packets, wait_for
from tests.edge.record.test_recorder import FAST, feed, rows, segment_files

DAY_US = 86_400_000_000


def deleted(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    """(file, reason, protected) of every deletion logged, in order."""
    out = []
    for record in caplog.records:
        msg = record.getMessage()
        if msg.startswith("segment deleted"):
            fields = dict(part.split("=", 1) for part in msg.split()[2:])
            out.append((fields["file"], fields["reason"], fields["protected"]))
    return out


def test_budget_deletes_oldest_unprotected_first_then_protected(
    tmp_path: Path, stream_320: list[AccessUnit], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "edge.record")
    frames = captured(stream_320)  # 12 s → six 2 s segments of ~300 kB
    settings = dataclasses.replace(FAST, segment_s=2, max_gb=0.001)  # room for ~3
    rec = Recorder("cam", tmp_path, settings)
    rec.start()
    rec.protect(frames[75].capture_us, frames[80].capture_us)  # an event in segment 2
    feed(rec, frames)
    rec.close()
    names = [p.name for p in segment_files(tmp_path)]
    gone = deleted(caplog)
    assert gone
    assert all(reason == "budget" and prot == "False" for _, reason, prot in gone)
    every = sorted({f for f, _, _ in gone} | set(names))
    assert len(every) == 6
    assert every[1] in names  # the protected one stayed
    assert [f for f, _, _ in gone] == [n for n in every if n not in names]  # oldest first
    assert rec.health()["bytes_used"] == sum(r[3] for r in rows(tmp_path))
    # A smaller budget: nothing unprotected is left to go, so the protected one goes last.
    caplog.clear()
    rec = Recorder("cam", tmp_path, dataclasses.replace(settings, max_gb=0.0001))
    rec.start()
    wait_for(lambda: not segment_files(tmp_path), "every segment deleted")
    rec.close()
    order = deleted(caplog)
    assert order[-1] == (every[1], "budget", "True")
    assert all(prot == "False" for _, _, prot in order[:-1])


def test_age_keeps_event_footage_longer(
    tmp_path: Path, stream_320: list[AccessUnit], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "edge.record")
    keep_all = dataclasses.replace(FAST, segment_s=2, max_age_days=100, event_max_age_days=100)
    rec = Recorder("cam", tmp_path, keep_all)
    rec.start()
    eight_days_ago = captured(stream_320[:180], t0_us=wall_us() - 8 * DAY_US)
    rec.protect(eight_days_ago[70].capture_us, eight_days_ago[71].capture_us)
    feed(rec, eight_days_ago)
    rec.close()
    assert len(segment_files(tmp_path)) == 3
    # max_age_days = 7, event_max_age_days = 30: only the event's segment is left.
    rec = Recorder("cam", tmp_path, dataclasses.replace(FAST, segment_s=2))
    rec.start()
    wait_for(lambda: len(segment_files(tmp_path)) == 1, "old footage deleted")
    rec.close()
    assert [reason for _, reason, _ in deleted(caplog)] == ["age", "age"]
    ((_, start, _, _, _),) = rows(tmp_path)
    assert start == eight_days_ago[60].capture_us


def test_old_clips_go_by_age_and_count_in_the_budget(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    old, new = clips / "old-event.mp4", clips / "new-event.mp4"
    old.write_bytes(b"x" * 1000)
    new.write_bytes(b"y" * 2000)
    (clips / ".partial-event.1.partial.mp4").write_bytes(b"z" * 5000)  # being written
    forty_days = 40 * 86_400
    os.utime(old, (os.path.getmtime(old) - forty_days,) * 2)
    rec = Recorder("cam", tmp_path, FAST)
    rec.start()
    wait_for(lambda: not old.exists(), "the 40-day-old clip deleted")
    rec.close()
    assert new.exists()
    assert (clips / ".partial-event.1.partial.mp4").exists()
    assert rec.health()["bytes_used"] == 2000


def feed_loop(rec: Recorder, aus: Sequence[AccessUnit], seconds: float, t0_us: int) -> int:
    """Feed ``aus`` over and over (a GOP at a time, as a camera would) for ``seconds`` of
    capture time; the capture time after the last frame."""
    gop = next(i for i, au in enumerate(aus) if i and au.keyframe)
    t = t0_us
    end = t0_us + seconds * 1e6
    while t < end:
        for i in range(0, len(aus), gop):
            frames = captured(aus[i : i + gop], t0_us=t)
            feed(rec, frames)
            t = frames[-1].capture_us + 33_333
    return t


def test_injected_disk_full_pauses_logs_once_and_resumes(
    tmp_path: Path, stream_320: list[AccessUnit], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "edge.record")
    faults = Faults()
    rec = Recorder("cam", tmp_path, dataclasses.replace(FAST, segment_s=60), opener=faults.opener)
    rec.start()
    t = feed_loop(rec, stream_320[:90], 3, wall_us())
    faults.errno = errno.ENOSPC
    t = feed_loop(rec, stream_320[:90], 3, t)  # fails, and pauses
    deadline = time.monotonic() + 20
    while faults.failures < 2:  # frames keep coming: retries every retry_s fail again
        assert time.monotonic() < deadline, "no retry"
        t = feed_loop(rec, stream_320[:90], 1, t)
    health = rec.health()
    assert health["disk_full"] is True
    assert health["recording"] is False
    assert "disk full" in (health["last_error"] or "")
    faults.errno = None
    while not rec.health()["recording"]:
        t = feed_loop(rec, stream_320[:90], 1, t)
    t = feed_loop(rec, stream_320[:90], 2, t)
    rec.close()
    assert rec.health()["disk_full"] is False
    assert caplog.text.count("disk-full camera=cam free_bytes=") == 1
    assert "recording resumed camera=cam" in caplog.text
    first, second = segment_files(tmp_path)
    assert repair(first).cut_bytes == 0
    assert decoded_frames(first) >= 60
    assert packets(second)[0][2]
    assert decoded_frames(second) >= 60
    assert rec.stats.disk_full == 1


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs: a real file system that fills up."""
    mount = tmp_path / "card"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_the_reserve_keeps_a_real_card_from_filling(
    tiny_fs: Path, stream_640: list[AccessUnit]
) -> None:
    settings = dataclasses.replace(FAST, segment_s=2, min_free_gb=0.002)  # 2 MB of 8 MB
    rec = Recorder("cam", tiny_fs, settings)
    rec.start()
    low = GB
    t = wall_us()
    for _ in range(15):  # 60 s of 1.5 Mbit/s: ~11 MB, more than fits above the reserve
        t = feed_loop(rec, stream_640, 4, t)
        low = min(low, disk_space(tiny_fs)[0])
    rec.close()
    assert rec.stats.deleted > 0
    assert rec.stats.disk_full == 0
    assert low >= 2_000_000 - 400_000  # never below the reserve by more than a GOP or so
    files = segment_files(tiny_fs)
    assert files
    assert all(decoded_frames(f) == len(packets(f)) for f in files)
    assert rec.health()["disk_full"] is False


def test_a_really_full_card_is_survived(
    tiny_fs: Path, stream_640: list[AccessUnit], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "edge.record")
    settings = dataclasses.replace(FAST, segment_s=2, min_free_gb=0)  # no reserve at all
    rec = Recorder("cam", tiny_fs / "rec", settings)
    rec.start()
    t = feed_loop(rec, stream_640, 4, wall_us())  # two segments while there is room
    filler = tiny_fs / "someone-else.bin"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        out.write(b"\0" * (disk_space(tiny_fs)[0] - 600_000))  # leave ~600 kB
    deadline = time.monotonic() + 60
    while rec.stats.disk_full == 0 or not rec.health()["recording"]:
        assert time.monotonic() < deadline, "the disk never filled, or recording never resumed"
        t = feed_loop(rec, stream_640, 4, t)
    t = feed_loop(rec, stream_640, 4, t)
    rec.close()
    assert rec.stats.disk_full >= 1  # a real ENOSPC from the kernel
    assert caplog.text.count("disk-full camera=cam") == rec.stats.disk_full
    assert "recording resumed camera=cam" in caplog.text  # retention made room
    assert rec.stats.deleted > 0
    files = segment_files(tiny_fs / "rec")
    assert files
    for f in files:
        assert repair(f).cut_bytes == 0
        assert decoded_frames(f) == len(packets(f)) > 0
    assert isinstance(rec.health()["free_bytes"], int)


def test_protect_ranges_grow_with_the_event(tmp_path: Path, stream_320: list[AccessUnit]) -> None:
    rec = Recorder("cam", tmp_path, FAST)
    rec.start()
    frames = captured(stream_320[:150])
    start = frames[10].capture_us
    rec.protect(start, frames[20].capture_us)  # event start
    rec.protect(start, frames[40].capture_us)  # update
    rec.protect(start, frames[30].capture_us)  # a late, older message does not shrink it
    rec.protect(frames[140].capture_us, frames[140].capture_us)  # empty: one µs
    feed(rec, frames)
    rec.close()
    index = SegmentIndex(tmp_path / "segments" / "index.sqlite3")
    assert index.protections() == [
        (start, frames[40].capture_us),
        (frames[140].capture_us, frames[140].capture_us + 1),
    ]
    assert [r.protected for r in index.segments()] == [True, True]  # 0–4 s and 4–5 s
    index.close()


def test_recording_off_still_runs_retention(tmp_path: Path, stream_320: list[AccessUnit]) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    old = clips / "old-event.mp4"
    old.write_bytes(b"x" * 1000)
    os.utime(old, (os.path.getmtime(old) - 40 * 86_400,) * 2)
    rec = Recorder("cam", tmp_path, dataclasses.replace(FAST, enabled=False))
    rec.start()
    for frame in captured(stream_320[:60]):
        rec.on_frame(frame)
    wait_for(lambda: not old.exists(), "the old clip deleted")
    rec.close()
    assert segment_files(tmp_path) == []
    assert rec.stats.handled == 0
    assert rec.health()["recording"] is False
