"""Camera → edge → real livekit-server → real livekit.rtc subscriber that decodes, through
each edge publisher (libwebrtc, and pion: edge/pionpub)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scripts.devstack import Stack
from scripts.media import decode_luma, make_h264_file, stream_stats
from tests.integration.conftest import (
    EdgeFactory,
    assert_frames_carry_metadata,
    picture_changes,
    wait_status,
    watch,
)

pytestmark = pytest.mark.live


@pytest.mark.parametrize("publisher", ["libwebrtc", "pion"])
async def test_synthetic_camera_reaches_a_subscriber(
    stack: Stack, start_cameras: EdgeFactory, publisher: str
) -> None:
    (cam,), edge = start_cameras(
        {"kind": "synthetic", "width": 640, "height": 360, "fps": 30, "bitrate_kbps": 800},
        publisher=publisher,
    )
    viewer = await watch(stack, cam)
    try:
        first = await viewer.wait_frames(30, timeout=60)
        assert viewer.mime_type == "video/H264"
        assert viewer.publisher_identity == f"edge-{cam}"
        assert {(f.width, f.height) for f in first} == {(640, 360)}
        # Frames keep arriving at the camera's rate, and the picture moves.
        later = await viewer.wait_frames(60, timeout=10)
        assert picture_changes(later) >= 50
        # Capture time and frame id (LiveKit's packet trailer) reach the subscriber intact.
        assert_frames_carry_metadata(later)
    finally:
        await viewer.close()
    status = wait_status(stack, cam, lambda s: s["online"] and s["heartbeat"] is not None)
    assert status["state"] == "publishing"
    assert status["heartbeat"]["width"] == 640
    assert status["heartbeat"]["fps"] > 20
    assert f"publisher={publisher}" in edge.log_path.read_text()


async def test_file_source_is_passed_through_bit_exact(
    stack: Stack, start_cameras: EdgeFactory, tmp_path: Path
) -> None:
    """The subscriber decodes exactly the file's pictures, at the file's bitrate and GOP:
    no encoder sat in between."""
    clip = make_h264_file(
        tmp_path / "clip.mp4",
        width=640,
        height=360,
        fps=30,
        seconds=4,
        gop=60,
        bitrate_kbps=1500,
    )
    n_frames, n_key, file_kbps = stream_stats(clip)
    reference = decode_luma(clip)
    assert len(reference) == n_frames == 120
    assert n_key == 2

    (cam,), _edge = start_cameras({"kind": "file", "path": str(clip)})
    viewer = await watch(stack, cam, keep_luma_ids=set(range(0, 600, 7)))
    try:
        await viewer.wait_frames(1, timeout=60)
        start_stats = await viewer.inbound_stats()
        frames = await viewer.wait_frames(180, timeout=20)
        end_stats = await viewer.inbound_stats()
    finally:
        await viewer.close()

    assert {(f.width, f.height) for f in frames} == {(640, 360)}
    compared = 0
    for frame_id, luma in viewer.luma.items():
        expected = reference[frame_id % n_frames]
        assert np.array_equal(luma, expected), f"frame {frame_id} differs from the file"
        compared += 1
    assert compared >= 10

    seconds = (frames[-1].arrival_us - frames[0].arrival_us) / 1e6
    keyframes = end_stats.key_frames_decoded - start_stats.key_frames_decoded
    kbps = (end_stats.bytes_received - start_stats.bytes_received) * 8 / 1000 / seconds
    # GOP of the file: one IDR per 2 s (± one forced by a late join).
    assert abs(keyframes - seconds / 2) <= 1.5, (keyframes, seconds)
    assert 0.75 * file_kbps < kbps < 1.3 * file_kbps, (kbps, file_kbps)


async def test_raw_h264_file_goes_through_the_annexb_reader(
    stack: Stack, start_cameras: EdgeFactory, tmp_path: Path
) -> None:
    clip = make_h264_file(tmp_path / "clip.h264", width=480, height=272, fps=25, seconds=2, gop=25)
    (cam,), _edge = start_cameras({"kind": "file", "path": str(clip), "fps": 25})
    viewer = await watch(stack, cam)
    try:
        frames = await viewer.wait_frames(60, timeout=60)
    finally:
        await viewer.close()
    assert {(f.width, f.height) for f in frames} == {(480, 272)}
    assert picture_changes(frames) >= 40


async def test_bad_streams_are_logged_and_skipped(
    stack: Stack, start_cameras: EdgeFactory, tmp_path: Path
) -> None:
    """Garbage, a truncated stream and H.265 on three cameras: the process lives, the good
    camera streams, the truncated one plays what it has, the others say what is wrong."""
    garbage = tmp_path / "garbage.h264"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 300_000, np.uint8).tobytes())
    whole = make_h264_file(tmp_path / "whole.h264", width=320, height=240, seconds=2, gop=15)
    truncated = tmp_path / "truncated.h264"
    data = whole.read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3 + 17])  # cut inside a NAL unit
    hevc = tmp_path / "hevc.mkv"
    _make_hevc(hevc)

    (good, cut, _bad, _h265), edge = start_cameras(
        {"kind": "synthetic", "width": 320, "height": 240, "fps": 15},
        {"kind": "file", "path": str(truncated)},
        {"kind": "file", "path": str(garbage)},
        {"kind": "file", "path": str(hevc)},
    )
    for cam in (good, cut):
        viewer = await watch(stack, cam)
        try:
            frames = await viewer.wait_frames(40, timeout=60)
            assert {(f.width, f.height) for f in frames} == {(320, 240)}
        finally:
            await viewer.close()
    assert edge.running
    log = edge.log_path.read_text()
    assert "holds no decodable H.264" in log
    assert "is H.265" in log
    assert "H.264 substream" in log
    assert "Traceback" not in log


def _make_hevc(path: Path) -> None:
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream("libx265", rate=15)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.options = {"x265-params": "log-level=error"}
        for i in range(15):
            f = av.VideoFrame.from_ndarray(
                np.full((240, 320, 3), i * 10, np.uint8), format="rgb24"
            ).reformat(format="yuv420p")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
