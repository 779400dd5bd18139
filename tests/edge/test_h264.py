"""Tests of edge/h264.py against real x264 streams (tests/edge/data, see make_fixtures.py),
PyAV's decoder as the reference, hand-built SPSs and fuzzing."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import h264
from edge.h264 import (
    AccessUnit,
    AccessUnitReader,
    H264Error,
    NalType,
    SpsInfo,
    parse_sps,
    split_nals,
)

DATA = Path(__file__).parent / "data"
SC = b"\x00\x00\x00\x01"
FUZZ = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Expect:
    width: int
    height: int
    fps: float
    profile: int
    aus: int
    keyframes: int


FIXTURES = {
    "baseline_320x240_aud.h264": Expect(320, 240, 30.0, 66, 60, 2),
    "main_1920x1080.h264": Expect(1920, 1080, 30.0, 77, 6, 2),
    "slices4_640x360.h264": Expect(640, 360, 30.0, 77, 30, 3),
    "high_cqm_352x288_25fps.h264": Expect(352, 288, 25.0, 100, 25, 3),
    "params_once_320x240.h264": Expect(320, 240, 30.0, 66, 30, 3),
    "interlaced_720x576.h264": Expect(720, 576, 25.0, 100, 8, 2),
    "high_gray_161x121.h264": Expect(161, 121, 25.0, 100, 5, 1),
    "high422_10bit_322x242.h264": Expect(322, 242, 25.0, 122, 5, 1),
}
# Fixtures whose every keyframe AU carries SPS and PPS (the reader passes them unchanged).
REPEATED = [n for n in FIXTURES if n != "params_once_320x240.h264"]
BASELINE = "baseline_320x240_aud.h264"


# ------------------------------------------------------------------------------- helpers


@cache
def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


@cache
def pyav_file_frames(name: str) -> int:
    """Frames PyAV's own demuxer + decoder get out of the fixture file."""
    with av.open(str(DATA / name), format="h264") as container:
        return sum(1 for _ in container.decode(video=0))


def decode(data: bytes) -> list[tuple[int, int]]:
    """Decodes an Annex-B buffer with PyAV's parser + decoder; (width, height) per frame."""
    ctx = av.CodecContext.create("h264", "r")
    sizes = []
    for packet in [*ctx.parse(data), *ctx.parse(None)]:
        sizes += [(f.width, f.height) for f in ctx.decode(packet)]
    sizes += [(f.width, f.height) for f in ctx.decode(None)]
    return sizes


def read_all(data: bytes, chunks: Iterator[int] | None = None) -> list[AccessUnit]:
    return run(AccessUnitReader(), data, chunks)


def run(
    reader: AccessUnitReader, data: bytes, chunks: Iterator[int] | None = None
) -> list[AccessUnit]:
    out: list[AccessUnit] = []
    if chunks is None:
        out += reader.feed(data)
    else:
        pos = 0
        while pos < len(data):
            n = next(chunks)
            out += reader.feed(data[pos : pos + n])
            pos += n
    return out + reader.flush()


@cache
def full(name: str) -> tuple[AccessUnit, ...]:
    return tuple(read_all(raw(name)))


def types_of(data: bytes) -> tuple[int, ...]:
    return tuple(n[0] & 0x1F for n in split_nals(data))


def vcl_nals(au: AccessUnit) -> list[bytes]:
    return [n for n in split_nals(au.data) if 1 <= n[0] & 0x1F <= 5]


def normalised(data: bytes) -> bytes:
    """The stream with every start code made 4 bytes long and trailing zeros removed."""
    return b"".join(SC + n for n in split_nals(data))


def nal_spans(data: bytes) -> list[tuple[int, int]]:
    """(payload start, end) of each NAL unit of a clean stream, in order."""
    starts, pos = [], data.find(b"\x00\x00\x01")
    while pos >= 0:
        starts.append(pos + 3)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    ends = [s - 3 for s in starts[1:]] + [len(data)]
    return [(s, s + len(data[s:e].rstrip(b"\x00"))) for s, e in zip(starts, ends, strict=True)]


def au_nal_spans(name: str) -> list[list[tuple[int, int]]]:
    """Byte spans in the fixture of the NAL units of each AU (not of those the reader added)."""
    data, spans, i = raw(name), nal_spans(raw(name)), 0
    out = []
    for au in full(name):
        mine = []
        for nal in split_nals(au.data):
            if i < len(spans) and data[spans[i][0] : spans[i][1]] == nal:
                mine.append(spans[i])
                i += 1
        out.append(mine)
    assert i == len(spans)
    return out


def check_invariants(aus: list[AccessUnit], reader: AccessUnitReader, total: int) -> None:
    """What every consumer relies on, whatever the input was."""
    assert reader.stats.access_units == total
    for au in aus:
        assert au.data.startswith(SC)
        assert types_of(au.data) == au.nal_types
        assert any(1 <= t <= 5 for t in au.nal_types)
        assert au.keyframe == (NalType.IDR in au.nal_types)
        if au.keyframe:
            assert {7, 8} <= set(au.nal_types)
        assert au.width == au.sps.width > 0
        assert au.height == au.sps.height > 0
        assert all(t in range(1, 22) and t not in (17, 18) for t in au.nal_types)


@contextmanager
def no_internal_errors() -> Iterator[None]:
    """Fails if the reader hit its last-resort exception handler."""
    records: list[logging.LogRecord] = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Handler(logging.ERROR)
    logger = logging.getLogger("edge.h264")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert not records, [r.getMessage() for r in records]


# ------------------------------------------------------------------------ real streams


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_matches_pyav(name: str) -> None:
    exp = FIXTURES[name]
    reader = AccessUnitReader(name="cam1")
    aus = run(reader, raw(name))
    assert len(aus) == exp.aus == pyav_file_frames(name)
    assert sum(au.keyframe for au in aus) == exp.keyframes
    assert aus[0].keyframe
    assert {(au.width, au.height) for au in aus} == {(exp.width, exp.height)}
    assert reader.sps is not None
    assert (reader.sps.width, reader.sps.height) == (exp.width, exp.height)
    assert reader.sps.fps == pytest.approx(exp.fps)
    assert reader.sps.profile_idc == exp.profile
    assert reader.stats.access_units == exp.aus
    assert reader.stats.keyframes == exp.keyframes
    s = reader.stats
    assert (s.dropped_bytes, s.dropped_nals, s.dropped_access_units, s.sps_errors) == (0,) * 4
    check_invariants(aus, reader, exp.aus)
    # The decoder gets one frame per AU, at the size the SPS announced.
    assert decode(b"".join(au.data for au in aus)) == [(exp.width, exp.height)] * exp.aus
    if name in REPEATED:
        # Nothing added, removed or reordered: only start codes normalised.
        assert b"".join(au.data for au in aus) == normalised(raw(name))


def test_aud_stream_starts_each_au_with_its_aud() -> None:
    aus = full(BASELINE)
    assert all(au.nal_types[0] == NalType.AUD for au in aus)
    assert aus[0].nal_types == (9, 7, 8, 6, 5)
    assert aus[30].nal_types == (9, 7, 8, 5)
    assert all(au.nal_types == (9, 1) for au in aus if not au.keyframe)


def test_multi_slice_frames_stay_one_access_unit() -> None:
    aus = full("slices4_640x360.h264")
    assert all(len(vcl_nals(au)) == 4 for au in aus)
    assert aus[0].nal_types[-4:] == (5, 5, 5, 5)


def test_field_coding_and_crop_units() -> None:
    interlaced = full("interlaced_720x576.h264")[0].sps
    assert (interlaced.width, interlaced.height, interlaced.level_idc) == (720, 576, 30)
    assert full("main_1920x1080.h264")[0].sps == SpsInfo(0, 77, 40, 1920, 1080, 30.0)


@pytest.mark.parametrize("name", FIXTURES)
def test_chunking_does_not_matter(name: str) -> None:
    expected = full(name)
    assert tuple(read_all(raw(name), iter(lambda: 1, 0))) == expected
    assert tuple(read_all(raw(name), iter(lambda: 7, 0))) == expected
    rng = random.Random(name)
    assert tuple(read_all(raw(name), iter(lambda: rng.randint(1, 3000), 0))) == expected


@settings(deadline=None, max_examples=40)
@given(name=st.sampled_from(list(FIXTURES)), sizes=st.lists(st.integers(1, 4000), min_size=1))
def test_random_chunking(name: str, sizes: list[int]) -> None:
    chunks = iter(sizes * (len(raw(name)) // max(1, sum(sizes)) + 1))
    assert tuple(read_all(raw(name), chunks)) == full(name)


def test_incremental_feed_emits_each_au_when_the_next_one_begins() -> None:
    data, aus = raw(BASELINE), full(BASELINE)
    spans = au_nal_spans(BASELINE)
    reader = AccessUnitReader()
    aud, slice_, end = spans[1][0][0], spans[1][1][0], spans[1][-1][1]
    # Up to AU 1's AUD start code: AU 0's last NAL is complete, but not known to be last.
    assert reader.feed(data[:aud]) == []
    assert reader.feed(data[aud:slice_]) == [aus[0]]  # the AUD is complete: AU 1 began
    assert reader.feed(data[slice_:end]) == []  # AU 1's slice may go on
    assert reader.flush() == [aus[1]]


def test_push_access_unit_with_demuxer_packets() -> None:
    for name in FIXTURES:
        reader = AccessUnitReader()
        with av.open(str(DATA / name), format="h264") as container:
            packets = [bytes(p) for p in container.demux(video=0) if p.size]
        pushed = [reader.push_access_unit(p) for p in packets]
        assert pushed == list(full(name)), name
        assert reader.stats.access_units == len(packets)


def test_push_access_unit_drops_what_cannot_be_decoded() -> None:
    aus = full(BASELINE)
    reader = AccessUnitReader()
    assert reader.push_access_unit(aus[1].data) is None  # no keyframe yet
    assert reader.push_access_unit(b"\x00\x00\x01\x09\xf0") is None  # AUD only, no picture
    assert reader.push_access_unit(b"garbage" + aus[0].data) == aus[0]
    assert reader.push_access_unit(b"") is None
    assert reader.stats.dropped_access_units == 3
    assert reader.stats.dropped_bytes == len(b"garbage")
    assert reader.push_access_unit(aus[1].data) == aus[1]
    small = AccessUnitReader(max_access_unit_bytes=100)
    assert small.push_access_unit(aus[0].data) is None
    assert small.stats.dropped_bytes == len(aus[0].data)


# ------------------------------------------------------------------------ damaged input


@pytest.mark.parametrize(
    "name", [BASELINE, "slices4_640x360.h264", "main_1920x1080.h264", "interlaced_720x576.h264"]
)
def test_mid_stream_join_starts_at_the_next_complete_keyframe(name: str) -> None:
    data, aus = raw(name), full(name)
    spans = au_nal_spans(name)
    # Where the start code of each keyframe AU's SPS begins: joining later loses the SPS.
    sps_starts = {
        k: spans[k][au.nal_types.index(NalType.SPS)][0] - 3
        for k, au in enumerate(aus)
        if au.keyframe
    }
    rng = random.Random(name)
    offsets = [rng.randrange(1, len(data)) for _ in range(12)] + [
        s + 1 for s in sps_starts.values()
    ]
    for offset in offsets:
        got = read_all(data[offset:])
        k = next((k for k, s in sps_starts.items() if s >= offset), None)
        if k is None:
            assert got == []
            continue
        assert got[0].keyframe
        assert vcl_nals(got[0]) == vcl_nals(aus[k])
        assert got[1:] == list(aus[k + 1 :])
        assert len(decode(b"".join(au.data for au in got))) == len(got)


def test_join_after_the_only_parameter_sets_yields_nothing() -> None:
    name = "params_once_320x240.h264"
    second = au_nal_spans(name)[1][0][0] - 4
    reader = AccessUnitReader()
    assert run(reader, raw(name)[second:]) == []
    assert reader.stats.dropped_access_units == FIXTURES[name].aus - 1


def test_stream_starting_with_p_frames_waits_for_the_keyframe() -> None:
    spans = au_nal_spans(BASELINE)
    reader = AccessUnitReader()
    got = run(reader, raw(BASELINE)[spans[1][0][0] - 4 :])
    assert got == list(full(BASELINE)[30:])
    assert reader.stats.dropped_access_units == 29


@pytest.mark.parametrize("name", [BASELINE, "slices4_640x360.h264", "high_cqm_352x288_25fps.h264"])
def test_truncation_keeps_earlier_access_units(name: str) -> None:
    data, aus = raw(name), full(name)
    ends = [s[-1][1] for s in au_nal_spans(name)]
    rng = random.Random(name)
    for cut in [rng.randrange(1, len(data)) for _ in range(25)]:
        complete = sum(1 for e in ends if e <= cut)
        reader = AccessUnitReader()
        fed = reader.feed(data[:cut])
        got = fed + reader.flush()
        assert fed == list(aus[: len(fed)])
        assert got[:complete] == list(aus[:complete])
        assert len(got) <= complete + 1
        if len(got) > complete:  # the partial AU, cut inside its last NAL
            mine, theirs = split_nals(got[-1].data), split_nals(aus[complete].data)
            assert mine[:-1] == theirs[: len(mine) - 1]
            assert theirs[len(mine) - 1].startswith(mine[-1])
        check_invariants(got, reader, len(got))
        assert len(decode(b"".join(au.data for au in got[:complete]))) == complete


def test_garbage_prefix_and_suffix() -> None:
    rng = random.Random(1)
    prefix = bytes(rng.randint(1, 255) for _ in range(5000))  # no zero, so no start code
    reader = AccessUnitReader()
    got = run(reader, prefix + raw(BASELINE), iter(lambda: 333, 0))
    assert got == list(full(BASELINE))
    assert reader.stats.dropped_bytes == len(prefix)
    # Bytes after the last start code are part of the last NAL: only that AU can suffer.
    suffix = bytes(rng.randint(1, 255) for _ in range(777))
    got = read_all(raw(BASELINE) + suffix)
    assert got[:-1] == list(full(BASELINE))[:-1]
    # Junk NAL units at the end are dropped.
    reader = AccessUnitReader()
    got = run(reader, raw(BASELINE) + b"\x00\x00\x01\xff" + suffix + b"\x00\x00\x00\x01\x00\x01")
    assert got == list(full(BASELINE))
    assert reader.stats.dropped_nals == 2


def test_interleaved_junk_nal_units_are_dropped() -> None:
    rng = random.Random(2)

    def junk(header: int) -> bytes:
        return b"\x00\x00\x01" + bytes([header]) + bytes(rng.randint(1, 255) for _ in range(50))

    kinds = [0x80 | 0x41, 0x00, 0x11, 0x12, 0x16, 0x17, 0x18, 0x1F]  # forbidden bit, 0, reserved
    data, spans = raw(BASELINE), au_nal_spans(BASELINE)
    pieces, pos = [], 0
    for i, au_spans in enumerate(spans[1:]):
        start = au_spans[0][0] - 4
        pieces += [data[pos:start], junk(kinds[i % len(kinds)])]
        if i % 5 == 0:
            pieces.append(b"\x00\x00\x01\x67\x42")  # truncated SPS
        if i % 7 == 0:
            pieces.append(b"\x00\x00\x01")  # empty NAL
        pos = start
    pieces.append(data[pos:])
    reader = AccessUnitReader(name="cam2")
    assert run(reader, b"".join(pieces), iter(lambda: 501, 0)) == list(full(BASELINE))
    assert reader.stats.dropped_nals == len(spans) - 1 + len(range(0, len(spans) - 1, 7))
    assert reader.stats.sps_errors == len(range(0, len(spans) - 1, 5))
    assert reader.sps == full(BASELINE)[0].sps  # the good SPS survived the bad ones


def test_bad_sps_keeps_the_previous_one() -> None:
    aus = full(BASELINE)
    reader = AccessUnitReader()
    assert reader.push_access_unit(aus[0].data) == aus[0]
    sps = split_nals(aus[0].data)[1]
    bad = aus[30].data.replace(sps, sps[:6])  # truncated SPS in the second keyframe
    got = reader.push_access_unit(bad)
    assert got == aus[30]  # the bad SPS was replaced by the cached good one
    assert reader.stats.sps_errors == 1
    assert reader.sps == aus[0].sps


# ----------------------------------------------------------------- parameter-set repair


def without(data: bytes, au_index: int, drop: set[int], name: str = BASELINE) -> bytes:
    """The fixture with NAL types `drop` removed from one AU."""
    spans = au_nal_spans(name)
    cut = [(s, e) for s, e in spans[au_index] if data[s] & 0x1F in drop]
    out, pos = bytearray(), 0
    for s, e in cut:
        out += data[pos : s - 3].rstrip(b"\x00")
        pos = e
    return bytes(out + data[pos:])


@pytest.mark.parametrize("drop", [{7, 8}, {7}, {8}])
def test_keyframe_without_parameter_sets_gets_them_prepended(drop: set[int]) -> None:
    stripped = without(raw(BASELINE), 30, drop)
    assert len(split_nals(stripped)) == len(split_nals(raw(BASELINE))) - len(drop)
    # The cached SPS/PPS are byte-identical to the removed ones, inserted where they were.
    assert read_all(stripped) == list(full(BASELINE))


def test_first_keyframe_without_parameter_sets_is_skipped() -> None:
    reader = AccessUnitReader()
    got = run(reader, without(raw(BASELINE), 0, {7, 8}))
    assert got == list(full(BASELINE)[30:])
    assert reader.stats.dropped_access_units == 30


def test_parameter_sets_sent_once() -> None:
    name = "params_once_320x240.h264"
    aus = full(name)
    keys = [au for au in aus if au.keyframe]
    assert [au.nal_types[:3] for au in keys] == [(7, 8, 6), (7, 8, 5), (7, 8, 5)]
    sps_pps = split_nals(keys[0].data)[:2]
    assert all(split_nals(au.data)[:2] == sps_pps for au in keys)
    # A late joiner fed from the second keyframe on decodes everything it gets.
    tail = b"".join(au.data for au in aus[10:])
    assert decode(tail) == [(320, 240)] * 20
    assert normalised(raw(name)) != b"".join(au.data for au in aus)


# ------------------------------------------------------------------ limits and logging


def test_garbage_without_start_code_is_bounded() -> None:
    rng = random.Random(3)
    block = bytes(rng.randint(1, 255) for _ in range(65536))
    reader = AccessUnitReader(max_access_unit_bytes=1 << 20)
    for _ in range(160):  # 10 MiB
        assert reader.feed(block) == []
        assert len(reader._buf) <= 2
    assert reader.stats.dropped_bytes == 160 * len(block) - 2
    assert run(reader, raw(BASELINE)) == list(full(BASELINE))


def test_oversize_nal_is_discarded_and_the_reader_recovers() -> None:
    limit = 1 << 20
    data, aus = raw(BASELINE), full(BASELINE)
    reader = AccessUnitReader(max_access_unit_bytes=limit)
    assert reader.feed(data[: au_nal_spans(BASELINE)[10][0][0] - 4]) == list(aus[:9])
    reader.feed(b"\x00\x00\x01\x41")
    block = b"\xab" * 65536
    for _ in range(48):  # 3 MiB without a start code
        assert reader.feed(block) == []
        assert len(reader._buf) <= limit + len(block)
    # AU 9 ends where the oversize slice starts; the slice's picture is dropped.
    assert run(reader, data) == [aus[9], *aus]
    assert reader.stats.dropped_bytes > 48 * len(block)
    assert reader.stats.dropped_access_units == 1


@pytest.mark.parametrize("chunk", [None, 1000])
def test_oversize_access_units_are_dropped(chunk: int | None) -> None:
    data, aus = raw(BASELINE), full(BASELINE)
    limit = max(len(au.data) for au in aus) + 100
    spans = au_nal_spans(BASELINE)

    def filler(size: int) -> bytes:
        return b"\x00\x00\x00\x01\x0c" + b"\xff" * size + b"\x80"

    # AU 5 grows past the limit, AU 40 gets a NAL unit bigger than the limit.
    end5, end40 = spans[5][-1][1], spans[40][-1][1]
    stream = data[:end5] + filler(limit - 500) + data[end5:end40] + filler(3 * limit)
    stream += data[end40:]
    reader = AccessUnitReader(max_access_unit_bytes=limit)
    got = run(reader, stream, iter(lambda: chunk, 0) if chunk else None)
    # After a dropped picture nothing is emitted until a keyframe: no broken references.
    assert got == [*aus[:5], *aus[30:40]]
    assert reader.stats.dropped_access_units == len(aus) - len(got)
    assert len(decode(b"".join(au.data for au in got))) == len(got)


def test_oversize_slice_drops_the_rest_of_its_picture() -> None:
    name = "slices4_640x360.h264"
    data, aus, spans = raw(name), full(name), au_nal_spans(name)
    limit = max(len(au.data) for au in aus) + 100
    first_slice_end = spans[3][0][1]  # AU 3: a P picture of four slices
    big = b"\x00\x00\x01\x0c" + b"\xff" * (2 * limit)
    reader = AccessUnitReader(max_access_unit_bytes=limit)
    got = run(reader, data[:first_slice_end] + big + data[first_slice_end:], iter(lambda: 999, 0))
    assert got == [*aus[:3], *aus[10:]]


def test_oversize_nal_at_end_of_stream_and_with_a_bad_header() -> None:
    reader = AccessUnitReader(max_access_unit_bytes=1000)
    assert reader.feed(raw(BASELINE)[:1000]) == []
    assert reader.feed(b"\x00\x00\x01\xff" + b"\x01" * 5000) == []
    assert reader.feed(b"\x00\x00\x01\x41" + b"\x81" * 5000) == []
    assert reader.flush() == []
    assert reader.stats.dropped_nals == 1
    assert reader.stats.dropped_bytes >= 10000
    assert len(reader._buf) == 0


def test_internal_errors_are_contained(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = AccessUnitReader(name="cam3")
    assert reader.feed(raw(BASELINE)[:5000])

    def broken(nal: bytes) -> int:
        raise RuntimeError("bug")

    monkeypatch.setattr(reader, "_accept_nal", broken)
    with caplog.at_level(logging.ERROR, logger="edge.h264"):
        assert reader.feed(raw(BASELINE)[5000:]) == []
        assert reader.flush() == []
        assert reader.push_access_unit(full(BASELINE)[30].data) is None
    assert "cam3: internal error" in caplog.text
    monkeypatch.undo()
    assert run(reader, raw(BASELINE)) == list(full(BASELINE))


def test_keyframe_with_bad_slice_header_is_dropped() -> None:
    w = BitWriter()
    w.ue(0)  # first_mb_in_slice
    w.ue(7)  # slice_type I
    w.ue(300)  # pic_parameter_set_id out of range
    aus = full(BASELINE)
    sps_pps = SC + SC.join(split_nals(aus[0].data)[1:3])
    reader = AccessUnitReader()
    assert reader.push_access_unit(sps_pps + SC + w.nal(0x65)) is None
    assert reader.stats.dropped_access_units == 1
    w = BitWriter()
    w.ue(0)
    w.ue(7)
    w.ue(3)  # a PPS id never seen
    assert reader.push_access_unit(sps_pps + SC + w.nal(0x65)) is None
    assert reader.push_access_unit(aus[0].data) == aus[0]


def test_logging_is_rate_limited(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(h264, "_clock", lambda: now[0])
    reader = AccessUnitReader(name="garage-cam")
    bad = b"\x00\x00\x01\xff\x01" * 100
    with caplog.at_level(logging.INFO, logger="edge.h264"):
        reader.feed(bad)
        now[0] += 5
        reader.feed(bad)
        warnings = [r for r in caplog.records if "invalid NAL" in r.getMessage()]
        assert len(warnings) == 1
        now[0] += 6
        reader.feed(bad)
    warnings = [r for r in caplog.records if "invalid NAL" in r.getMessage()]
    assert len(warnings) == 2
    assert all("garage-cam" in r.getMessage() for r in warnings)
    assert "(198 similar suppressed)" in warnings[1].getMessage()
    assert reader.stats.dropped_nals == 299


def test_reset_forgets_everything() -> None:
    data, aus = raw(BASELINE), full(BASELINE)
    reader = AccessUnitReader()
    assert reader.feed(data[: len(data) // 3])
    reader.reset()
    assert reader.sps is None
    # Without its SPS/PPS a P frame after reset is not emitted; a whole stream is.
    assert reader.push_access_unit(aus[1].data) is None
    assert run(reader, data) == list(aus)


def test_flush_then_a_new_stream() -> None:
    reader = AccessUnitReader()
    first = run(reader, raw(BASELINE))
    second = run(reader, raw("high_gray_161x121.h264"))
    assert first == list(full(BASELINE))
    assert second == list(full("high_gray_161x121.h264"))
    assert reader.flush() == []


# ------------------------------------------------------------------------------ split


def test_split_nals() -> None:
    assert split_nals(b"") == []
    assert split_nals(b"junk") == []
    assert split_nals(b"\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x67\x42\x00\x00\x01\x68") == [
        b"\x09\xf0",
        b"\x67\x42",
        b"\x68",
    ]
    # Garbage before, trailing_zero_8bits after, empty NALs skipped.
    assert split_nals(b"xx\x00\x00\x01\x41\x9a\x00\x00\x00\x00\x00\x01\x00\x00\x01") == [
        b"\x41\x9a"
    ]


def test_nal_type_values() -> None:
    assert [int(NalType[n]) for n in ("SLICE", "IDR", "SEI", "SPS", "PPS", "AUD", "FILLER")] == [
        1,
        5,
        6,
        7,
        8,
        9,
        12,
    ]
    assert issubclass(H264Error, ValueError)


# -------------------------------------------------------------------------------- SPS


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[str] = []

    def u(self, n: int, v: int) -> None:
        assert 0 <= v < 1 << n
        self.bits.append(format(v, f"0{n}b") if n else "")

    def ue(self, v: int) -> None:
        code = bin(v + 1)[2:]
        self.bits.append("0" * (len(code) - 1) + code)

    def se(self, v: int) -> None:
        self.ue(2 * v - 1 if v > 0 else -2 * v)

    def nal(self, header: int) -> bytes:
        """rbsp_trailing_bits, then emulation prevention."""
        bits = "".join(self.bits) + "1"
        bits += "0" * (-len(bits) % 8)
        rbsp = int(bits, 2).to_bytes(len(bits) // 8, "big")
        out, zeros = bytearray([header]), 0
        for b in rbsp:
            if zeros >= 2 and b <= 3:
                out.append(3)
                zeros = 0
            out.append(b)
            zeros = zeros + 1 if b == 0 else 0
        return bytes(out)


@dataclass
class Sps:
    profile_idc: int = 100
    level_idc: int = 40
    sps_id: int = 0
    chroma_format_idc: int = 1
    separate_colour_plane: bool = False
    bit_depths: tuple[int, int] = (0, 0)
    # None: no seq_scaling_matrix; else per list None (absent) or delta_scale values
    scaling: list[list[int] | None] | None = None
    poc_type: int = 0
    poc_cycle: list[int] = field(default_factory=list)
    width_mbs: int = 120
    height_map_units: int = 68
    frame_mbs_only: bool = True
    crop: tuple[int, int, int, int] | None = (0, 0, 0, 4)
    vui: bool = True
    aspect_idc: int | None = 255
    video_signal: bool = True
    chroma_loc: bool = True
    timing: tuple[int, int] | None = (1, 60)
    hrd: tuple[bool, bool] = (True, False)
    cpb_cnt: int = 1
    restriction: bool = True

    def write(self) -> bytes:
        w = BitWriter()
        w.u(8, self.profile_idc)
        w.u(8, 0)
        w.u(8, self.level_idc)
        w.ue(self.sps_id)
        if self.profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
            w.ue(self.chroma_format_idc)
            if self.chroma_format_idc == 3:
                w.u(1, self.separate_colour_plane)
            w.ue(self.bit_depths[0])
            w.ue(self.bit_depths[1])
            w.u(1, 0)
            w.u(1, self.scaling is not None)
            for i, deltas in enumerate(self.scaling or []):
                w.u(1, deltas is not None)
                if deltas is not None:
                    self._scaling_list(w, deltas, 16 if i < 6 else 64)
        w.ue(0)  # log2_max_frame_num_minus4
        w.ue(self.poc_type)
        if self.poc_type == 0:
            w.ue(12)
        elif self.poc_type == 1:
            w.u(1, 1)
            w.se(-3)
            w.se(7)
            w.ue(len(self.poc_cycle))
            for offset in self.poc_cycle:
                w.se(offset)
        w.ue(4)  # max_num_ref_frames
        w.u(1, 0)
        w.ue(self.width_mbs - 1)
        w.ue(self.height_map_units - 1)
        w.u(1, self.frame_mbs_only)
        if not self.frame_mbs_only:
            w.u(1, 1)
        w.u(1, 1)
        w.u(1, self.crop is not None)
        for c in self.crop or ():
            w.ue(c)
        w.u(1, self.vui)
        if self.vui:
            self._vui(w)
        return w.nal(0x67)

    @staticmethod
    def _scaling_list(w: BitWriter, deltas: list[int], size: int) -> None:
        last = nxt = 8
        it = iter(deltas)
        for _ in range(size):
            if nxt != 0:
                delta = next(it)
                w.se(delta)
                nxt = (last + delta + 256) % 256
            last = nxt or last

    def _vui(self, w: BitWriter) -> None:
        w.u(1, self.aspect_idc is not None)
        if self.aspect_idc is not None:
            w.u(8, self.aspect_idc)
            if self.aspect_idc == 255:
                w.u(16, 4)
                w.u(16, 3)
        w.u(1, 1)  # overscan_info_present_flag
        w.u(1, 0)
        w.u(1, self.video_signal)
        if self.video_signal:
            w.u(3, 5)
            w.u(1, 1)
            w.u(1, 1)
            w.u(24, 0x010101)
        w.u(1, self.chroma_loc)
        if self.chroma_loc:
            w.ue(1)
            w.ue(2)
        w.u(1, self.timing is not None)
        if self.timing:
            w.u(32, self.timing[0])
            w.u(32, self.timing[1])
            w.u(1, 1)
        for present in self.hrd:
            w.u(1, present)
            if present:
                w.ue(self.cpb_cnt - 1)
                w.u(4, 2)
                w.u(4, 3)
                for i in range(self.cpb_cnt):
                    w.ue(1000 + i)
                    w.ue(3000 + i)
                    w.u(1, i & 1)
                for length in (23, 23, 23, 24):
                    w.u(5, length)
        if any(self.hrd):
            w.u(1, 0)
        w.u(1, 0)  # pic_struct_present_flag
        w.u(1, self.restriction)
        if self.restriction:
            w.u(1, 1)
            for v in (2, 1, 16, 16, 2, 4):
                w.ue(v)

    def expected(self) -> SpsInfo:
        frame = 1 if self.frame_mbs_only else 2
        cat = 0 if self.separate_colour_plane else self.chroma_format_idc
        if self.profile_idc not in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
            cat = 1
        ux, uy = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}[cat]
        left, right, top, bottom = self.crop or (0, 0, 0, 0)
        fps = None
        if self.vui and self.timing and self.timing[0] and self.timing[1]:
            fps = self.timing[1] / (2 * self.timing[0])
        return SpsInfo(
            self.sps_id,
            self.profile_idc,
            self.level_idc,
            self.width_mbs * 16 - ux * (left + right),
            self.height_map_units * 16 * frame - uy * frame * (top + bottom),
            fps,
        )


def test_parse_sps_known_values() -> None:
    assert parse_sps(Sps().write()) == SpsInfo(0, 100, 40, 1920, 1080, 30.0)
    # Field coding: map units are field macroblock rows, crop units double.
    interlaced = Sps(height_map_units=34, frame_mbs_only=False, crop=(0, 0, 0, 2))
    assert parse_sps(interlaced.write()) == SpsInfo(0, 100, 40, 1920, 1080, 30.0)
    # 4:2:2 crops whole chroma columns, single rows; 4:4:4 single samples both ways.
    assert parse_sps(Sps(chroma_format_idc=2, crop=(1, 2, 3, 4)).write()).width == 1920 - 6
    assert parse_sps(Sps(chroma_format_idc=2, crop=(1, 2, 3, 4)).write()).height == 1088 - 7
    s444 = Sps(chroma_format_idc=3, crop=(1, 2, 3, 4), scaling=[None] * 11 + [[5] * 64])
    assert (parse_sps(s444.write()).width, parse_sps(s444.write()).height) == (1917, 1081)
    mono = Sps(chroma_format_idc=0, frame_mbs_only=False, height_map_units=34, crop=(0, 1, 0, 3))
    assert (parse_sps(mono.write()).width, parse_sps(mono.write()).height) == (1919, 1082)
    # Baseline: no chroma/bit depth/scaling fields; POC type 1 with a cycle; no VUI.
    baseline = Sps(profile_idc=66, poc_type=1, poc_cycle=[1, -2, 3], vui=False, crop=None)
    assert parse_sps(baseline.write()) == SpsInfo(0, 66, 40, 1920, 1088, None)
    # time_scale 0 means no frame rate; emulation prevention in the timing fields.
    no_rate = Sps(timing=(0, 0)).write()
    assert b"\x00\x00\x03" in no_rate
    assert parse_sps(no_rate).fps is None
    assert parse_sps(Sps(timing=(1001, 60000)).write()).fps == pytest.approx(29.97, abs=0.001)


def test_parse_sps_rejects() -> None:
    good = Sps().write()
    for bad in (
        b"",
        b"\x67",
        good[:1] + b"\x00" * 40,  # no rbsp_stop_one_bit
        good[:4] + b"\x00" * 5 + b"\xff",  # Exp-Golomb code longer than 32 bits
        bytes([good[0] | 0x80]) + good[1:],  # forbidden_zero_bit
        b"\x68" + good[1:],  # a PPS
        Sps(crop=(0, 0, 0, 600)).write(),  # cropped to nothing
        Sps(width_mbs=5000).write(),
        Sps(sps_id=32).write(),
        Sps(chroma_format_idc=4).write(),
        Sps(poc_type=3).write(),
        Sps(scaling=[[200] * 16] + [None] * 7).write(),  # delta_scale out of range
        Sps(cpb_cnt=33).write(),
    ):
        with pytest.raises(H264Error):
            parse_sps(bad)


def real_sps() -> list[bytes]:
    return [split_nals(au.data)[au.nal_types.index(7)] for au in (full(n)[0] for n in FIXTURES)]


@pytest.mark.parametrize(
    "sps",
    [
        *real_sps(),
        Sps().write(),
        Sps(profile_idc=66, poc_type=1, poc_cycle=[1, -2], vui=False).write(),
        Sps(chroma_format_idc=3, scaling=[[1, -1] * 32] * 12, hrd=(True, True)).write(),
    ],
)
def test_truncated_sps_always_raises(sps: bytes) -> None:
    parse_sps(sps)
    for n in range(len(sps)):
        with pytest.raises(H264Error):
            parse_sps(sps[:n])


@st.composite
def sps_fields(draw: st.DrawFn) -> Sps:
    profile = draw(st.sampled_from([66, 77, 88, 100, 110, 122, 244, 44]))
    chroma = draw(st.integers(0, 3))
    frame_mbs_only = draw(st.booleans())
    width_mbs = draw(st.integers(1, 300))
    height = draw(st.integers(1, 200))
    high = profile in (100, 110, 122, 244, 44)
    sep = high and chroma == 3 and draw(st.booleans())
    cat = 0 if sep else (chroma if high else 1)
    ux, uy = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}[cat]
    uy *= 1 if frame_mbs_only else 2
    frame_h = height * 16 * (1 if frame_mbs_only else 2)
    crop = None
    if draw(st.booleans()):
        lr = draw(st.integers(0, (width_mbs * 16 - 1) // ux))
        tb = draw(st.integers(0, (frame_h - 1) // uy))
        left, top = draw(st.integers(0, lr)), draw(st.integers(0, tb))
        crop = (left, lr - left, top, tb - top)
    scaling = None
    if high and draw(st.booleans()):
        deltas = st.lists(st.integers(-128, 127), min_size=64, max_size=64)
        scaling = [draw(st.none() | deltas) for _ in range(12 if chroma == 3 else 8)]
    return Sps(
        profile_idc=profile,
        level_idc=draw(st.integers(0, 255)),
        sps_id=draw(st.integers(0, 31)),
        chroma_format_idc=chroma,
        separate_colour_plane=sep,
        bit_depths=(draw(st.integers(0, 6)), draw(st.integers(0, 6))),
        scaling=scaling,
        poc_type=draw(st.integers(0, 2)),
        poc_cycle=draw(st.lists(st.integers(-(2**31) + 1, 2**31 - 1), max_size=5)),
        width_mbs=width_mbs,
        height_map_units=height,
        frame_mbs_only=frame_mbs_only,
        crop=crop,
        vui=draw(st.booleans()),
        aspect_idc=draw(st.none() | st.integers(0, 255)),
        video_signal=draw(st.booleans()),
        chroma_loc=draw(st.booleans()),
        timing=draw(st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))),
        hrd=(draw(st.booleans()), draw(st.booleans())),
        cpb_cnt=draw(st.integers(1, 32)),
        restriction=draw(st.booleans()),
    )


@FUZZ
@given(sps_fields())
def test_parse_sps_roundtrip(sps: Sps) -> None:
    nal = sps.write()
    assert parse_sps(nal) == sps.expected()
    n = len(nal) * 2 // 3
    with pytest.raises(H264Error):
        parse_sps(nal[:n])


@FUZZ
@given(st.binary(max_size=200))
def test_parse_sps_garbage(data: bytes) -> None:
    for nal in (data, b"\x67" + data):
        with suppress(H264Error):
            parse_sps(nal)


@FUZZ
@given(st.sampled_from(real_sps()), st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_parse_sps_bit_flips(sps: bytes, flips: list[int]) -> None:
    data = bytearray(sps)
    for f in flips:
        data[f // 8 % len(data)] ^= 1 << (f % 8)
    try:
        info = parse_sps(bytes(data))
    except H264Error:
        return
    assert info.width > 0
    assert info.height > 0


# ------------------------------------------------------------------------------ fuzzing


def fuzz_reader(data: bytes, sizes: list[int], *, max_bytes: int = 1 << 20) -> None:
    """Feeds data in chunks and whole, pushes it as AUs; checks the invariants."""
    with no_internal_errors():
        reader = AccessUnitReader(max_access_unit_bytes=max_bytes, name="fuzz")
        chunks = iter(sizes * (len(data) // max(1, sum(sizes)) + 1)) if sizes else None
        aus = run(reader, data, chunks)
        check_invariants(aus, reader, len(aus))
        assert aus == run(AccessUnitReader(max_access_unit_bytes=max_bytes), data)
        pusher = AccessUnitReader(max_access_unit_bytes=max_bytes)
        pieces = [data[i : i + 4096] for i in range(0, len(data), 4096)]
        pushed = [au for p in [data, *pieces] if (au := pusher.push_access_unit(p))]
        check_invariants(pushed, pusher, len(pushed))


@FUZZ
@given(st.binary(max_size=3000), st.lists(st.integers(1, 500), max_size=5))
def test_fuzz_binary(data: bytes, sizes: list[int]) -> None:
    fuzz_reader(data, sizes)


@cache
def sample_nals() -> list[bytes]:
    """Real NAL units of several kinds and streams, for structured fuzzing."""
    nals = split_nals(raw(BASELINE))[:12] + split_nals(raw("slices4_640x360.h264"))[:12]
    return nals + split_nals(raw("high_cqm_352x288_25fps.h264"))[:6]


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from([b"\x00\x00\x01", b"\x00\x00\x00\x01", b"\x00", b""]),
            st.one_of(
                st.sampled_from(sample_nals()),
                st.binary(max_size=30),
                st.tuples(st.sampled_from(sample_nals()), st.integers(0, 10**6)).map(
                    lambda t: t[0][: t[1] % (len(t[0]) + 1)]
                ),
            ),
        ),
        max_size=40,
    ),
    st.lists(st.integers(1, 300), max_size=4),
)
def test_fuzz_spliced_nal_units(parts: list[tuple[bytes, bytes]], sizes: list[int]) -> None:
    fuzz_reader(b"".join(sc + nal for sc, nal in parts), sizes, max_bytes=5000)


MUTATE = [BASELINE, "slices4_640x360.h264", "params_once_320x240.h264", "high_gray_161x121.h264"]


def mutate(
    data: bytes, flips: list[int], deletions: list[tuple[int, int]], splice: tuple[int, int, int]
) -> bytes:
    buf = bytearray(data)
    for f in flips:
        buf[f // 8 % len(buf)] ^= 1 << (f % 8)
    for pos, n in deletions:
        pos %= len(buf)
        del buf[pos : pos + n]
    a, b, other = splice
    donor = raw(MUTATE[other % len(MUTATE)])
    a %= len(buf) + 1
    b %= len(donor) + 1
    return bytes(buf[:a]) + donor[b:]


MUTATIONS = st.builds(
    mutate,
    st.sampled_from(MUTATE).map(raw),
    st.lists(st.integers(0, 10**7), max_size=20),  # bit flips
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 300)), max_size=5),  # deletions
    st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 3)),  # splice
)


@FUZZ
@given(MUTATIONS, st.lists(st.integers(1, 5000), max_size=3))
def test_fuzz_mutated_fixtures(data: bytes, sizes: list[int]) -> None:
    fuzz_reader(data, sizes)
