"""Detection benchmark, in four parts.

1. The object detector on labelled real photographs: precision and recall per kind
   (person, vehicle, pet) at the configured thresholds, counted per picture (a true
   positive is a picture that has the kind and where the detector reports it). Pictures:
   bench/photos.py (scikit-image, Debian's darknet and opencv-doc; `scripts/setup-testdata.sh`
   fetches the Debian ones). Inference time per frame and model load time.
2. False events: the edge's whole event pipeline (motion, detector, tracker, outbox) on a
   synthetic yard with noise, clouds, exposure steps and a bush in the wind, and nothing
   else, replayed for ``--minutes`` of 5 fps analysis: events per hour.
3. Edge CPU of motion + detection at 5 fps analysis on real video with people walking the
   whole time (vtest.avi), so detection runs at its full rate.
4. Live, on the real stack: from a person appearing in the camera's picture to the event
   on an SSE client (bench/detect_live.py).

    ./run bench detect [--threads 2] [--runs 30] [--minutes 30] [--loops 6] [--no-live]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.detect_live import measure_live
from bench.detect_pipeline import empty_yard_pictures, replay, video_pictures
from bench.photos import Photo, RgbArray, photos, pictures_dir
from edge.detect.centernet import CenterNetDetector
from edge.detect.labels import DEFAULT_THRESHOLDS
from edge.detect.models import model_path
from edge.events.pipeline import DetectSettings

KINDS = ("person", "vehicle", "pet")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "livecam" / "bench"
TARGET_PRECISION, TARGET_RECALL = 0.9, 0.8


@dataclass
class KindScore:
    """Picture-level counts for one kind."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class PhotoReport:
    """Precision/recall per kind over a set of pictures, and inference times."""

    pictures: int
    positives: dict[str, int]
    scores: dict[str, KindScore]
    infer_ms: list[float]


def evaluate_photos(
    detector: CenterNetDetector, pictures: Sequence[Photo] | None = None
) -> PhotoReport:
    """Runs the detector on every picture and counts hits per kind."""
    pictures = list(pictures) if pictures is not None else photos()
    scores = {kind: KindScore() for kind in KINDS}
    positives = dict.fromkeys(KINDS, 0)
    times: list[float] = []
    for photo in pictures:
        found = {d.kind for d in detector.detect(photo.load())}
        times.append(detector.last_ms)
        for kind in KINDS:
            have, said = kind in photo.truth, kind in found
            positives[kind] += have
            score = scores[kind]
            if have and said:
                score.tp += 1
            elif said:
                score.fp += 1
                score.false_alarms.append(photo.name)
            elif have:
                score.fn += 1
                score.misses.append(photo.name)
    return PhotoReport(len(pictures), positives, scores, times)


def print_report(report: PhotoReport, thresholds: Mapping[str, float]) -> bool:
    """Prints the table; True when the person target is met."""
    print(f"pictures: {report.pictures} labelled (photos + sampled video frames)")
    print("kind      threshold  positives  precision  recall   misses / false alarms")
    for kind in KINDS:
        s = report.scores[kind]
        print(
            f"{kind:<9} {thresholds[kind]:>9.2f}  {report.positives[kind]:>9}  "
            f"{s.precision:>9.3f}  {s.recall:>6.3f}   "
            f"{', '.join(s.misses) or '-'} / {', '.join(s.false_alarms) or '-'}"
        )
    person = report.scores["person"]
    ok = person.precision >= TARGET_PRECISION and person.recall >= TARGET_RECALL
    print(
        f"target: person precision ≥ {TARGET_PRECISION} at recall ≥ {TARGET_RECALL}: "
        + ("met" if ok else "MISSED")
    )
    return ok


def time_inference(path_threads: int, runs: int, picture: RgbArray) -> tuple[float, list[float]]:
    """(load ms, per-run inference ms) for a fresh detector with ``path_threads``."""
    started = time.perf_counter()
    detector = CenterNetDetector(model_path(), threads=path_threads)
    load_ms = (time.perf_counter() - started) * 1000
    detector.detect(picture)  # first run allocates
    times = []
    for _ in range(runs):
        detector.detect(picture)
        times.append(detector.last_ms)
    return load_ms, times


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(prog="./run bench detect", description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30, help="timed inferences per setting")
    parser.add_argument("--minutes", type=float, default=30.0, help="no-object scene length")
    parser.add_argument("--loops", type=int, default=6, help="visits in the live part")
    parser.add_argument("--no-live", action="store_true", help="skip the live part")
    args = parser.parse_args()
    detector = CenterNetDetector(model_path(), threads=args.threads)
    print(
        f"livecam detection: CenterNet MobileNetV3 (COCO, 512×512) on onnxruntime, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    report = evaluate_photos(detector)
    ok = print_report(report, detector.thresholds or DEFAULT_THRESHOLDS)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:380, 200:440] = 180
    print("inference (512×512 input, steady state):")
    for threads in sorted({1, args.threads}):
        load_ms, times = time_inference(threads, args.runs, frame)
        print(
            f"  threads={threads}: p50 {statistics.median(times):.1f} ms  "
            f"p95 {pct(times, 0.95):.1f} ms  (model load {load_ms:.0f} ms)"
        )
    ok = pipeline_parts(detector, args.minutes) and ok
    if not args.no_live:
        ok = live_part(args.loops) and ok
    return 0 if ok else 1


def pipeline_parts(detector: CenterNetDetector, minutes: float) -> bool:
    """Parts 2 and 3; True when the no-object scene made no object event."""
    settings = DetectSettings()
    quiet = replay(detector, empty_yard_pictures(minutes), settings)
    hours = quiet.media_s / 3600
    objects = sum(n for label, n in quiet.events.items() if label != "motion")
    print(
        f"no-object scene ({minutes:.0f} min of 5 fps: noise, clouds ±15 %, an exposure "
        f"step every 2 min, a bush in the wind):"
    )
    print(
        f"  object events {objects} ({objects / hours:.1f}/h), motion events "
        f"{quiet.events.get('motion', 0)} ({quiet.events.get('motion', 0) / hours:.1f}/h), "
        f"detector runs {quiet.detections_run}; pipeline CPU {quiet.cpu_percent:.1f} % of one "
        f"core, motion p50 {quiet.motion_ms_p50} ms"
    )
    busy = replay(detector, video_pictures(pictures_dir() / "opencv/vtest.avi", 60), settings)
    print(
        f"people walking all the time (vtest.avi, {busy.media_s:.0f} s at 5 fps, detection "
        f"every {settings.interval_s:g} s while motion lasts):"
    )
    print(
        f"  pipeline CPU {busy.cpu_percent:.1f} % of one core (motion p50 "
        f"{busy.motion_ms_p50} ms, detection p50 {busy.detect_ms_p50} ms × "
        f"{busy.detections_run} runs), events started {busy.events}"
    )
    print(
        "target: zero false object events in the no-object scene: "
        + ("met" if objects == 0 else "MISSED")
    )
    return objects == 0


def live_part(loops: int) -> bool:
    """Part 4; True when detected-picture → SSE p50 ≤ 1 s."""
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="detect-", dir=CACHE))
    result = measure_live(work, loops)
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"live (livekit-server + API + edge, file camera, {loops} visits of a person; "
        f"{result.visits} visits seen in the video, {result.events} person events):"
    )
    if not result.detect_to_sse:
        print("  no person event arrived: MISSED")
        return False
    for name, values in (
        ("person appears in the picture → event on SSE", result.appear_to_sse),
        ("picture the detector found her in → event on SSE", result.detect_to_sse),
    ):
        if values:
            print(f"  {name}: p50 {statistics.median(values):.2f} s  max {max(values):.2f} s")
    p50 = statistics.median(result.detect_to_sse)
    print(
        "target: event-to-browser p50 ≤ 1 s after detection (measured from the analysed "
        "picture's capture, so it includes the inference): " + ("met" if p50 <= 1.0 else "MISSED")
    )
    return p50 <= 1.0


if __name__ == "__main__":
    sys.exit(main())
