"""Detection end to end: a person walks into a camera's picture → the edge's motion and
COCO detector → its outbox → the API → an SSE client, with the snapshot; a camera that
sees only noise and a passing cloud makes no object event.

Real parts throughout: livekit-server, the API process, one edge process with two file
cameras (H.264 clips made here: a yard, then the astronaut photograph standing in it),
the packaged detector (`./run test` sets it up).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from bench.photos import skimage_picture
from edge.detect.models import ModelMissing, model_path
from scripts.devstack import EdgeCamera, Stack, create_camera, start_edge, write_edge_config
from scripts.media import make_scene_clip
from scripts.sse import EventStreamReader
from tests.livestack import wait_status

pytestmark = pytest.mark.live

DETECT = {"enabled": True, "interval_s": 0.5}


@pytest.fixture(scope="module")
def cameras(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    try:
        model_path()
    except ModelMissing as exc:
        pytest.fail(str(exc))
    work = tmp_path_factory.mktemp("detect")
    visit = make_scene_clip(work / "visit.mp4", skimage_picture("astronaut"))
    empty = make_scene_clip(work / "empty.mp4", None, seed=5)
    cams = {}
    entries = []
    for name, clip in (("Porch", visit), ("Yard", empty)):
        cam_id, cred = create_camera(stack.api, name)
        cams[name] = cam_id
        entries.append(EdgeCamera(cam_id, cred, {"kind": "file", "path": str(clip)}, DETECT))
    config = write_edge_config(work / "edge.toml", stack.api.url, entries, heartbeat_interval_s=1)
    edge = start_edge(work, config, name="edge-detect")
    stack.edges.append(edge)
    for cam_id in cams.values():
        wait_status(stack, cam_id, lambda s: s["online"], timeout=60)
    yield cams
    edge.stop()


def test_a_person_becomes_a_person_event_on_the_sse_stream(
    stack: Stack, cameras: dict[str, str]
) -> None:
    sse = EventStreamReader(stack.api.url, stack.api.admin_key)
    try:
        porch = cameras["Porch"]
        # The clip loops every 16 s, the visitor standing in it from 6 s to 12 s.
        _, event = sse.wait_for(
            lambda e: e["camera_id"] == porch and e["label"] == "person", timeout=90
        )
    finally:
        sse.close()
    assert event["object"] == "person"
    assert event["score"] >= 0.4
    x0, y0, x1, y1 = event["box"]
    # She stands in the middle of the picture, from near its top to its bottom.
    assert 0.1 < x0 < 0.5 < x1 < 0.9, event["box"]
    assert y0 < 0.4 < 0.8 < y1, event["box"]
    with stack.api.client() as c:
        stored = c.get(f"/api/events/{event['id']}").json()
        assert stored["camera_id"] == porch
        assert stored["label"] == "person"
        shot = c.get(f"/api/events/{event['id']}/snapshot.jpg")
    assert shot.status_code == 200
    assert shot.content[:3] == b"\xff\xd8\xff"
    with Image.open(__import__("io").BytesIO(shot.content)) as im:
        assert im.width >= 320


def test_noise_and_a_passing_cloud_make_no_object_event(
    stack: Stack, cameras: dict[str, str]
) -> None:
    # By now the yard camera has run at least as long as the porch took to see a person.
    wait_status(stack, cameras["Yard"], lambda s: s["online"])
    with stack.api.client() as c:
        events = c.get("/api/events", params={"camera": cameras["Yard"]}).json()["events"]
    assert [e for e in events if e["label"] in ("person", "vehicle", "pet")] == []


def test_the_edge_reports_its_detection_figures(stack: Stack, cameras: dict[str, str]) -> None:
    status = wait_status(
        stack,
        cameras["Porch"],
        lambda s: (s.get("heartbeat") or {}).get("detect_ms") is not None,
        timeout=60,
    )
    beat = status["heartbeat"]
    assert beat["events_queued"] >= 0
    assert 0 < beat["motion_ms"] < 50
    assert 0 < beat["detect_ms"] < 5000
    assert Path(model_path()).is_file()
