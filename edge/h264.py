"""H.264 Annex-B reader: splits a byte stream into complete, decodable access units.

The edge publisher hands camera-encoded H.264 to LiveKit without re-encoding, so this
module is the only place that looks inside the bitstream. It

* finds NAL units (3- and 4-byte start codes) with ``bytes.find``,
* groups them into access units (AUs) following ITU-T H.264 7.4.1.2.3,
* parses the sequence parameter set (SPS) for resolution, profile, level and frame rate,
* gates the output on the first keyframe for which SPS and PPS are known, and
* prepends the cached SPS/PPS to every keyframe that lacks them, so that a late WebRTC
  joiner can start decoding at any keyframe.

It never raises on bad input: garbage, truncation and mid-stream joins are counted in
``ReaderStats`` and logged (rate-limited) instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "AccessUnit",
    "AccessUnitReader",
    "H264Error",
    "NalType",
    "ReaderStats",
    "SpsInfo",
    "parse_sps",
    "split_nals",
]

log = logging.getLogger("edge.h264")

START_CODE = b"\x00\x00\x00\x01"
_SC3 = b"\x00\x00\x01"
_EPB = b"\x00\x00\x03"


class H264Error(ValueError):
    """Malformed H.264 data (for example a truncated or inconsistent SPS)."""


class NalType(IntEnum):
    """nal_unit_type values (ITU-T H.264 Table 7-1)."""

    UNSPECIFIED = 0
    SLICE = 1
    SLICE_A = 2
    SLICE_B = 3
    SLICE_C = 4
    IDR = 5
    SEI = 6
    SPS = 7
    PPS = 8
    AUD = 9
    END_SEQ = 10
    END_STREAM = 11
    FILLER = 12
    SPS_EXT = 13
    PREFIX = 14
    SUBSET_SPS = 15
    DPS = 16
    AUX_SLICE = 19
    SLICE_EXT = 20
    SLICE_EXT_DEPTH = 21


# Types that may legitimately appear in an Annex-B stream; everything else (0, the
# reserved 17/18/22/23 and the unspecified 24..31, which only RTP packetisation uses)
# is dropped because a decoder would reject or misinterpret it.
_KEPT_TYPES = frozenset(range(1, 17)) | frozenset({19, 20, 21})
_VCL_TYPES = frozenset(range(1, 6))
# Slices whose payload starts with first_mb_in_slice (data partitions B/C start with slice_id).
_SLICE_HEADER_TYPES = frozenset({1, 2, 5})
# Non-VCL NAL units that begin a new access unit once the current one has a picture.
_AU_START_TYPES = frozenset({6, 7, 8, 9, 14, 15, 16, 17, 18})
# profile_idc values whose SPS carries chroma_format_idc, bit depths and scaling lists.
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
# Sanity bound on picture size in macroblocks per dimension (16384 px; level 6.2 tops out
# far below that), so a corrupt SPS cannot claim absurd dimensions.
_MAX_MBS = 1024


# --------------------------------------------------------------------------- bit reading


def _unescape(data: bytes) -> bytes:
    """Removes emulation-prevention bytes (00 00 03 -> 00 00) to get the RBSP."""
    # Matches cannot overlap in a way that matters: 03 is never part of the next "00 00".
    return data.replace(_EPB, b"\x00\x00") if _EPB in data else data


class _BitReader:
    """MSB-first reader over an RBSP; every over-read raises H264Error."""

    __slots__ = ("_bits", "_pos", "_value")

    def __init__(self, rbsp: bytes) -> None:
        self._value = int.from_bytes(rbsp, "big")
        self._bits = len(rbsp) * 8
        self._pos = 0

    def u(self, n: int) -> int:
        end = self._pos + n
        if end > self._bits:
            raise H264Error("truncated")
        self._pos = end
        return (self._value >> (self._bits - end)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def ue(self, limit: int = 0xFFFF_FFFE) -> int:
        """Unsigned Exp-Golomb; values above ``limit`` are invalid for the field."""
        rest = self._bits - self._pos
        if rest <= 0:
            raise H264Error("truncated")
        tail = self._value & ((1 << rest) - 1)
        if tail == 0:
            raise H264Error("truncated Exp-Golomb code")
        zeros = rest - tail.bit_length()
        if zeros > 31:
            raise H264Error("Exp-Golomb code too long")
        self._pos += zeros
        value = self.u(zeros + 1) - 1
        if value > limit:
            raise H264Error(f"value {value} out of range (max {limit})")
        return value

    def se(self, lo: int = -(2**31), hi: int = 2**31 - 1) -> int:
        k = self.ue()
        value = (k + 1) // 2 if k & 1 else -(k // 2)
        if not lo <= value <= hi:
            raise H264Error(f"value {value} out of range [{lo}, {hi}]")
        return value


# --------------------------------------------------------------------------------- SPS


@dataclass(frozen=True, slots=True)
class SpsInfo:
    """The fields of a sequence parameter set that the platform needs."""

    sps_id: int
    profile_idc: int
    level_idc: int
    width: int  # display size, after frame cropping
    height: int
    fps: float | None  # from VUI timing info (time_scale / (2 * num_units_in_tick))


def _skip_scaling_list(r: _BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se(-128, 127) + 256) % 256
        # nxt == 0 means "use the rest of the last value" (or the default list for j == 0)
        last = nxt or last


def _skip_hrd(r: _BitReader) -> None:
    cpb_cnt = r.ue(31) + 1
    r.u(8)  # bit_rate_scale, cpb_size_scale
    for _ in range(cpb_cnt):
        r.ue()  # bit_rate_value_minus1
        r.ue()  # cpb_size_value_minus1
        r.u(1)  # cbr_flag
    r.u(20)  # four 5-bit delay/offset lengths


def _parse_vui(r: _BitReader) -> float | None:
    # aspect_ratio_info_present_flag, then aspect_ratio_idc == Extended_SAR
    if r.flag() and r.u(8) == 255:
        r.u(32)  # sar_width, sar_height
    if r.flag():  # overscan_info_present_flag
        r.u(1)
    if r.flag():  # video_signal_type_present_flag
        r.u(4)  # video_format, video_full_range_flag
        if r.flag():  # colour_description_present_flag
            r.u(24)
    if r.flag():  # chroma_loc_info_present_flag
        r.ue(5)
        r.ue(5)
    fps: float | None = None
    if r.flag():  # timing_info_present_flag
        num_units_in_tick = r.u(32)
        time_scale = r.u(32)
        r.u(1)  # fixed_frame_rate_flag
        if num_units_in_tick and time_scale:
            fps = time_scale / (2 * num_units_in_tick)
    nal_hrd = r.flag()
    if nal_hrd:
        _skip_hrd(r)
    vcl_hrd = r.flag()
    if vcl_hrd:
        _skip_hrd(r)
    if nal_hrd or vcl_hrd:
        r.u(1)  # low_delay_hrd_flag
    r.u(1)  # pic_struct_present_flag
    if r.flag():  # bitstream_restriction_flag
        r.u(1)  # motion_vectors_over_pic_boundaries_flag
        r.ue(16)  # max_bytes_per_pic_denom
        r.ue(16)  # max_bits_per_mb_denom
        r.ue(16)  # log2_max_mv_length_horizontal
        r.ue(16)  # log2_max_mv_length_vertical
        r.ue()  # max_num_reorder_frames
        r.ue()  # max_dec_frame_buffering
    return fps


def parse_sps(nal: bytes) -> SpsInfo:
    """Parses an SPS NAL unit (1-byte header included, start code excluded).

    The whole SPS is parsed, VUI included, and the rbsp_stop_one_bit must follow it, so a
    truncated SPS is always detected rather than yielding plausible-looking garbage.

    Raises:
        H264Error: the data is not a complete, valid SPS.
    """
    if len(nal) < 4:
        raise H264Error(f"SPS too short ({len(nal)} bytes)")
    if nal[0] & 0x80:
        raise H264Error("forbidden_zero_bit set")
    if nal[0] & 0x1F != NalType.SPS:
        raise H264Error(f"not an SPS (nal_unit_type {nal[0] & 0x1F})")
    r = _BitReader(_unescape(bytes(nal[1:])))
    profile_idc = r.u(8)
    r.u(8)  # constraint_set flags, reserved_zero_2bits
    level_idc = r.u(8)
    sps_id = r.ue(31)
    chroma_format_idc = 1
    separate_colour_plane = False
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = r.ue(3)
        if chroma_format_idc == 3:
            separate_colour_plane = r.flag()
        r.ue(6)  # bit_depth_luma_minus8
        r.ue(6)  # bit_depth_chroma_minus8
        r.u(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.flag():  # seq_scaling_list_present_flag[i]
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue(12)  # log2_max_frame_num_minus4
    poc_type = r.ue(2)
    if poc_type == 0:
        r.ue(12)  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.u(1)  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        for _ in range(r.ue(255)):  # num_ref_frames_in_pic_order_cnt_cycle
            r.se()
    r.ue(32)  # max_num_ref_frames
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue(_MAX_MBS - 1) + 1
    height_map_units = r.ue(_MAX_MBS - 1) + 1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.u(1)  # mb_adaptive_frame_field_flag
    r.u(1)  # direct_8x8_inference_flag
    crop_left = crop_right = crop_top = crop_bottom = 0
    if r.flag():  # frame_cropping_flag
        crop_left, crop_right, crop_top, crop_bottom = r.ue(), r.ue(), r.ue(), r.ue()
    fps = _parse_vui(r) if r.flag() else None
    if not r.flag():
        raise H264Error("missing rbsp_stop_one_bit")

    frame_factor = 1 if frame_mbs_only else 2  # field coding: map units are field MB rows
    width = width_mbs * 16
    height = height_map_units * 16 * frame_factor
    # Crop offsets are in chroma sample units (Table 6-1, equations 7-19..7-22).
    chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
    if chroma_array_type == 0:
        crop_unit_x, crop_unit_y = 1, frame_factor
    else:
        sub_width_c = 1 if chroma_array_type == 3 else 2
        sub_height_c = 2 if chroma_array_type == 1 else 1
        crop_unit_x, crop_unit_y = sub_width_c, sub_height_c * frame_factor
    width -= crop_unit_x * (crop_left + crop_right)
    height -= crop_unit_y * (crop_top + crop_bottom)
    if width <= 0 or height <= 0:
        raise H264Error("frame cropping exceeds the picture size")
    return SpsInfo(sps_id, profile_idc, level_idc, width, height, fps)


def _parse_pps_ids(nal: bytes) -> tuple[int, int]:
    """(pic_parameter_set_id, seq_parameter_set_id) of a PPS NAL unit."""
    r = _BitReader(_unescape(bytes(nal[1:12])))  # two ue(v) need at most 11 bytes
    return r.ue(255), r.ue(31)


def _slice_pps_id(nal: bytes) -> int:
    """pic_parameter_set_id from a slice header (after first_mb_in_slice, slice_type)."""
    r = _BitReader(_unescape(bytes(nal[1:32])))
    r.ue()  # first_mb_in_slice
    r.ue(9)  # slice_type
    return r.ue(255)


# ------------------------------------------------------------------------------ splitting


def _split(buf: bytes) -> tuple[list[bytes], int]:
    """NAL units of a complete Annex-B buffer and the count of bytes before the first."""
    first = buf.find(_SC3)
    if first < 0:
        return [], len(buf)
    # Zeros right before the first start code belong to it (4-byte form, leading_zero_8bits).
    dropped = len(buf[:first].rstrip(b"\x00"))
    nals: list[bytes] = []
    pos = first + 3
    while True:
        nxt = buf.find(_SC3, pos)
        # rstrip drops trailing_zero_8bits and the leading zero of a 4-byte start code.
        nal = (buf[pos:] if nxt < 0 else buf[pos:nxt]).rstrip(b"\x00")
        if nal:
            nals.append(nal)
        if nxt < 0:
            return nals, dropped
        pos = nxt + 3


def split_nals(buf: bytes) -> list[bytes]:
    """Returns the NAL units (without start codes) of a complete Annex-B buffer.

    Accepts 3- and 4-byte start codes, ignores bytes before the first start code and
    strips trailing zero bytes (trailing_zero_8bits) from every NAL unit; empty NAL units
    are omitted.
    """
    return _split(bytes(buf))[0]


# --------------------------------------------------------------------------------- reader


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """One coded picture with its parameter sets, ready to hand to a decoder or SFU."""

    data: bytes  # Annex-B, each NAL prefixed with 00 00 00 01
    keyframe: bool  # contains an IDR slice
    nal_types: tuple[int, ...]
    width: int  # from the active SPS
    height: int
    sps: SpsInfo


@dataclass
class ReaderStats:
    """Counters of what an AccessUnitReader emitted and threw away."""

    access_units: int = 0
    keyframes: int = 0
    dropped_bytes: int = 0  # garbage before the first start code, oversize buffers, etc.
    dropped_nals: int = 0  # forbidden_zero_bit set, empty, nal types 0 / reserved etc.
    dropped_access_units: int = 0  # no VCL NAL, no SPS/PPS yet, waiting for first keyframe
    sps_errors: int = 0


_LOG_INTERVAL = 10.0  # seconds between two log lines about the same kind of problem
_clock = time.monotonic  # module attribute so that tests can fake the time


@dataclass
class _RateLimiter:
    """Logs the first occurrence of each kind of problem, then at most once per interval."""

    last: dict[str, float] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)

    def __call__(
        self, level: int, kind: str, msg: str, *args: object, exc_info: bool = False
    ) -> None:
        now = _clock()
        last = self.last.get(kind)
        if last is not None and now - last < _LOG_INTERVAL:
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
            return
        self.last[kind] = now
        n = self.suppressed.pop(kind, 0)
        if n:
            log.log(level, msg + " (%d similar suppressed)", *args, n, exc_info=exc_info)
        else:
            log.log(level, msg, *args, exc_info=exc_info)


class AccessUnitReader:
    """Turns an Annex-B byte stream (or whole AUs) into validated ``AccessUnit`` objects.

    One reader per camera stream. Output starts at the first keyframe for which SPS and
    PPS are known (and starts again at the next keyframe whenever a picture had to be
    dropped, since later pictures may reference it); every keyframe carries its SPS and
    PPS; start codes are normalised to 4 bytes. None of the public methods raise on bad
    input.

    Args:
        max_access_unit_bytes: larger AUs (and NAL units) are dropped; also bounds memory.
        name: the camera's name, used in log messages.
    """

    def __init__(self, *, max_access_unit_bytes: int = 8 * 1024 * 1024, name: str = "h264") -> None:
        self.max_access_unit_bytes = max_access_unit_bytes
        self.name = name
        self.stats = ReaderStats()
        self.sps: SpsInfo | None = None  # latest good SPS
        self._warn = _RateLimiter()
        self.reset()

    def reset(self) -> None:
        """Forgets partial data, parameter sets and the keyframe gate (stats are kept)."""
        self.sps = None
        self._forget_bytes()
        self._sps_by_id: dict[int, tuple[bytes, SpsInfo]] = {}
        self._pps_by_id: dict[int, tuple[bytes, int]] = {}
        self._sps_cache: dict[bytes, SpsInfo] = {}  # SPS bytes -> parsed
        self._active: SpsInfo | None = None  # SPS activated by the last emitted keyframe
        self._started = False  # keyframe gate: a decodable keyframe has been emitted
        self._clear_pending()

    def _forget_bytes(self) -> None:
        self._buf = bytearray()  # unsynced: tail of garbage; synced: current NAL so far
        self._synced = False  # a start code has been seen; _buf starts at a NAL
        self._scan = 0  # where the next start-code search in _buf begins
        self._skip_head: bytes | None = None  # header of an oversize NAL being skipped
        self._skipped = 0  # bytes of it skipped so far

    def _clear_pending(self) -> None:
        self._nals: list[bytes] = []
        self._types: list[int] = []
        self._has_vcl = False
        self._size = 0
        self._discarding = False  # rest of an oversize AU: drop NALs until the next AU

    # ------------------------------------------------------------------ public entry points

    def feed(self, chunk: bytes) -> list[AccessUnit]:
        """Consumes the next piece of an Annex-B byte stream (any chunking).

        Returns the access units completed by this chunk. A NAL unit is only known to be
        complete when the next start code arrives, and an AU only when the first NAL of
        the next AU arrives, so each AU is returned one feed later than its last byte
        (about one frame of delay, inherent to Annex-B without AUDs); ``flush`` returns
        the last one at end of stream.
        """
        out: list[AccessUnit] = []
        try:
            self._feed(chunk, out)
        except Exception:  # a reader bug must not take the camera down
            self._internal_error()
        return out

    def flush(self) -> list[AccessUnit]:
        """Ends the stream: the buffered NAL is taken as complete and the pending AU emitted.

        The reader then waits for a new start code; parameter sets and the keyframe gate
        are kept (call ``reset`` for an unrelated stream).
        """
        out: list[AccessUnit] = []
        try:
            if self._skip_head is not None:
                self._on_oversize_nal(self._skip_head, self._skipped + len(self._buf), out)
            elif self._synced and self._buf:
                self._on_nal(bytes(self._buf).rstrip(b"\x00"), out)
            self._end_au(out)
            self._forget_bytes()
        except Exception:
            self._internal_error()
        return out

    def push_access_unit(self, data: bytes) -> AccessUnit | None:
        """Validates one whole Annex-B access unit (a demuxer packet, an encoder buffer).

        Uses the same checks, parameter-set cache and keyframe gate as ``feed`` but does
        not touch its partial data. Returns None (and counts why) if the AU is dropped.
        """
        try:
            if len(data) > self.max_access_unit_bytes:
                self.stats.dropped_bytes += len(data)
                self.stats.dropped_access_units += 1
                self._warn(
                    logging.WARNING, "oversize", "%s: dropped %d-byte AU", self.name, len(data)
                )
                self._lose_sync()
                return None
            nals, garbage = _split(bytes(data))
            if garbage:
                self.stats.dropped_bytes += garbage
                self._warn(
                    logging.WARNING, "garbage", "%s: %d bytes before start code", self.name, garbage
                )
            kept: list[bytes] = []
            types: list[int] = []
            for nal in nals:
                t = self._accept_nal(nal)
                if t is not None:
                    kept.append(nal)
                    types.append(t)
            return self._make_au(kept, types)
        except Exception:
            self._internal_error()
            return None

    # --------------------------------------------------------------------- byte stream

    def _feed(self, chunk: bytes, out: list[AccessUnit]) -> None:
        if not chunk:
            return
        buf = self._buf
        buf += chunk
        pos = 0
        if not self._synced:
            i = buf.find(_SC3)
            if i < 0:
                # Keep two bytes: they may be the start of a start code split across chunks.
                cut = len(buf) - 2
                if cut > 0:
                    self._drop_garbage(len(buf[:cut].rstrip(b"\x00")))
                    del buf[:cut]
                return
            self._drop_garbage(len(buf[:i].rstrip(b"\x00")))
            self._synced = True
            pos = self._scan = i + 3
        scan = self._scan
        find = buf.find
        with memoryview(buf) as mv:  # released before the bytearray is resized below
            while True:
                i = find(_SC3, scan)
                if i < 0:
                    break
                if self._skip_head is not None:  # end of an oversize NAL
                    self._on_oversize_nal(self._skip_head, self._skipped + i, out)
                    self._skip_head = None
                else:
                    # Zeros before "00 00 01": trailing_zero_8bits or a 4-byte start code.
                    self._on_nal(bytes(mv[pos:i]).rstrip(b"\x00"), out)
                pos = scan = i + 3
        if pos:
            del buf[:pos]
        limit = self.max_access_unit_bytes
        if (
            self._skip_head is None
            and len(buf) > limit
            and (len(buf) > 2 * limit or len(buf.rstrip(b"\x00")) > limit)
        ):
            # No start code for too long: memory must stay bounded. Only the NAL header is
            # kept, so that the outcome is the same as if the NAL had arrived in one piece
            # (trailing zeros don't count, unless there are absurdly many of them).
            self._skip_head = bytes(buf[:2])
            self._skipped = 0
        if self._skip_head is not None:
            # Keep two bytes: they may be the start of a start code split across chunks.
            cut = len(buf) - 2
            if cut > 0:
                self._skipped += cut
                del buf[:cut]
        # A start code split across chunks has at most two bytes in what we already have.
        self._scan = max(0, len(buf) - 2)

    def _drop_garbage(self, n: int) -> None:
        if n:
            self.stats.dropped_bytes += n
            self._warn(
                logging.WARNING, "garbage", "%s: skipped %d bytes without start code", self.name, n
            )

    def _starts_au(self, t: int, nal: bytes) -> bool:
        # 7.4.1.2.3: once the AU has a picture, these NAL types start a new AU, and so does
        # a slice with first_mb_in_slice == 0 (ue(v) == 0 is a single 1 bit). Further
        # slices of a multi-slice picture (first_mb_in_slice > 0) stay in the same AU.
        return self._has_vcl and (
            t in _AU_START_TYPES or (t in _SLICE_HEADER_TYPES and nal[1] & 0x80 != 0)
        )

    def _on_nal(self, nal: bytes, out: list[AccessUnit]) -> None:
        if len(nal) > self.max_access_unit_bytes:
            self._on_oversize_nal(nal[:2], len(nal), out)
            return
        t = self._accept_nal(nal)
        if t is None:
            return
        if self._starts_au(t, nal):
            self._end_au(out)
        if t in _VCL_TYPES:
            self._has_vcl = True
        if self._discarding:
            return
        self._nals.append(nal)
        self._types.append(t)
        self._size += len(nal) + 4
        if self._size > self.max_access_unit_bytes:
            self._drop_pending()

    def _on_oversize_nal(self, head: bytes, size: int, out: list[AccessUnit]) -> None:
        """A NAL unit bigger than any AU may be: it and the rest of its AU are dropped."""
        self.stats.dropped_bytes += size
        self._warn(logging.WARNING, "oversize", "%s: dropped %d-byte NAL unit", self.name, size)
        t = head[0] & 0x1F
        if head[0] & 0x80 or t not in _KEPT_TYPES or t in (7, 8) or len(head) < 2:
            self.stats.dropped_nals += 1
            return
        if self._starts_au(t, head):
            self._end_au(out)
        if t in _VCL_TYPES:
            self._has_vcl = True
        self._drop_pending()

    def _drop_pending(self) -> None:
        """Drops the pending AU and the NALs that still belong to it."""
        if not self._discarding:
            self.stats.dropped_access_units += 1
            self.stats.dropped_bytes += self._size
            self._warn(
                logging.WARNING, "oversize", "%s: AU exceeds %d bytes, dropped", self.name,
                self.max_access_unit_bytes,
            )  # fmt: skip
        has_vcl = self._has_vcl
        self._clear_pending()
        self._has_vcl = has_vcl  # so that the next AU's first NAL still ends this one
        self._discarding = True
        self._lose_sync()

    def _end_au(self, out: list[AccessUnit]) -> None:
        if self._discarding:
            self._clear_pending()
            return
        if self._nals or self._has_vcl:
            nals, types = self._nals, self._types
            self._clear_pending()
            au = self._make_au(nals, types)
            if au is not None:
                out.append(au)

    # ----------------------------------------------------------------------- validation

    def _accept_nal(self, nal: bytes) -> int | None:
        """Checks one NAL unit and updates the parameter-set cache; None = drop it."""
        if not nal:
            self.stats.dropped_nals += 1
            return None
        header = nal[0]
        t = header & 0x1F
        if header & 0x80 or t not in _KEPT_TYPES or (t in _VCL_TYPES and len(nal) < 2):
            self.stats.dropped_nals += 1
            self._warn(
                logging.WARNING, "nal", "%s: dropped invalid NAL (header 0x%02x)", self.name, header
            )
            return None
        if t == NalType.SPS:
            return t if self._on_sps(nal) else None
        if t == NalType.PPS:
            try:
                pps_id, sps_id = _parse_pps_ids(nal)
            except H264Error as e:
                self.stats.dropped_nals += 1
                self._warn(logging.WARNING, "pps", "%s: bad PPS dropped: %s", self.name, e)
                return None
            self._pps_by_id[pps_id] = (nal, sps_id)
        return t

    def _on_sps(self, nal: bytes) -> bool:
        # Encoders repeat the same SPS at every keyframe: parse only bytes not seen before.
        info = self._sps_cache.get(nal)
        if info is None:
            try:
                info = parse_sps(nal)
            except H264Error as e:
                self.stats.sps_errors += 1
                self._warn(
                    logging.WARNING,
                    "sps",
                    "%s: bad SPS dropped (keeping previous): %s",
                    self.name,
                    e,
                )
                return False
            if len(self._sps_cache) >= 8:  # bounded, whatever the stream does
                self._sps_cache.clear()
            self._sps_cache[nal] = info
            if info != self.sps:
                self._warn(
                    logging.INFO, "sps-new", "%s: SPS %d: %dx%d profile %d level %d fps %s",
                    self.name, info.sps_id, info.width, info.height, info.profile_idc,
                    info.level_idc, f"{info.fps:g}" if info.fps else "?",
                )  # fmt: skip
        self._sps_by_id[info.sps_id] = (nal, info)
        self.sps = info
        return True

    def _lose_sync(self) -> None:
        """Data of a picture was lost: later pictures may reference it, wait for an IDR."""
        self._started = False

    def _make_au(self, nals: list[bytes], types: list[int]) -> AccessUnit | None:
        st = self.stats
        vcl = next((i for i, t in enumerate(types) if t in _VCL_TYPES), -1)
        if vcl < 0:
            st.dropped_access_units += 1
            return None
        if types[vcl] not in _SLICE_HEADER_TYPES or not nals[vcl][1] & 0x80:
            # Starts mid-picture (joined inside a multi-slice frame, or lost slices).
            st.dropped_access_units += 1
            self._warn(logging.WARNING, "partial", "%s: dropped partial picture", self.name)
            self._lose_sync()
            return None
        keyframe = NalType.IDR in types
        if keyframe:
            sps = self._keyframe_params(nals, types)
            if sps is None:
                st.dropped_access_units += 1
                self._lose_sync()
                return None
            self._active = sps
            if not self._started:
                self._warn(
                    logging.INFO, "start", "%s: keyframe, output starts (%dx%d)", self.name,
                    sps.width, sps.height,
                )  # fmt: skip
            self._started = True
            st.keyframes += 1
        elif not self._started or self._active is None:
            st.dropped_access_units += 1
            self._warn(logging.INFO, "gate", "%s: waiting for a keyframe", self.name)
            return None
        else:
            sps = self._active
        st.access_units += 1
        return AccessUnit(
            START_CODE + START_CODE.join(nals), keyframe, tuple(types), sps.width, sps.height, sps
        )

    def _keyframe_params(self, nals: list[bytes], types: list[int]) -> SpsInfo | None:
        """Finds the IDR's SPS and inserts cached SPS/PPS it lacks (modifies the lists)."""
        idr = types.index(NalType.IDR)
        try:
            pps_id = _slice_pps_id(nals[idr])
        except H264Error as e:
            self._warn(logging.WARNING, "slice", "%s: bad IDR slice header: %s", self.name, e)
            return None
        pps = self._pps_by_id.get(pps_id)
        sps = self._sps_by_id.get(pps[1]) if pps else None
        if pps is None or sps is None:
            self._warn(
                logging.INFO, "params", "%s: keyframe before its SPS/PPS, dropped", self.name
            )
            return None
        has_sps, has_pps = NalType.SPS in types, NalType.PPS in types
        if not has_pps:
            # After the last SPS if there is one (a PPS must follow the SPS it refers to),
            # else after an AUD (which must stay first).
            at = (
                len(types) - types[::-1].index(NalType.SPS)
                if has_sps
                else int(types[0] == NalType.AUD)
            )
            nals.insert(at, pps[0])
            types.insert(at, int(NalType.PPS))
        if not has_sps:
            at = int(types[0] == NalType.AUD)
            nals.insert(at, sps[0])
            types.insert(at, int(NalType.SPS))
        return sps[1]

    def _internal_error(self) -> None:
        self._warn(
            logging.ERROR, "internal", "%s: internal error, resyncing", self.name, exc_info=True
        )
        self._forget_bytes()
        self._clear_pending()
        self._lose_sync()
