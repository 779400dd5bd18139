"""The fragmented MP4 writer and the repair of files cut short: real H.264, decoded back."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from edge.h264 import AccessUnit
from edge.record.files import SyncedFile
from edge.record.fmp4 import Fmp4Writer
from edge.record.repair import media_span, repair, top_level_boxes
from edge.sources.base import CapturedFrame
from tests.edge.record.media import DATA, access_units, captured, decoded_frames, packets


def write_file(path: Path, frames: list[CapturedFrame]) -> Fmp4Writer:
    writer = Fmp4Writer(SyncedFile(path, fsync_s=0.0), frames[0])
    for frame in frames[1:]:
        writer.write(frame)
    writer.close()
    return writer


def test_codec_copy_decodes_every_frame_with_capture_timing(
    tmp_path: Path, stream_320: list[AccessUnit]
) -> None:
    frames = captured(stream_320[:90], t0_us=1_000_000)
    writer = write_file(tmp_path / "a.mp4", frames)
    assert (writer.frames, writer.frames_flushed) == (90, 90)
    assert writer.end_us == pytest.approx(1_000_000 + 3_000_000, abs=2)  # 90 frames, 30 fps
    got = packets(tmp_path / "a.mp4")
    assert len(got) == 90
    assert [p[2] for p in got] == [i % 30 == 0 for i in range(90)]
    assert all(abs(p[0] - i * 1e6 / 30) <= 12 for i, p in enumerate(got))  # 90 kHz ticks
    assert decoded_frames(tmp_path / "a.mp4") == 90
    boxes, size = top_level_boxes(tmp_path / "a.mp4")
    assert [b.type for b in boxes[:2]] == [b"ftyp", b"moov"]
    assert [b.type for b in boxes].count(b"moof") == 3  # one fragment per GOP
    assert sum(b.size for b in boxes) == size == writer.bytes
    # The samples are the camera's bytes, length-prefixed instead of start codes.
    assert (tmp_path / "a.mp4").read_bytes().count(stream_320[31].data[-200:]) == 1


def test_1080p_fixture_stream(tmp_path: Path) -> None:
    aus = access_units(DATA / "main_1920x1080.h264")
    write_file(tmp_path / "hd.mp4", captured(aus))
    assert decoded_frames(tmp_path / "hd.mp4") == len(aus)
    span = media_span(tmp_path / "hd.mp4")
    assert (span.frames, span.keyframes) == (len(aus), sum(a.keyframe for a in aus))


def test_timestamps_are_forced_to_increase(tmp_path: Path, stream_320: list[AccessUnit]) -> None:
    frames = captured(stream_320[:30], t0_us=5_000_000)
    # The wall clock steps back 2 s after frame 10, and stands still for frame 20.
    skewed = [
        CapturedFrame(f.au, f.capture_us - (2_000_000 if i > 10 else 0), f.index)
        for i, f in enumerate(frames)
    ]
    skewed[20] = CapturedFrame(skewed[20].au, skewed[19].capture_us, 20)
    write_file(tmp_path / "s.mp4", skewed)
    got = packets(tmp_path / "s.mp4")
    assert len(got) == 30
    assert all(b[0] > a[0] for a, b in itertools.pairwise(got))
    assert all(p[1] > 0 for p in got)
    assert decoded_frames(tmp_path / "s.mp4") == 30


def test_must_start_with_a_keyframe(tmp_path: Path, stream_320: list[AccessUnit]) -> None:
    with pytest.raises(ValueError, match="keyframe"):
        Fmp4Writer(SyncedFile(tmp_path / "x.mp4", 0.0), captured(stream_320[1:2])[0])


@pytest.fixture
def whole(tmp_path: Path, stream_320: list[AccessUnit]) -> Path:
    path = tmp_path / "whole.mp4"
    write_file(path, captured(stream_320[:150]))  # 5 GOPs
    return path


@pytest.mark.parametrize("cut", [0.93, 0.71, 0.52, 0.35])
def test_repair_cuts_back_to_the_last_complete_fragment(
    tmp_path: Path, whole: Path, cut: float
) -> None:
    data = whole.read_bytes()
    boxes, _ = top_level_boxes(whole)
    path = tmp_path / "cut.mp4"
    at = int(len(data) * cut)
    path.write_bytes(data[:at])
    complete = [b for b in boxes if b.type == b"mdat" and b.offset + b.size <= at]
    result = repair(path)
    assert result.playable
    assert result.fragments == len(complete)
    assert result.size == complete[-1].offset + complete[-1].size == path.stat().st_size
    assert result.cut_bytes == at - result.size
    # Every complete fragment still decodes, nothing more, and the file ends cleanly.
    assert decoded_frames(path) == 30 * len(complete)
    assert media_span(path).duration_us == pytest.approx(len(complete) * 1e6, abs=100)
    assert repair(path).cut_bytes == 0  # repairing twice changes nothing


def test_repair_drops_a_moof_without_its_mdat_and_garbage(tmp_path: Path, whole: Path) -> None:
    boxes, _ = top_level_boxes(whole)
    second_mdat = [b for b in boxes if b.type == b"mdat"][1]
    data = whole.read_bytes()
    path = tmp_path / "g.mp4"
    # Two fragments, then the third fragment's moof alone, then junk.
    third_moof = next(b for b in boxes if b.type == b"moof" and b.offset > second_mdat.offset)
    path.write_bytes(data[: third_moof.offset + third_moof.size] + b"\x00\x00\x10\x00junkjunkjunk")
    result = repair(path)
    assert (result.playable, result.fragments) == (True, 2)
    assert path.stat().st_size == second_mdat.offset + second_mdat.size
    assert decoded_frames(path) == 60


def test_header_only_is_not_playable(tmp_path: Path, whole: Path) -> None:
    boxes, _ = top_level_boxes(whole)
    moov = next(b for b in boxes if b.type == b"moov")
    path = tmp_path / "h.mp4"
    path.write_bytes(whole.read_bytes()[: moov.offset + moov.size + 100])
    assert not repair(path).playable
    shutil.copy(whole, path)
    path.write_bytes(b"")
    assert repair(path) == repair(path)  # an empty file is handled, not an error
    assert not repair(path).playable
