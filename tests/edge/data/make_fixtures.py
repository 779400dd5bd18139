"""Writes the H.264 Annex-B fixtures of tests/edge/test_h264.py (re-runnable).

    python tests/edge/data/make_fixtures.py

Each stream is encoded by PyAV's libx264 from synthetic numpy frames (moving gradients
and a moving box, so P/B frames carry real motion) and written as raw Annex-B:

- baseline_320x240_aud.h264: constrained baseline, 320x240, 30 fps, 60 frames, IDR every
  30 frames, repeat-headers=1 and aud=1 - like ``rpicam-vid --inline`` output.
- main_1920x1080.h264: main profile with B-frames, 1920x1080 (coded 1088, cropped to 1080
  as a Pi encoder emits it), 30 fps, 6 frames, IDR every 3 frames.
- slices4_640x360.h264: main profile, 4 slices per picture, 640x360 (coded 368), 30 fps,
  30 frames, IDR every 10 frames.
- high_cqm_352x288_25fps.h264: high profile with custom scaling lists, VUI timing for
  25 fps, 352x288, 25 frames, IDR every 12 frames. x264 (cqm=jvt, 8x8 transform) puts its
  matrices in the PPS only, so this script rewrites the SPS to also carry explicit
  seq_scaling_lists (all 8, real deltas, one "use default"). The PPS lists override
  them, so the pictures decode exactly as encoded.
- params_once_320x240.h264: baseline 320x240 30 fps, 30 frames, IDR every 10 frames, SPS
  and PPS removed from all but the first access unit (like MP4 demuxer output).
- interlaced_720x576.h264: high profile MBAFF interlaced (frame_mbs_only_flag = 0),
  720x576, 25 fps, 8 frames.
- high_gray_161x121.h264: High profile monochrome (chroma_format_idc 0, crop
  unit 1 x 1) with odd display size 161x121 (coded 176x128), 25 fps, 5 frames.
- high422_10bit_322x242.h264: High 4:2:2 profile, 10-bit (bit_depth fields, 4:2:2 crop
  units 2 x 1), 322x242 (coded 336x256), 25 fps, 5 frames.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
SC = b"\x00\x00\x00\x01"


def frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """Deterministic RGB frames with smooth moving content (small when encoded)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for i in range(count):
        img = np.empty((height, width, 3), np.uint8)
        img[..., 0] = (127 + 100 * np.sin((x + 4 * i) / 23.0)).astype(np.uint8)
        img[..., 1] = (127 + 100 * np.sin((y - 3 * i) / 17.0)).astype(np.uint8)
        img[..., 2] = (127 + 100 * np.sin((x + y + 5 * i) / 31.0)).astype(np.uint8)
        bx, by = (7 * i) % max(1, width - 40), (5 * i) % max(1, height - 40)
        img[by : by + 40, bx : bx + 40] = (250, 250, 250)
        out.append(img)
    return out


# pix_fmt -> (chroma subsampling x, y or None for no chroma, bytes per sample)
_FORMATS = {"yuv420p": ((2, 2), 1), "yuv422p10le": ((2, 1), 2), "gray": (None, 1)}


def to_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """RGB -> planar YUV (BT.601) in numpy: swscale's output is not byte-identical per run."""
    sub, size = _FORMATS[pix_fmt]
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    planes = [16 + 0.257 * r + 0.504 * g + 0.098 * b]
    if sub:
        sx, sy = sub
        planes.append((128 - 0.148 * r - 0.291 * g + 0.439 * b)[::sy, ::sx])
        planes.append((128 + 0.439 * r - 0.368 * g - 0.071 * b)[::sy, ::sx])
    frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], pix_fmt)
    for plane, values in zip(frame.planes, planes, strict=True):
        if size == 2:
            samples = (np.rint(values) * 4).astype("<u2").view(np.uint8)  # 10 bit
        else:
            samples = np.rint(values).astype(np.uint8)
        rows = np.zeros((plane.height, plane.line_size), np.uint8)
        rows[:, : samples.shape[1]] = samples
        plane.update(rows.tobytes())
    return frame


def encode(
    width: int,
    height: int,
    count: int,
    fps: int,
    params: str,
    *,
    profile: str | None = None,
    pix_fmt: str = "yuv420p",
    crf: int = 32,
) -> bytes:
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    # threads=1 and mbtree=0: x264 output is otherwise not byte-identical between runs.
    x264_params = params + ":mbtree=0"
    options = {"preset": "veryfast", "crf": str(crf), "threads": "1", "x264-params": x264_params}
    if profile:
        options["profile"] = profile
    ctx.options = options
    data = bytearray()
    for i, rgb in enumerate(frames(width, height, count)):
        frame = to_frame(rgb, pix_fmt)
        frame.pts = i
        for packet in ctx.encode(frame):
            data += bytes(packet)
    for packet in ctx.encode(None):
        data += bytes(packet)
    return bytes(data)


def params_only_once(stream: bytes) -> bytes:
    """Drops every SPS/PPS after the first IDR's (x264 repeats them at each IDR)."""
    nals = [n.rstrip(b"\x00") for n in stream.split(b"\x00\x00\x01")[1:]]
    out, seen_idr = bytearray(), False
    for nal in nals:
        t = nal[0] & 0x1F
        if t in (7, 8) and seen_idr:
            continue
        seen_idr = seen_idr or t == 5
        out += SC + nal
    return bytes(out)


def _ue(v: int) -> str:
    code = bin(v + 1)[2:]
    return "0" * (len(code) - 1) + code


def _se(v: int) -> str:
    return _ue(2 * v - 1 if v > 0 else -2 * v)


def _escape(rbsp: bytes) -> bytes:
    """Inserts emulation-prevention bytes."""
    out, zeros = bytearray(), 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _scaling_lists() -> str:
    bits = ""
    for i in range(8):  # six 4x4 lists, two 8x8 lists (chroma_format_idc 1)
        size = 16 if i < 6 else 64
        if i == 2:
            bits += "0"  # not present: fall-back rule A
            continue
        bits += "1"
        if i == 4:
            bits += _se(-8)  # next_scale 0 at j == 0: use the default list
            continue
        last = 8
        for j in range(size):
            value = 6 + (3 * j + 5 * i) % 60
            delta = (value - last + 128) % 256 - 128
            bits += _se(delta)
            last = value
    return bits


def with_seq_scaling_lists(sps: bytes) -> bytes:
    """Rewrites a high-profile x264 SPS so that it carries explicit scaling lists."""
    bits = "".join(f"{b:08b}" for b in sps[1:].replace(b"\x00\x00\x03", b"\x00\x00"))
    assert int(bits[:8], 2) >= 100, "needs a high-profile SPS"
    pos = 24

    def ue() -> int:
        nonlocal pos
        zeros = bits.index("1", pos) - pos
        value = int(bits[pos + zeros : pos + 2 * zeros + 1], 2) - 1
        pos += 2 * zeros + 1
        return value

    ue()  # seq_parameter_set_id
    if ue() == 3:  # chroma_format_idc
        raise ValueError("4:4:4 has 12 lists")
    ue()  # bit_depth_luma_minus8
    ue()  # bit_depth_chroma_minus8
    pos += 1  # qpprime_y_zero_transform_bypass_flag
    assert bits[pos] == "0", "SPS already has scaling lists"
    rest = bits[pos + 1 :].rstrip("0")[:-1]  # without rbsp_stop_one_bit and alignment
    new = bits[:pos] + "1" + _scaling_lists() + rest + "1"
    new += "0" * (-len(new) % 8)
    rbsp = int(new, 2).to_bytes(len(new) // 8, "big")
    return sps[:1] + _escape(rbsp)


def replace_sps(stream: bytes, rewrite: Callable[[bytes], bytes]) -> bytes:
    nals = [n.rstrip(b"\x00") for n in stream.split(b"\x00\x00\x01")[1:]]
    return b"".join(SC + (rewrite(n) if n[0] & 0x1F == 7 else n) for n in nals)


FIXTURES: dict[str, Callable[[], bytes]] = {
    "baseline_320x240_aud.h264": lambda: encode(
        320, 240, 60, 30, "keyint=30:min-keyint=30:scenecut=0:repeat-headers=1:aud=1",
        profile="baseline",
    ),
    "main_1920x1080.h264": lambda: encode(
        1920, 1080, 6, 30, "keyint=3:min-keyint=3:scenecut=0:bframes=1",
        profile="main", crf=40,
    ),
    "slices4_640x360.h264": lambda: encode(
        640, 360, 30, 30, "keyint=10:min-keyint=10:scenecut=0:slices=4", profile="main"
    ),
    "high_cqm_352x288_25fps.h264": lambda: replace_sps(
        encode(
            352, 288, 25, 25, "keyint=12:min-keyint=12:scenecut=0:cqm=jvt:8x8dct=1",
            profile="high",
        ),
        with_seq_scaling_lists,
    ),
    "params_once_320x240.h264": lambda: params_only_once(
        encode(320, 240, 30, 30, "keyint=10:min-keyint=10:scenecut=0", profile="baseline")
    ),
    "interlaced_720x576.h264": lambda: encode(
        720, 576, 8, 25, "keyint=4:min-keyint=4:scenecut=0:interlaced=1:tff=1",
        profile="high", crf=38,
    ),
    "high_gray_161x121.h264": lambda: encode(
        161, 121, 5, 25, "keyint=5", profile="high", pix_fmt="gray"
    ),
    "high422_10bit_322x242.h264": lambda: encode(
        322, 242, 5, 25, "keyint=5", profile="high422", pix_fmt="yuv422p10le"
    ),
}  # fmt: skip


def main() -> None:
    for name, make in FIXTURES.items():
        data = make()
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
