"""LiveKitPublisher settings that do not need a live SFU (the live path is in tests/integration)."""

from __future__ import annotations

import pytest

from edge.publisher import LiveKitPublisher
from edge.sources.file import FileSource
from edge.sources.picamera2 import Picamera2Source
from edge.sources.rtsp import RtspSource
from edge.sources.synthetic import SyntheticSource
from edge.uplink import LiveKitToken


async def _no_token() -> LiveKitToken:
    raise AssertionError("not connected in this test")


@pytest.mark.parametrize(
    ("can_force", "poll_s"),
    [
        (RtspSource.can_force_keyframe, LiveKitPublisher.FEEDBACK_POLL_IDLE_S),
        (FileSource.can_force_keyframe, LiveKitPublisher.FEEDBACK_POLL_IDLE_S),
        (SyntheticSource.can_force_keyframe, LiveKitPublisher.FEEDBACK_POLL_S),
        (Picamera2Source.can_force_keyframe, LiveKitPublisher.FEEDBACK_POLL_S),
    ],
)
def test_keyframe_requests_are_read_often_only_where_they_can_be_served(
    can_force: bool, poll_s: float
) -> None:
    publisher = LiveKitPublisher("cam", _no_token, lambda: None, can_force_keyframe=can_force)
    assert publisher._feedback_poll_s == poll_s
    assert LiveKitPublisher.FEEDBACK_POLL_S < LiveKitPublisher.FEEDBACK_POLL_IDLE_S
