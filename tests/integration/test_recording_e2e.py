"""Recording and clips end to end: a file camera's H.264 → the edge's recorder (fMP4
segments) and clip cutter (pre-roll + event + post-roll) → the upload queue → the API →
a clip that plays from the event, with ranges; and a recorder killed with SIGKILL leaves
segments that still play, and goes on recording when it starts again.

Real parts: livekit-server, the API process, one edge process (`python -m edge run`), the
packaged detector; the clip and segments are decoded with PyAV.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

from bench.photos import skimage_picture
from edge.detect.models import ModelMissing, model_path
from edge.record.repair import top_level_boxes
from scripts.devstack import (
    EdgeCamera,
    ManagedProcess,
    Stack,
    create_camera,
    start_edge,
    write_edge_config,
)
from scripts.media import make_scene_clip
from tests.livestack import wait_status

pytestmark = pytest.mark.live

DETECT = {"enabled": True, "interval_s": 0.5}
RECORD = {"segment_s": 4, "pre_roll_s": 3, "post_roll_s": 2, "fsync_s": 0.5}


@dataclass
class Porch:
    camera_id: str
    config: Path
    data_dir: Path
    edge: ManagedProcess


@pytest.fixture(scope="module")
def porch(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Porch]:
    try:
        model_path()
    except ModelMissing as exc:
        pytest.fail(str(exc))
    work = tmp_path_factory.mktemp("record")
    visit = make_scene_clip(work / "visit.mp4", skimage_picture("astronaut"))
    cam_id, cred = create_camera(stack.api, "Porch")
    camera = EdgeCamera(cam_id, cred, {"kind": "file", "path": str(visit)}, DETECT, RECORD)
    config = write_edge_config(work / "edge.toml", stack.api.url, [camera], heartbeat_interval_s=1)
    edge = start_edge(work, config, name="edge-record")
    stack.edges.append(edge)
    wait_status(stack, cam_id, lambda s: s["online"], timeout=60)
    yield Porch(cam_id, config, work / "edge-data", edge)
    edge.stop()


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def wait_for_clip(stack: Stack, camera_id: str, timeout: float = 120.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        with stack.api.client() as c:
            last = c.get("/api/events", params={"camera": camera_id}).json()["events"]
        for event in last:
            if event["label"] == "person" and event.get("clip"):
                return event
        time.sleep(0.5)
    raise AssertionError(f"no person event with a clip after {timeout}s: {last}")


def decoded_frames(data: bytes) -> tuple[int, bool, float]:
    """(frames, first frame is a keyframe, seconds from first to last frame)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        frames = 0
        first_key = False
        times: list[float] = []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if frames == 0:
                first_key = bool(packet.is_keyframe)
            for frame in packet.decode():
                frames += 1
                if frame.time is not None:
                    times.append(float(frame.time))
    return frames, first_key, (max(times) - min(times)) if times else 0.0


def test_a_person_event_gets_a_clip_that_plays_and_seeks(stack: Stack, porch: Porch) -> None:
    event = wait_for_clip(stack, porch.camera_id)
    clip = event["clip"]
    assert isinstance(clip, dict)
    with stack.api.client() as c:
        whole = c.get(str(clip["url"]))
        part = c.get(str(clip["url"]), headers={"Range": "bytes=100-1099"})
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(whole.content).hexdigest() == clip["sha256"]
    assert part.status_code == 206
    assert part.content == whole.content[100:1100]
    frames, first_key, span_s = decoded_frames(whole.content)
    assert first_key, "a clip starts on a keyframe"
    # Pre-roll (≈3 s) + the visit (6 s in the scene) + post-roll (2 s), at 15 fps.
    assert span_s >= 6.0, (frames, span_s)
    assert frames >= 6 * 15
    # The clip starts before the event did: the pre-roll shows the approach.
    started = parse_iso(str(clip["started_at"]))
    assert started < parse_iso(str(event["started_at"]))
    assert parse_iso(str(event["started_at"])) - started <= dt.timedelta(seconds=5)
    status = wait_status(
        stack,
        porch.camera_id,
        lambda s: (s.get("heartbeat") or {}).get("recording") is True,
    )
    beat = status["heartbeat"]
    assert beat["record_bytes"] > 0
    assert beat["record_free_bytes"] > 0
    assert beat["uploads_dead"] == 0


def segments(data_dir: Path, camera_id: str) -> list[Path]:
    return sorted((data_dir / camera_id / "segments").rglob("*.mp4"))


def complete_fragments(path: Path) -> int:
    """Whole ``moof`` + ``mdat`` pairs at the top level of a segment being written."""
    boxes, _ = top_level_boxes(path)
    return sum(1 for box in boxes if box.type == b"mdat")


def playable_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_segments_roll_and_survive_kill_9(stack: Stack, porch: Porch) -> None:
    deadline = time.monotonic() + 60
    while len(segments(porch.data_dir, porch.camera_id)) < 3:
        assert time.monotonic() < deadline, segments(porch.data_dir, porch.camera_id)
        time.sleep(0.2)
    closed = segments(porch.data_dir, porch.camera_id)[0]
    # 4-s segments at 15 fps, rolled on 1-s keyframes.
    assert 3 * 15 <= playable_frames(closed) <= 6 * 15
    # Pull the plug once the open segment has two whole fragments (1-s GOPs) on disk.
    deadline = time.monotonic() + 30
    while True:
        cut = segments(porch.data_dir, porch.camera_id)[-1]
        if complete_fragments(cut) >= 2:
            break
        assert time.monotonic() < deadline, "the open segment never got two fragments"
        time.sleep(0.05)
    porch.edge.kill()
    assert playable_frames(cut) >= 2 * 15, "a killed segment plays up to its last fragment"
    before = set(segments(porch.data_dir, porch.camera_id))
    porch.edge.start()
    deadline = time.monotonic() + 60
    while not set(segments(porch.data_dir, porch.camera_id)) - before:
        assert time.monotonic() < deadline, "recording did not resume after the restart"
        assert porch.edge.running, porch.edge.log_tail()
        time.sleep(0.2)
    # The cut segment was kept, and still plays, after the recorder's repair at start.
    assert cut.exists()
    assert playable_frames(cut) >= 2 * 15
    wait_status(stack, porch.camera_id, lambda s: s["online"], timeout=60)
