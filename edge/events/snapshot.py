"""Event snapshots: the analysis picture, privacy masks black, the box drawn with its label."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge.detect.types import Box
from edge.detect.zones import ZoneSet

RgbArray = np.ndarray[Any, np.dtype[np.uint8]]

#: Box colours per label (RGB), readable on day and night (IR, grey) pictures.
COLOURS: dict[str, tuple[int, int, int]] = {
    "person": (255, 64, 64),
    "vehicle": (64, 160, 255),
    "pet": (64, 220, 96),
    "motion": (255, 200, 0),
    "other": (230, 230, 230),
}


def caption(label: str, obj: str | None, score: float) -> str:
    """E.g. "person 87%", "car 64%"; just "motion" (its score is a changed share)."""
    if label == "motion":
        return "motion"
    return f"{obj or label} {round(score * 100)}%"


def render_snapshot(
    rgb: RgbArray,
    box: Box | None,
    text: str,
    *,
    label: str = "other",
    zones: ZoneSet | None = None,
    quality: int = 80,
) -> bytes:
    """A JPEG of ``rgb`` with privacy masks applied and ``box`` (normalised) outlined and
    captioned with ``text``. The caller's array is never modified."""
    if zones is not None:
        rgb = zones.apply_masks(rgb)
    image = Image.fromarray(np.ascontiguousarray(rgb))
    if box is not None:
        w, h = image.size
        colour = COLOURS.get(label, COLOURS["other"])
        x0, y0 = round(box[0] * (w - 1)), round(box[1] * (h - 1))
        x1, y1 = round(box[2] * (w - 1)), round(box[3] * (h - 1))
        draw = ImageDraw.Draw(image)
        thickness = max(2, w // 240)
        draw.rectangle((x0, y0, max(x0, x1), max(y0, y1)), outline=colour, width=thickness)
        font = ImageFont.load_default(size=max(10, h // 20))
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 6, bottom - top + 4
        # Above the box when there is room, else inside its top edge.
        ty = y0 - th if y0 - th >= 0 else y0
        tx = min(max(0, x0), max(0, w - tw))
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=colour)
        draw.text((tx + 3 - left, ty + 2 - top), text, fill=(0, 0, 0), font=font)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()
