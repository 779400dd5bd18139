"""SourceClock: a live input's own timestamps, mapped onto the wall clock."""

from __future__ import annotations

import itertools
import logging

import pytest

from edge.sources.clock import SourceClock

T0 = 1_700_000_000_000_000  # wall µs
FRAME_US = 33_333


def test_bursty_arrivals_keep_the_camera_cadence() -> None:
    # Frames every 33.3 ms by the camera's clock, delivered in pairs after 70 ms pauses
    # (what TCP and a camera's output buffer do): stamps keep the 33.3 ms cadence.
    clock = SourceClock("cam")
    arrivals = [T0, T0 + 67_000, T0 + 68_000, T0 + 134_000, T0 + 135_000, T0 + 166_700]
    stamps = [clock.stamp(i * FRAME_US / 1e6, arrival) for i, arrival in enumerate(arrivals)]
    steps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(abs(step - FRAME_US) <= 100 for step in steps), steps  # creep ≤ 0.1 %
    assert all(s <= a for s, a in zip(stamps, arrivals, strict=True))


def test_an_earlier_arrival_moves_the_mapping_earlier() -> None:
    # The first frame was delayed 20 ms; the second arrives on time: from then on stamps
    # follow the least delayed arrival, never later than any arrival.
    clock = SourceClock("cam")
    first = clock.stamp(0.0, T0 + 20_000)
    second = clock.stamp(FRAME_US / 1e6, T0 + FRAME_US)
    assert first == T0 + 20_000
    assert second == T0 + FRAME_US
    late = clock.stamp(2 * FRAME_US / 1e6, T0 + 2 * FRAME_US + 40_000)
    assert abs(late - (T0 + 2 * FRAME_US)) <= 100


def test_follows_a_camera_clock_slower_than_ours() -> None:
    # The camera's second lasts 1.0002 of ours (200 ppm): arrivals drift later; stamps
    # follow within the allowed creep instead of falling ever further behind.
    clock = SourceClock("cam")
    lag = []
    for i in range(30 * 120):  # two minutes
        pts_s = i * FRAME_US / 1e6
        arrival = T0 + round(i * FRAME_US * 1.0002)
        lag.append(arrival - clock.stamp(pts_s, arrival))
    assert max(lag[-300:]) < 2_000  # µs, not the 24 ms the drift amounts to
    assert clock.resyncs == 0


def test_timestamps_going_back_restart_the_mapping(caplog: pytest.LogCaptureFixture) -> None:
    clock = SourceClock("cam")
    clock.stamp(10.0, T0)
    before = clock.stamp(10.0 + FRAME_US / 1e6, T0 + FRAME_US)
    with caplog.at_level(logging.INFO, logger="edge.sources.clock"):
        after = clock.stamp(0.0, T0 + 2 * FRAME_US)  # the camera restarted its clock
    assert after == T0 + 2 * FRAME_US
    assert after > before
    assert clock.resyncs == 1
    assert "resync camera=cam" in caplog.text


def test_a_stall_far_behind_arrival_resyncs() -> None:
    # The camera stopped for 3 s and then sent its backlog with old timestamps: stamps
    # jump to the arrival rather than lag it by seconds.
    clock = SourceClock("cam")
    clock.stamp(0.0, T0)
    stamp = clock.stamp(FRAME_US / 1e6, T0 + 3_000_000)
    assert stamp == T0 + 3_000_000
    assert clock.resyncs == 1


def test_no_timestamp_means_arrival_time_and_stamps_always_increase() -> None:
    clock = SourceClock("cam")
    assert clock.stamp(None, T0) == T0
    assert clock.stamp(None, T0) == T0 + 1  # same arrival: still strictly increasing
    assert clock.stamp(None, T0 - 5_000) == T0 + 2  # wall clock stepped back
