"""PionPublisher's side of the pipe, without LiveKit (the live path: tests/integration)."""

from __future__ import annotations

import io
import queue
import struct
from pathlib import Path

import pytest

from edge.h264 import AccessUnit
from edge.pion_publisher import (
    HEADER,
    PionPublisher,
    PionUnavailable,
    bundled_name,
    pionpub_binary,
)
from edge.sources.base import CapturedFrame
from edge.uplink import LiveKitToken


async def _no_token() -> LiveKitToken:
    raise AssertionError("not connected in this test")


def _frame(index: int, keyframe: bool, data: bytes = b"\x00\x00\x00\x01\x65") -> CapturedFrame:
    au = AccessUnit(
        data=data,
        keyframe=keyframe,
        nal_types=(5 if keyframe else 1,),
        width=640,
        height=360,
        sps=None,  # type: ignore[arg-type]  # the publisher never reads it
    )
    return CapturedFrame(au=au, capture_us=1_700_000_000_000_000 + index, index=index)


def _publisher() -> PionPublisher:
    return PionPublisher("cam", _no_token, lambda: None, binary=Path("/nonexistent"))


def test_frames_wait_for_a_session_and_then_for_a_keyframe() -> None:
    pub = _publisher()
    pub.on_frame(_frame(0, keyframe=True))
    assert pub.stats.frames_dropped == 1  # no pionpub running yet
    frames: queue.Queue[CapturedFrame | None] = queue.Queue(3)
    pub._queue = frames
    pub.on_frame(_frame(1, keyframe=False))  # a delta cannot start a picture
    pub.on_frame(_frame(2, keyframe=True))
    pub.on_frame(_frame(3, keyframe=False))
    assert [f.index for f in list(frames.queue) if f] == [2, 3]
    assert pub.stats.frames_dropped == 2


def test_a_stuck_pionpub_drops_frames_up_to_the_next_keyframe() -> None:
    pub = _publisher()
    frames: queue.Queue[CapturedFrame | None] = queue.Queue(2)
    pub._queue = frames
    pub._await_keyframe = False
    for i in range(4):  # queue holds 2: frames 2 and 3 are dropped
        pub.on_frame(_frame(i, keyframe=False))
    frames.get_nowait()
    frames.get_nowait()
    pub.on_frame(_frame(4, keyframe=False))  # still dropped: the picture broke at 2
    pub.on_frame(_frame(5, keyframe=True))
    assert [f.index for f in list(frames.queue) if f] == [5]
    assert pub.stats.frames_dropped == 3


def test_writer_frames_each_access_unit_for_pionpub() -> None:
    pub = _publisher()
    frames: queue.Queue[CapturedFrame | None] = queue.Queue()
    frames.put(_frame(7, keyframe=True, data=b"\x00\x00\x00\x01\x65abc"))
    frames.put(None)
    out = io.BytesIO()
    out.close = lambda: None  # type: ignore[method-assign]  # keep it readable after
    pub._write(frames, out)
    raw = out.getvalue()
    length, capture_us, frame_id = HEADER.unpack(raw[: HEADER.size])
    assert (length, capture_us, frame_id) == (8, 1_700_000_000_000_007, 7)
    assert raw[HEADER.size :] == b"\x00\x00\x00\x01\x65abc"
    assert HEADER.size == struct.calcsize(">IQI") == 16  # edge/pionpub/main.go headerSize
    assert (pub.stats.frames_sent, pub.stats.bytes_sent) == (1, 8)


def test_the_program_is_found_or_the_error_says_how_to_build_it(tmp_path: Path) -> None:
    program = tmp_path / "pionpub"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert pionpub_binary({"LIVECAM_PIONPUB_BIN": str(program), "PATH": ""}) == program
    assert pionpub_binary({"PATH": str(tmp_path)}) == program
    with pytest.raises(PionUnavailable, match=r"setup-pionpub\.sh"):
        pionpub_binary(
            {"LIVECAM_PIONPUB_BIN": str(tmp_path / "nope"), "PATH": "/nonexistent"},
            bundle_bin=tmp_path / "no-bundle",
        )


def test_the_edge_bundle_s_build_for_this_machine_is_found(tmp_path: Path) -> None:
    name = bundled_name()
    assert name is not None, "this machine's architecture has a pionpub build"
    program = tmp_path / "bin" / name
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert pionpub_binary({"PATH": ""}, bundle_bin=program.parent) == program
    # Builds for other machines in the same directory are not taken.
    program.rename(program.with_name("pionpub-linux-riscv64"))
    with pytest.raises(PionUnavailable):
        pionpub_binary({"PATH": ""}, bundle_bin=program.parent)


def test_every_pi_has_a_build() -> None:
    assert bundled_name("aarch64") == "pionpub-linux-arm64"  # 64-bit Raspberry Pi OS
    assert bundled_name("armv7l") == "pionpub-linux-armv6"  # 32-bit, Pi 2/3/4
    assert bundled_name("armv6l") == "pionpub-linux-armv6"  # Pi Zero, Pi 1
    assert bundled_name("x86_64") == "pionpub-linux-amd64"
    assert bundled_name("riscv64") is None
