"""Pre-encoded test media: H.264 files made the way a camera's hardware encoder makes them.

Tests and benchmarks feed these to the file source, so "the source's bitrate and GOP"
are known exactly and can be checked at the subscriber.
"""

from __future__ import annotations

import fractions
from pathlib import Path
from typing import Any

import av
import numpy as np


def make_h264_file(
    path: Path,
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 30,
    seconds: float = 4.0,
    gop: int = 30,
    bitrate_kbps: int = 1500,
    profile: str = "baseline",
) -> Path:
    """Encode a moving test picture to ``path`` (.mp4/.mkv container or raw .h264).

    Each frame's luma differs visibly from the previous one and encodes the frame number
    in a bar code, so frames can be told apart after decoding.
    """
    if width % 4 or height % 4:
        raise ValueError(f"test media size must be a multiple of 4, got {width}x{height}")
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.suffix == ".h264"
    container = av.open(str(path), "w", format="h264" if raw else None)
    stream = container.add_stream("libx264", rate=fps)
    stream.width = width
    stream.height = height
    stream.pix_fmt = "yuv420p"
    stream.bit_rate = bitrate_kbps * 1000
    stream.codec_context.time_base = fractions.Fraction(1, fps)
    stream.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "profile": profile,
        "x264-params": (
            f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:"
            f"vbv-maxrate={bitrate_kbps}:vbv-bufsize={bitrate_kbps}:nal-hrd=cbr:force-cfr=1"
        ),
    }
    yy, xx = np.mgrid[0:height, 0:width]
    ramp = ((xx * 2 + yy) % 256).astype(np.uint8)
    rng = np.random.default_rng(7)
    # Mild noise keeps the encoder near its target bitrate, like a real sensor does.
    noise = rng.integers(0, 24, size=(8, height, width), dtype=np.uint8)
    frames = round(seconds * fps)
    for i in range(frames):
        y = ramp + np.uint8((i * 5) % 256) + noise[i % 8]
        box = height // 4
        x0 = (i * 7) % (width - box)
        y[box : 2 * box, x0 : x0 + box] = 240
        bars = [(i >> b) & 1 for b in range(12)]
        bw = width // 12
        for b, bit in enumerate(bars):
            y[height - 16 :, b * bw : (b + 1) * bw] = 230 if bit else 20
        u = np.full((height // 2, width // 2), 100 + (i % 50), np.uint8)
        v = np.full((height // 2, width // 2), 150, np.uint8)
        frame = av.VideoFrame.from_ndarray(
            np.concatenate([y, u.reshape(-1, width), v.reshape(-1, width)]), format="yuv420p"
        )
        frame.pts = i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return path


def decode_luma(path: Path) -> list[np.ndarray[Any, np.dtype[np.uint8]]]:
    """Every frame's luma plane of ``path``, in decode order, as PyAV's decoder sees it."""
    out: list[np.ndarray[Any, np.dtype[np.uint8]]] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            # The raw Y plane: format="gray" would rescale limited range to full range.
            planes = np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)
            out.append(planes[: frame.height].copy())
    return out


def stream_stats(path: Path) -> tuple[int, int, float]:
    """(frames, keyframes, mean bitrate kbit/s) of the file's video stream."""
    frames = keyframes = size = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            frames += 1
            keyframes += int(packet.is_keyframe)
            size += packet.size
    return frames, keyframes, size * 8 / 1000 / (frames / fps)


def empty_yard(width: int, height: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A fixed camera's view of a garden (RGB, float 0..255): grass brightening towards
    the camera, with a little texture; nothing in it."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack(
        [
            (60 + 40 * yy / height + 10 * np.sin(xx / 23.0)),
            (110 + 50 * yy / height + 8 * np.cos(xx / 31.0)),
            (50 + 20 * yy / height),
        ],
        axis=-1,
    )


def make_scene_clip(
    path: Path,
    visitor: np.ndarray[Any, np.dtype[np.uint8]] | None,
    *,
    width: int = 640,
    height: int = 480,
    fps: int = 15,
    empty_s: float = 6.0,
    visit_s: float = 6.0,
    after_s: float = 4.0,
    gop_s: float = 1.0,
    seed: int = 11,
) -> Path:
    """A fixed-camera scene: ``empty_s`` of an empty yard, then ``visitor`` (an RGB photo,
    e.g. of a person) standing in it for ``visit_s``, then empty again for ``after_s``.

    The yard has sensor noise and a slow lighting drift, so motion detection has
    something to ignore. With ``visitor=None`` the clip is all yard (a no-object scene).
    """
    rng = np.random.default_rng(seed)
    yard = empty_yard(width, height)
    scene = yard.copy()
    if visitor is not None:
        from PIL import Image

        vh = int(height * 0.8)
        vw = int(visitor.shape[1] * vh / visitor.shape[0])
        person = np.asarray(Image.fromarray(visitor).resize((vw, vh)), np.float64)
        x0, y0 = (width - vw) // 2, height - vh - 8
        scene[y0 : y0 + vh, x0 : x0 + vw] = person
    path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.time_base = fractions.Fraction(1, fps)
    gop = max(1, round(gop_s * fps))
    stream.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1",
    }
    total = round((empty_s + visit_s + after_s) * fps)
    for i in range(total):
        t = i / fps
        showing = visitor is not None and empty_s <= t < empty_s + visit_s
        base = scene if showing else yard
        light = 1.0 + 0.08 * np.sin(2 * np.pi * t / 20.0)  # a cloud passing
        noisy = base * light + rng.normal(0, 3.0, size=(height, width, 1))
        frame = av.VideoFrame.from_ndarray(np.clip(noisy, 0, 255).astype(np.uint8), format="rgb24")
        frame.pts = i
        for packet in stream.encode(frame.reformat(format="yuv420p")):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return path
