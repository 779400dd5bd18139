"""Motion on the analysis pictures: is something moving, and where.

Cheap enough for a Pi Zero 2 W at 5 fps (numpy only, on a ~160 px wide grey copy):

1. grey + downscale: luma of the RGB picture, block-averaged to about ``work_width``
   pixels wide (averaging also removes most sensor noise), then a 3×3 box blur;
2. illumination compensation: each cell of a coarse grid is scaled so its median
   brightness matches the background's (interpolated smoothly between cells), so an
   auto-exposure step, a cloud or a lamp lighting part of the scene is not motion;
3. difference: pixels further than ``threshold`` grey levels from a running background
   (an exponential moving average) are "changed"; masked pixels never are;
4. noise suppression: a morphological open (3×3 erode, then dilate) removes speckle;
5. a frame where most of the picture changed even after compensation is a lighting
   change (a lamp, the IR cut filter): the background is reset to it, no motion;
6. a frame moves when the changed fraction reaches ``min_area``; motion starts after
   ``start_frames`` moving frames of the last ``window_frames`` and stops after
   ``quiet_s`` without a moving frame.

The background keeps learning under changed pixels, only more slowly, so something
that moved and stayed (a parked car) becomes background after a while.
"""

from __future__ import annotations

import collections
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.detect.types import Box

RgbArray = np.ndarray[Any, np.dtype[np.uint8]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
FloatArray = np.ndarray[Any, np.dtype[np.float32]]

#: Connected changed regions are found on a grid of cells this many work pixels wide.
CELL = 8
#: At most this many boxes per frame (largest first).
MAX_BOXES = 8
#: Brightness is corrected per cell of this grid (rows, columns).
GAIN_GRID = (3, 4)


@dataclass(frozen=True, slots=True)
class MotionSettings:
    """Tuning of the motion detector; the defaults suit a 320 px, 5 fps analysis stream."""

    threshold: int = 20  # grey levels a pixel must differ from the background
    min_area: float = 0.004  # changed fraction of the unmasked picture that counts as motion
    lighting_area: float = 0.6  # changed beyond this fraction: a lighting change, not motion
    start_frames: int = 2  # moving frames among the last ``window_frames`` to start
    window_frames: int = 4
    quiet_s: float = 3.0  # no moving frame for this long: motion stops
    background_s: float = 4.0  # time constant of the background's moving average
    work_width: int = 160  # the grey picture is reduced to about this width

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= 255:
            raise ValueError(f"motion threshold must be 1..255 grey levels, got {self.threshold}")
        if not 0 < self.min_area < self.lighting_area <= 1:
            raise ValueError(
                f"motion min_area must be > 0 and below lighting_area "
                f"({self.lighting_area}), got {self.min_area}"
            )
        if not 1 <= self.start_frames <= self.window_frames <= 100:
            raise ValueError(
                f"start_frames ({self.start_frames}) must be 1..window_frames "
                f"({self.window_frames}), window at most 100"
            )
        if not 0 < self.quiet_s <= 600:
            raise ValueError(f"motion quiet_s must be 0..600 s, got {self.quiet_s}")
        if not 0.1 <= self.background_s <= 3600:
            raise ValueError(f"background_s must be 0.1..3600 s, got {self.background_s}")
        if not 16 <= self.work_width <= 1920:
            raise ValueError(f"work_width must be 16..1920, got {self.work_width}")


@dataclass(frozen=True, slots=True)
class MotionResult:
    """What one analysis picture showed."""

    active: bool  # debounced: motion is going on
    moving: bool  # this picture alone had enough change
    fraction: float  # changed fraction of the unmasked picture (after noise suppression)
    boxes: tuple[Box, ...] = ()  # changed regions, normalised 0..1, largest first
    lighting: bool = False  # this picture was taken for a lighting change
    started: bool = False  # motion became active with this picture
    stopped: bool = False  # motion ended with this picture (or tick)

    @property
    def box(self) -> Box | None:
        """The union of all changed regions, or None."""
        if not self.boxes:
            return None
        return (
            min(b[0] for b in self.boxes),
            min(b[1] for b in self.boxes),
            max(b[2] for b in self.boxes),
            max(b[3] for b in self.boxes),
        )


def _blur3(image: FloatArray) -> FloatArray:
    """3×3 box blur with edge replication."""
    p = np.pad(image, 1, mode="edge")
    rows = p[:-2] + p[1:-1] + p[2:]
    out = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    return np.asarray(out * (1.0 / 9.0), dtype=np.float32)


def _erode3(mask: BoolArray) -> BoolArray:
    p = np.pad(mask, 1, mode="constant", constant_values=False)
    rows = p[:-2] & p[1:-1] & p[2:]
    return np.asarray(rows[:, :-2] & rows[:, 1:-1] & rows[:, 2:])


def _dilate3(mask: BoolArray) -> BoolArray:
    p = np.pad(mask, 1, mode="constant", constant_values=False)
    rows = p[:-2] | p[1:-1] | p[2:]
    return np.asarray(rows[:, :-2] | rows[:, 1:-1] | rows[:, 2:])


def _factor(width: int, work_width: int) -> int:
    return max(1, round(width / work_width))


def _reduce(plane: np.ndarray[Any, Any], factor: int) -> FloatArray:
    """Block-average ``plane`` by ``factor`` (edges that do not fill a block are cut)."""
    h, w = plane.shape[0] // factor * factor, plane.shape[1] // factor * factor
    if factor == 1:
        return np.asarray(plane[:h, :w], dtype=np.float32)
    # Strided sums in integers are several times faster than a float mean over axes.
    total = np.zeros((h // factor, w // factor), dtype=np.uint32)
    for dy in range(factor):
        for dx in range(factor):
            total += plane[dy:h:factor, dx:w:factor]
    return np.asarray(total, dtype=np.float32) * np.float32(1.0 / (factor * factor))


def grey(rgb: RgbArray) -> np.ndarray[Any, np.dtype[np.uint16]]:
    """Integer luma (BT.601 weights, ×256) of an RGB picture; cheap, no float."""
    r, g, b = (rgb[..., i].astype(np.uint16) for i in range(3))
    return np.asarray((r * 77 + g * 150 + b * 29) >> 8, dtype=np.uint16)


def _components(cells: BoolArray) -> list[list[tuple[int, int]]]:
    """8-connected groups of set cells (the grid is at most a few hundred cells)."""
    seen = np.zeros_like(cells)
    groups: list[list[tuple[int, int]]] = []
    rows, cols = cells.shape
    for start in zip(*np.nonzero(cells), strict=True):
        r0, c0 = int(start[0]), int(start[1])
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        group, pending = [], [(r0, c0)]
        while pending:
            r, c = pending.pop()
            group.append((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < rows and 0 <= cc < cols and cells[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        pending.append((rr, cc))
        groups.append(group)
    return groups


def changed_regions(changed: BoolArray, min_pixels: int) -> list[Box]:
    """Bounding boxes (normalised) of the connected changed regions, largest first."""
    h, w = changed.shape
    gh, gw = math.ceil(h / CELL), math.ceil(w / CELL)
    padded = np.zeros((gh * CELL, gw * CELL), dtype=bool)
    padded[:h, :w] = changed
    counts = padded.reshape(gh, CELL, gw, CELL).sum(axis=(1, 3))
    found: list[tuple[int, Box]] = []
    for group in _components(counts > 0):
        pixels = sum(int(counts[r, c]) for r, c in group)
        if pixels < min_pixels:
            continue
        cell_mask = np.zeros((gh, gw), dtype=bool)
        for r, c in group:
            cell_mask[r, c] = True
        region = np.repeat(np.repeat(cell_mask, CELL, axis=0), CELL, axis=1)[:h, :w] & changed
        ys = np.flatnonzero(region.any(axis=1))
        xs = np.flatnonzero(region.any(axis=0))
        box = (xs[0] / w, ys[0] / h, (xs[-1] + 1) / w, (ys[-1] + 1) / h)
        found.append((pixels, (float(box[0]), float(box[1]), float(box[2]), float(box[3]))))
    found.sort(key=lambda item: -item[0])
    return [box for _, box in found[:MAX_BOXES]]


@dataclass
class _Debounce:
    window: collections.deque[bool] = field(default_factory=collections.deque)
    active: bool = False
    last_moving_us: int | None = None


class MotionDetector:
    """One camera's motion state; feed it every analysis picture in capture order."""

    def __init__(self, settings: MotionSettings | None = None) -> None:
        self.settings = settings or MotionSettings()
        self._background: FloatArray | None = None
        self._last_us: int | None = None
        self._debounce = _Debounce(window=collections.deque(maxlen=self.settings.window_frames))
        self._mask_source: BoolArray | None = None
        self._valid: BoolArray | None = None
        self._weights: tuple[FloatArray, FloatArray] | None = None
        self._all_valid = True
        self.lighting_changes = 0

    @property
    def active(self) -> bool:
        """Whether motion is going on (debounced)."""
        return self._debounce.active

    def reset(self) -> None:
        """Forget the background and the debounce state (a new scene)."""
        self._background = None
        self._last_us = None
        self._debounce = _Debounce(window=collections.deque(maxlen=self.settings.window_frames))

    def _valid_pixels(self, excluded: BoolArray | None, shape: tuple[int, int]) -> BoolArray:
        """Work-size map of the pixels that count (not under a privacy mask)."""
        valid = self._valid_map(excluded, shape)
        self._all_valid = excluded is None
        return valid

    def _valid_map(self, excluded: BoolArray | None, shape: tuple[int, int]) -> BoolArray:
        if excluded is None:
            if self._valid is None or self._valid.shape != shape or self._mask_source is not None:
                self._valid = np.ones(shape, dtype=bool)
                self._mask_source = None
            return self._valid
        if excluded is not self._mask_source or self._valid is None or self._valid.shape != shape:
            factor = _factor(excluded.shape[1], self.settings.work_width)
            # A work pixel is excluded when any part of it is masked.
            masked = _reduce(excluded.astype(np.uint8), factor) > 0
            valid = np.ones(shape, dtype=bool)
            h, w = min(shape[0], masked.shape[0]), min(shape[1], masked.shape[1])
            valid[:h, :w] = ~masked[:h, :w]
            self._valid = valid
            self._mask_source = excluded
        return self._valid

    def update(
        self, rgb: RgbArray, capture_us: int, excluded: BoolArray | None = None
    ) -> MotionResult:
        """Analyse one picture (h, w, 3) taken at ``capture_us``; ``excluded`` (h, w) marks
        privacy-masked pixels, which never count as motion."""
        s = self.settings
        factor = _factor(rgb.shape[1], s.work_width)
        if excluded is not None and excluded.shape != rgb.shape[:2]:
            raise ValueError(f"mask shape {excluded.shape} does not match picture {rgb.shape}")
        current = _blur3(_reduce(grey(rgb), factor))
        valid = self._valid_pixels(excluded, (current.shape[0], current.shape[1]))
        dt_s = 0.2 if self._last_us is None else max(0.0, (capture_us - self._last_us) / 1e6)
        self._last_us = capture_us
        background = self._background
        if background is None or background.shape != current.shape:
            self._background = current
            return self._debounced(False, 0.0, (), capture_us, lighting=False)

        gain = self._gain_field(current, background, valid)
        diff = np.abs(current * gain - background)
        raw = (diff > s.threshold) & valid
        valid_count = max(1, int(valid.sum()))
        raw_fraction = int(raw.sum()) / valid_count

        alpha = 1.0 - math.exp(-dt_s / s.background_s) if dt_s > 0 else 0.0
        if raw_fraction > s.lighting_area:
            # The whole scene changed: lighting, not something moving. Start over from it.
            self._background = current
            self.lighting_changes += 1
            return self._debounced(False, 0.0, (), capture_us, lighting=True)

        changed = _dilate3(_erode3(raw))
        fraction = int(changed.sum()) / valid_count
        # Learn more slowly under changed pixels so a passer-by leaves no trail.
        rate = np.where(changed, np.float32(alpha / 4), np.float32(alpha))
        background += (current - background) * rate
        moving = fraction >= s.min_area
        boxes: tuple[Box, ...] = ()
        if moving:
            min_pixels = max(4, int(s.min_area * valid_count / 4))
            boxes = tuple(changed_regions(changed, min_pixels))
        return self._debounced(moving, fraction, boxes, capture_us, lighting=False)

    def _gain_field(
        self, current: FloatArray, background: FloatArray, valid: BoolArray
    ) -> FloatArray:
        """Per-pixel brightness correction: the median ratio of background to picture in
        each cell of a coarse grid, interpolated smoothly in between.

        A global gain undoes an exposure step; the grid also undoes light that falls
        unevenly (a lamp, a cloud's shadow). The median ignores a moving object that
        covers less than half a cell.
        """
        h, w = current.shape
        gy, gx = GAIN_GRID
        ch, cw = h // gy, w // gx
        if self._all_valid:
            # Every other pixel of every cell, all cells in one call.
            cells = (slice(0, ch * gy), slice(0, cw * gx))
            cur = np.median(current[cells].reshape(gy, ch, gx, cw)[:, ::2, :, ::2], axis=(1, 3))
            bg = np.median(background[cells].reshape(gy, ch, gx, cw)[:, ::2, :, ::2], axis=(1, 3))
            gains = np.clip((bg + 2.0) / (cur + 2.0), 0.25, 4.0).astype(np.float32)
        else:
            gains = np.ones((gy, gx), dtype=np.float32)
            for r in range(gy):
                for c in range(gx):
                    cell = (slice(r * ch, (r + 1) * ch), slice(c * cw, (c + 1) * cw))
                    ok = valid[cell]
                    if ok.sum() < 16:
                        continue  # (almost) all masked: nothing to compare
                    cur_level = float(np.median(current[cell][ok]))
                    bg_level = float(np.median(background[cell][ok]))
                    gains[r, c] = min(4.0, max(0.25, (bg_level + 2.0) / (cur_level + 2.0)))
        wy, wx = self._interpolation(h, w)
        return np.asarray(wy @ gains @ wx, dtype=np.float32)

    def _interpolation(self, h: int, w: int) -> tuple[FloatArray, FloatArray]:
        """Weights (h×rows, columns×w) that interpolate cell values bilinearly between cell
        centres (constant beyond the outer ones); made once per picture size."""
        if (
            self._weights is None
            or self._weights[0].shape[0] != h
            or self._weights[1].shape[1] != w
        ):
            gy, gx = GAIN_GRID
            cy = (np.arange(gy) + 0.5) * (h // gy)
            cx = (np.arange(gx) + 0.5) * (w // gx)
            wy = np.stack([np.interp(np.arange(h), cy, np.eye(gy)[k]) for k in range(gy)], axis=1)
            wx = np.stack([np.interp(np.arange(w), cx, np.eye(gx)[k]) for k in range(gx)])
            self._weights = (wy.astype(np.float32), wx.astype(np.float32))
        return self._weights

    def _debounced(
        self,
        moving: bool,
        fraction: float,
        boxes: tuple[Box, ...],
        capture_us: int,
        *,
        lighting: bool,
    ) -> MotionResult:
        d = self._debounce
        d.window.append(moving)
        if moving:
            d.last_moving_us = capture_us
        started = stopped = False
        if not d.active and sum(d.window) >= self.settings.start_frames:
            d.active = started = True
        elif d.active and self._quiet(capture_us):
            d.active = False
            stopped = True
        return MotionResult(
            active=d.active,
            moving=moving,
            fraction=fraction,
            boxes=boxes,
            lighting=lighting,
            started=started,
            stopped=stopped,
        )

    def _quiet(self, now_us: int) -> bool:
        last = self._debounce.last_moving_us
        return last is None or now_us - last >= self.settings.quiet_s * 1e6

    def tick(self, now_us: int) -> bool:
        """Without pictures (the source stalled): end motion once quiet; True if it ended."""
        d = self._debounce
        if d.active and self._quiet(now_us):
            d.active = False
            d.window.clear()
            return True
        return False


def synthetic_scene(width: int, height: int, seed: int = 0) -> RgbArray:
    """A textured, mid-grey still scene (for benchmarks and tests)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 90 + 40 * np.sin(xx / 23.0) * np.cos(yy / 31.0) + rng.normal(0, 6, (height, width))
    scene = np.clip(base, 0, 255).astype(np.uint8)
    return np.repeat(scene[:, :, None], 3, axis=2)


def measure_motion_ms(
    width: int = 320, height: int = 240, frames: int = 300, seed: int = 0
) -> tuple[float, float]:
    """Milliseconds per picture (p50, p95) of MotionDetector.update on a moving scene."""
    rng = np.random.default_rng(seed)
    scene = synthetic_scene(width, height, seed)
    detector = MotionDetector()
    times: list[float] = []
    box = max(8, width // 8)
    for i in range(frames):
        picture = scene.copy()
        x = (i * 4) % (width - box)
        picture[height // 3 : height // 3 + box, x : x + box] = 220
        noise = rng.integers(-4, 5, picture.shape[:2], dtype=np.int16)
        picture = np.clip(picture.astype(np.int16) + noise[:, :, None], 0, 255).astype(np.uint8)
        started = time.perf_counter()
        detector.update(picture, i * 200_000)
        times.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(times[10:], n=20)
    return statistics.median(times[10:]), quantiles[18]
