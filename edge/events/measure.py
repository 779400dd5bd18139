"""Figures for the event path: ``python -m edge.events.measure`` prints them.

* motion: milliseconds per 320×240 analysis picture (p50/p95), see
  edge.detect.motion.measure_motion_ms;
* analysis CPU: a synthetic 1280×720 30 fps camera runs for a while with analysis
  pictures (5 fps, 320 px) feeding motion; the CPU time of the analysis worker and the
  motion thread is read per thread, in % of one core. Measured twice: from the
  source's own pictures (like a Pi's lores stream) and by decoding its H.264 (like an
  RTSP camera).

The bench (bench/) calls these functions; nothing here runs in the edge itself.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from edge.analysis import AnalysisStage
from edge.detect.motion import measure_motion_ms
from edge.detect.zones import ZoneState
from edge.events.outbox import Outbox
from edge.events.pipeline import DetectSettings, EventPipeline
from edge.sources.base import CapturedFrame
from edge.sources.synthetic import SyntheticSource


@dataclass(frozen=True)
class AnalysisCpu:
    """CPU of the analysis path of one camera, in % of one core."""

    mode: str  # "pictures" or "decode"
    seconds: float
    analysis_frames: int
    analysis_cpu_percent: float  # decode (if any) + scale + RGB conversion
    motion_cpu_percent: float  # masks + motion + tracker
    source_cpu_percent: float  # the synthetic camera itself (render + x264), for scale
    motion_ms_p50: float | None


def _thread_cpu_s(native_ids: dict[str, int | None]) -> dict[str, float]:
    times = {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}
    return {name: times.get(tid or -1, 0.0) for name, tid in native_ids.items()}


def measure_analysis_cpu(
    *,
    decode: bool = False,
    seconds: float = 20.0,
    width: int = 1280,
    height: int = 720,
    fps: int = 30,
    analysis_fps: float = 5.0,
    analysis_width: int = 320,
) -> AnalysisCpu:
    """Run a synthetic camera with analysis + motion for ``seconds`` and read thread CPU."""
    source = SyntheticSource(name="measure", width=width, height=height, fps=fps)
    stage = AnalysisStage("measure", decode=decode)
    if not decode:
        source.set_picture_sink(stage)
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite3")
        settings = DetectSettings(fps=analysis_fps, width=analysis_width)
        pipeline = EventPipeline("measure", settings, ZoneState("measure"), outbox, None)
        output = stage.add_output(
            "events", pipeline.offer, fps=analysis_fps, max_width=analysis_width
        )
        stop = threading.Event()

        def sink(frame: CapturedFrame) -> None:
            stage.on_frame(frame)

        source_thread = threading.Thread(target=source.run, args=(sink, stop), daemon=True)
        stage.start()
        pipeline.start()
        output.set(True)
        source_thread.start()
        try:
            time.sleep(2.0)  # warm up: encoder, decoder at its first keyframe, background
            ids = {
                "analysis": stage._thread.native_id if stage._thread else None,
                "motion": pipeline._threads[0].native_id,
                "source": source_thread.native_id,
            }
            frames0 = pipeline.stats.frames
            before = _thread_cpu_s(ids)
            started = time.monotonic()
            time.sleep(seconds)
            after = _thread_cpu_s(ids)
            elapsed = time.monotonic() - started
            frames = pipeline.stats.frames - frames0
            motion_ms = pipeline.health()["motion_ms"]
        finally:
            stop.set()
            source_thread.join(10)
            stage.close()
            pipeline.close()
            outbox.close()

    def pct(name: str) -> float:
        return round((after[name] - before[name]) / elapsed * 100, 1)

    return AnalysisCpu(
        mode="decode" if decode else "pictures",
        seconds=round(elapsed, 1),
        analysis_frames=frames,
        analysis_cpu_percent=pct("analysis"),
        motion_cpu_percent=pct("motion"),
        source_cpu_percent=pct("source"),
        motion_ms_p50=motion_ms,
    )


def main() -> None:
    """Print the figures."""
    p50, p95 = measure_motion_ms()
    print(f"motion per 320x240 picture: p50 {p50:.2f} ms  p95 {p95:.2f} ms")
    for decode in (False, True):
        cpu = measure_analysis_cpu(decode=decode)
        print(
            f"synthetic 1280x720@30, analysis 5 fps x 320 px from {cpu.mode}: "
            f"analysis {cpu.analysis_cpu_percent}% + motion {cpu.motion_cpu_percent}% of one "
            f"core ({cpu.analysis_frames} pictures in {cpu.seconds} s, motion p50 "
            f"{cpu.motion_ms_p50} ms); the camera itself {cpu.source_cpu_percent}%"
        )


if __name__ == "__main__":
    main()
