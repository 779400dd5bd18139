"""Each source kind through the one Source interface, with real media and processes."""

from __future__ import annotations

import itertools
import shutil
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from edge.h264 import split_nals
from edge.sources import create_source
from edge.sources.base import CapturedFrame, FatalSourceError, Pacer, SensorClock, SourceError
from edge.sources.demux import redact
from edge.sources.file import FileSource
from edge.sources.picamera2 import EncodedFrameAdapter, Picamera2Source
from edge.sources.rpicam import RpicamSource
from edge.sources.rtsp import RtspSource
from edge.sources.synthetic import SyntheticSource
from scripts.media import make_h264_file


def collect(source: object, count: int, timeout: float = 20.0) -> list[CapturedFrame]:
    """Run ``source`` in a thread until it produced ``count`` frames (or ended)."""
    frames: list[CapturedFrame] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def sink(frame: CapturedFrame) -> None:
        frames.append(frame)
        if len(frames) >= count:
            stop.set()

    def target() -> None:
        try:
            source.run(sink, stop)  # type: ignore[attr-defined]
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "source did not stop"
    if errors and not frames:
        raise errors[0]
    return frames


def nal_types(frame: CapturedFrame) -> set[int]:
    return {n[0] & 0x1F for n in split_nals(frame.au.data)}


def test_synthetic_encodes_baseline_at_the_configured_gop() -> None:
    src = SyntheticSource(name="s", width=320, height=180, fps=30, gop_s=0.5)
    frames = collect(src, 40)
    assert len(frames) == 40
    assert {(f.au.width, f.au.height) for f in frames} == {(320, 180)}
    assert [f.index for f in frames if f.au.keyframe] == [0, 15, 30]
    assert all({7, 8} <= nal_types(f) for f in frames if f.au.keyframe)
    assert frames[0].au.sps.profile_idc == 66  # baseline, as a Pi encoder is configured
    caps = [f.capture_us for f in frames]
    assert caps == sorted(caps)
    # Paced in real time: 40 frames at 30 fps span ≈ 1.3 s.
    assert 1.0 < (caps[-1] - caps[0]) / 1e6 < 2.5


def test_synthetic_honours_keyframe_requests() -> None:
    src = SyntheticSource(name="s", width=160, height=120, fps=30, gop_s=10)
    frames: list[CapturedFrame] = []
    stop = threading.Event()

    def sink(frame: CapturedFrame) -> None:
        frames.append(frame)
        if len(frames) == 5:
            src.request_keyframe()
        if len(frames) >= 12:
            stop.set()

    src.run(sink, stop)
    keyframes = [f.index for f in frames if f.au.keyframe]
    assert keyframes[0] == 0
    assert len(keyframes) == 2
    assert 5 <= keyframes[1] <= 7


def test_synthetic_picture_changes_every_frame() -> None:
    frames = collect(SyntheticSource(name="s", width=160, height=120, fps=30), 10)
    codec = av.CodecContext.create("h264", "r")
    lumas = []
    for f in frames:
        for pkt in codec.parse(f.au.data):
            lumas += [d.to_ndarray(format="gray").astype(int) for d in codec.decode(pkt)]
    for pkt in codec.parse(b""):
        lumas += [d.to_ndarray(format="gray").astype(int) for d in codec.decode(pkt)]
    assert len(lumas) >= 9
    assert all(np.abs(a - b).mean() > 1 for a, b in itertools.pairwise(lumas))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".h264"])
def test_file_source_emits_every_access_unit_once_per_pass(tmp_path: Path, suffix: str) -> None:
    clip = make_h264_file(tmp_path / f"c{suffix}", width=160, height=96, fps=60, seconds=1, gop=20)
    frames = collect(FileSource(name="f", path=clip, loop=False), 1000)
    assert len(frames) == 60
    assert [f.index for f in frames if f.au.keyframe] == [0, 20, 40]
    assert all({7, 8} <= nal_types(f) for f in frames if f.au.keyframe)
    assert {(f.au.width, f.au.height) for f in frames} == {(160, 96)}
    assert (frames[-1].capture_us - frames[0].capture_us) / 1e6 == pytest.approx(59 / 60, abs=0.3)


def test_file_source_loops(tmp_path: Path) -> None:
    clip = make_h264_file(tmp_path / "c.mp4", width=160, height=96, fps=60, seconds=0.5, gop=30)
    frames = collect(FileSource(name="f", path=clip, loop=True), 75)
    assert [f.index for f in frames] == list(range(75))
    assert frames[30].au.keyframe
    assert frames[60].au.keyframe


def test_file_source_refuses_missing_garbage_and_h265(tmp_path: Path) -> None:
    with pytest.raises(FatalSourceError, match="does not exist"):
        collect(FileSource(name="f", path=tmp_path / "nope.mp4"), 1)
    garbage = tmp_path / "g.h264"
    garbage.write_bytes(bytes(range(256)) * 500)
    with pytest.raises(FatalSourceError, match=r"no decodable H\.264"):
        collect(FileSource(name="f", path=garbage, loop=False), 1)
    hevc = tmp_path / "h.mkv"
    with av.open(str(hevc), "w") as out:
        s = out.add_stream("libx265", rate=10)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        s.options = {"x265-params": "log-level=error"}
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 40, np.uint8), format="rgb24")
            f = f.reformat(format="yuv420p")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    with pytest.raises(FatalSourceError, match=r"H\.264 substream"):
        collect(FileSource(name="f", path=hevc), 1)


FAKE_RPICAM = r"""
import os, random, sys, time
data = open(sys.argv[1], "rb").read()
rng = random.Random(3)
i = 0
while i < len(data):
    n = rng.randint(1, 9000)   # rpicam-vid's writes do not line up with NAL units
    os.write(1, data[i:i + n]); i += n
    time.sleep(0.001)
if len(sys.argv) > 2:
    time.sleep(60)             # a camera that keeps the pipe open
print("camera went away", file=sys.stderr)
sys.exit(3)
"""


def test_rpicam_pipe_is_split_into_access_units(tmp_path: Path) -> None:
    clip = make_h264_file(tmp_path / "pi.h264", width=320, height=240, fps=30, seconds=1, gop=10)
    script = tmp_path / "fake_rpicam.py"
    script.write_text(FAKE_RPICAM)
    src = RpicamSource(name="pi", command=[sys.executable, str(script), str(clip)])
    frames: list[CapturedFrame] = []
    with pytest.raises(SourceError, match="exited with code 3: camera went away"):
        src.run(frames.append, threading.Event())
    assert len(frames) == 30
    assert [f.index for f in frames if f.au.keyframe] == [0, 10, 20]
    assert {(f.au.width, f.au.height) for f in frames} == {(320, 240)}


def test_rpicam_stops_promptly_while_the_camera_is_streaming(tmp_path: Path) -> None:
    clip = make_h264_file(tmp_path / "pi.h264", width=160, height=120, fps=30, seconds=0.5)
    script = tmp_path / "fake_rpicam.py"
    script.write_text(FAKE_RPICAM)
    src = RpicamSource(name="pi", command=[sys.executable, str(script), str(clip), "hang"])
    started = time.monotonic()
    frames = collect(src, 10, timeout=15)
    assert len(frames) == 10
    assert time.monotonic() - started < 10


def test_rpicam_command_line_asks_for_what_passthrough_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = RpicamSource(name="pi", width=1920, height=1080, fps=30, gop_s=2, command=None)
    if shutil.which("rpicam-vid") is None and shutil.which("libcamera-vid") is None:
        # Not a Pi: the error names the fix.
        with pytest.raises(FatalSourceError, match="apt install rpicam-apps"):
            src.command()
        monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    cmd = src.command()
    for flag in ("--inline", "--flush", "--output"):
        assert flag in cmd
    assert cmd[cmd.index("--intra") + 1] == "60"


def test_picamera2_encoder_output_becomes_frames(tmp_path: Path) -> None:
    """Recorded encoder output, one frame per callback as picamera2's H264Encoder delivers it."""
    clip = make_h264_file(tmp_path / "enc.mp4", width=320, height=240, fps=30, seconds=1, gop=15)
    frames: list[CapturedFrame] = []
    adapter = EncodedFrameAdapter("picam", frames.append)
    from edge.sources.demux import annexb_packets, open_h264

    container, stream = open_h264(str(clip), name="picam")
    for i, packet in enumerate(annexb_packets(container, stream)):
        # Replayed faster than real time, so the sensor clock is scaled down to 10 µs per
        # frame to keep every frame arriving after it was taken, as on a real camera.
        adapter.on_frame(packet.data, keyframe=i % 15 == 0, timestamp_us=i * 10)
    container.close()
    assert len(frames) == 30
    assert [f.index for f in frames if f.au.keyframe] == [0, 15]
    steps = {b.capture_us - a.capture_us for a, b in itertools.pairwise(frames)}
    assert steps == {10}, "capture times follow the sensor clock"


def test_picamera2_without_the_library_says_how_to_install_it() -> None:
    with pytest.raises(FatalSourceError, match="python3-picamera2"):
        Picamera2Source(name="p").run(lambda f: None, threading.Event())


def test_sensor_clock_anchors_on_the_fastest_frame() -> None:
    clock = SensorClock()
    assert clock.capture_us(1000, arrival_us=10_000) == 10_000
    # A frame that arrived late does not move later frames.
    assert clock.capture_us(2000, arrival_us=50_000) == 11_000
    # A faster one tightens the estimate.
    assert clock.capture_us(3000, arrival_us=11_500) == 11_500


def test_pacer_returns_at_once_when_stopped() -> None:
    stop = threading.Event()
    pacer = Pacer(stop)
    assert pacer.wait_until(0.0)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert pacer.wait_until(30.0) is False
    assert time.monotonic() - started < 2


def test_rtsp_options_and_errors() -> None:
    with pytest.raises(ValueError, match="rtsp://"):
        RtspSource(name="ip", url="http://cam/stream")
    src = RtspSource(name="ip", url="rtsp://admin:hunter2@127.0.0.1:9/stream", timeout_s=2)
    assert src.options()["rtsp_transport"] == "tcp"
    assert redact(src.url) == "rtsp://admin:***@127.0.0.1:9/stream"
    with pytest.raises(SourceError) as info:
        src.run(lambda f: None, threading.Event())
    assert "hunter2" not in str(info.value)


def test_create_source_names_bad_kinds_and_options() -> None:
    with pytest.raises(ValueError, match="unknown source kind 'webcam'"):
        create_source("c", "webcam", {})
    with pytest.raises(ValueError, match="bad option for source 'synthetic'"):
        create_source("c", "synthetic", {"colour": "red"})
    assert create_source("c", "synthetic", {"width": 320, "height": 240}).kind == "synthetic"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"width": 321, "height": 240}, "size must be even"),
        ({"width": 32, "height": 32}, "≥ 64"),
        ({"fps": 0}, "fps must be 1..120"),
        ({"bitrate_kbps": 10}, "bitrate_kbps must be"),
        ({"gop_s": 60}, "gop_s must be"),
    ],
)
@pytest.mark.parametrize("kind", ["synthetic", "rpicam", "picamera2"])
def test_encoder_settings_are_checked_for_every_encoding_source(
    kind: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=f"camera c: source '{kind}': .*{message}"):
        create_source("c", kind, options)
