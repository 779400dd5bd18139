"""Labelled real photographs for evaluating the detector, all from registry packages.

Sources: scikit-image's bundled pictures; Debian's ``darknet`` and ``opencv-doc`` packages
(fetched by scripts/setup-testdata.sh). Each picture is labelled with the kinds that are
really in it (person / vehicle / pet), by looking at it; pictures whose truth is a matter
of opinion (a painted figure, birds a few pixels big) are left out. vtest.avi (a campus
walkway filmed from above: pedestrians in every frame, a van and a car parked) and
tree.avi (a tree in the wind, nothing else) add security-camera-like frames.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RgbArray = np.ndarray[Any, np.dtype[np.uint8]]

#: file name → kinds present. darknet/ and opencv/ under the test data directory.
FILES: dict[str, frozenset[str]] = {
    "darknet/dog.jpg": frozenset({"pet", "vehicle"}),
    "darknet/eagle.jpg": frozenset({"pet"}),  # birds count as pets
    "darknet/giraffe.jpg": frozenset(),  # giraffe and zebra: "other"
    "darknet/horses.jpg": frozenset({"pet"}),
    "darknet/kite.jpg": frozenset({"person"}),  # small people on a beach
    "darknet/person.jpg": frozenset({"person", "pet"}),
    "opencv/Blender_Suzanne1.jpg": frozenset(),
    "opencv/Blender_Suzanne2.jpg": frozenset(),
    "opencv/HappyFish.jpg": frozenset(),
    "opencv/aloeL.jpg": frozenset(),  # a potted plant: "other"
    "opencv/aero1.jpg": frozenset(),
    "opencv/aero3.jpg": frozenset(),
    "opencv/apple.jpg": frozenset(),
    "opencv/baboon.jpg": frozenset(),
    "opencv/basketball1.png": frozenset({"person"}),
    "opencv/basketball2.png": frozenset({"person"}),
    "opencv/blox.jpg": frozenset(),
    "opencv/board.jpg": frozenset(),
    "opencv/box.png": frozenset(),
    "opencv/box_in_scene.png": frozenset(),
    "opencv/building.jpg": frozenset({"vehicle"}),  # a car behind the hedge
    "opencv/butterfly.jpg": frozenset(),
    "opencv/chicky_512.png": frozenset({"pet"}),
    "opencv/ela_original.jpg": frozenset(),
    "opencv/fruits.jpg": frozenset(),
    "opencv/graf1.png": frozenset(),
    "opencv/graf3.png": frozenset(),
    # A man mostly hidden behind the calibration board he holds: hard, real cases.
    "opencv/left01.jpg": frozenset({"person"}),
    "opencv/left06.jpg": frozenset({"person"}),
    "opencv/left07.jpg": frozenset({"person"}),
    "opencv/left13.jpg": frozenset({"person"}),
    "opencv/leuvenA.jpg": frozenset(),
    "opencv/leuvenB.jpg": frozenset({"vehicle"}),  # two bicycles by the wall
    "opencv/licenseplate_motion.jpg": frozenset({"vehicle"}),
    "opencv/messi5.jpg": frozenset({"person"}),
    "opencv/orange.jpg": frozenset(),
    "opencv/pca_test1.jpg": frozenset(),
    "opencv/pic1.png": frozenset(),
    "opencv/pic2.png": frozenset(),
    "opencv/pic3.png": frozenset(),
    "opencv/pic4.png": frozenset(),
    "opencv/pic5.png": frozenset(),
    "opencv/pic6.png": frozenset(),
    "opencv/rubberwhale1.png": frozenset(),
    "opencv/smarties.png": frozenset(),
    "opencv/squirrel_cls.jpg": frozenset(),  # not a COCO class
    "opencv/starry_night.jpg": frozenset(),
    "opencv/stuff.jpg": frozenset(),
}

#: scikit-image picture → kinds present.
SKIMAGE: dict[str, frozenset[str]] = {
    "astronaut": frozenset({"person"}),
    "camera": frozenset({"person"}),
    "chelsea": frozenset({"pet"}),
    "coffee": frozenset(),
    "rocket": frozenset(),
    "stereo_motorcycle": frozenset({"vehicle"}),
    "hubble_deep_field": frozenset(),
    "immunohistochemistry": frozenset(),
    "coins": frozenset(),
    "clock": frozenset(),
    "colorwheel": frozenset(),
    "moon": frozenset(),
    "brick": frozenset(),
    "retina": frozenset(),
}

#: video → (kinds in every frame, frame step); frames 0, step, 2·step, …
VIDEOS: dict[str, tuple[frozenset[str], int]] = {
    "opencv/vtest.avi": (frozenset({"person", "vehicle"}), 27),  # 30 of 795 frames
    "opencv/tree.avi": (frozenset(), 45),  # 10 of 444 frames
}


@dataclass(frozen=True)
class Photo:
    """One labelled picture."""

    name: str
    truth: frozenset[str]
    load: Callable[[], RgbArray]


def pictures_dir() -> Path:
    """Where scripts/setup-testdata.sh puts the Debian pictures and videos."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "livecam" / "testdata"


def _rgb(array: np.ndarray[Any, Any]) -> RgbArray:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3], dtype=np.uint8)


def _file(path: Path) -> Callable[[], RgbArray]:
    def load() -> RgbArray:
        from PIL import Image

        with Image.open(path) as im:
            return _rgb(np.asarray(im.convert("RGB")))

    return load


def skimage_picture(name: str) -> RgbArray:
    """One of scikit-image's bundled pictures as RGB (the left one of a stereo pair)."""
    from skimage import data

    value = getattr(data, name)()
    return _rgb(value[0] if isinstance(value, tuple) else value)


def _skimage(name: str) -> Callable[[], RgbArray]:
    return lambda: skimage_picture(name)


def _constant(frame: RgbArray) -> Callable[[], RgbArray]:
    return lambda: frame


def _frames(path: Path, step: int) -> Iterator[tuple[int, RgbArray]]:
    import av

    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % step == 0:
                yield index, _rgb(frame.to_ndarray(format="rgb24"))


def photos(directory: Path | None = None) -> list[Photo]:
    """Every labelled picture and sampled video frame; FileNotFoundError when the
    Debian test data is missing (the message names the setup script)."""
    root = directory or pictures_dir()
    if not (root / "darknet" / "person.jpg").is_file():
        raise FileNotFoundError(f"{root} has no test pictures: run scripts/setup-testdata.sh")
    out = [Photo(name, truth, _file(root / name)) for name, truth in FILES.items()]
    out += [Photo(f"skimage/{name}", truth, _skimage(name)) for name, truth in SKIMAGE.items()]
    for name, (truth, step) in VIDEOS.items():
        for index, frame in _frames(root / name, step):
            out.append(Photo(f"{name}#{index}", truth, _constant(frame)))
    return out
