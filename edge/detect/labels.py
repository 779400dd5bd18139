"""COCO class names and the kinds livecam alerts on (person, vehicle, pet, other)."""

from __future__ import annotations

from collections.abc import Mapping

#: The 80 COCO detection classes in the order detectors trained on COCO number them.
COCO80: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip

VEHICLES = frozenset({"bicycle", "car", "motorcycle", "bus", "train", "truck", "boat", "airplane"})
#: Animals a camera at a house sees: pets and the ones that wander into gardens.
PETS = frozenset({"dog", "cat", "bird", "horse", "sheep", "cow"})

KIND_BY_OBJECT: Mapping[str, str] = {
    name: (
        "person"
        if name == "person"
        else "vehicle"
        if name in VEHICLES
        else "pet"
        if name in PETS
        else "other"
    )
    for name in COCO80
}

#: Score thresholds per kind, tuned on the labelled photographs in bench/photos.py
#: (`./run bench detect` prints precision/recall at these).
DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "person": 0.4,
    "vehicle": 0.4,
    "pet": 0.4,
    "other": 0.5,
}


def kind_of(object_name: str) -> str:
    """The alert kind of a COCO class name ("other" for names it does not know)."""
    return KIND_BY_OBJECT.get(object_name, "other")
