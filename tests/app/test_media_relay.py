"""app.media: the in-process MJPEG relay — fan-out, demand, snapshots, storage, framing."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.media import (
    BOUNDARY,
    MJPEG_CONTENT_TYPE,
    EdgeLink,
    Jpeg,
    JpegDemand,
    LocalMediaRelay,
    Viewer,
    multipart_part,
)
from scripts.mjpeg import MultipartParser, boundary_of


def jpeg(n: int, size: int = 64) -> bytes:
    body = n.to_bytes(4, "big") * (size // 4)
    return b"\xff\xd8\xff\xe0" + body + b"\xff\xd9"


class WallClock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


@pytest.fixture
def relay(tmp_path: Path, wall: WallClock) -> LocalMediaRelay:
    return LocalMediaRelay(tmp_path / "snapshots", fps=5, max_width=640, wall=wall)


async def next_demand(link: EdgeLink, timeout: float = 5.0) -> JpegDemand:
    demands: AsyncIterator[JpegDemand] = link.demands()
    return await asyncio.wait_for(anext(demands), timeout)


# --- fan-out -------------------------------------------------------------------------


async def test_fast_viewers_get_every_frame_and_a_stalled_one_only_the_newest(
    relay: LocalMediaRelay,
) -> None:
    async def read(viewer: Viewer, count: int) -> list[int]:
        seqs: list[int] = []
        while len(seqs) < count:
            got = await viewer.next()
            assert got is not None
            seqs.append(got.seq)
        return seqs

    async with (
        relay.watch("cam") as fast1,
        relay.watch("cam") as fast2,
        relay.watch("cam") as stalled,
    ):
        readers = [asyncio.create_task(read(v, 300)) for v in (fast1, fast2)]
        for n in range(300):
            assert relay.publish("cam", jpeg(n))
            await asyncio.sleep(0)  # one turn of the loop: readers wake up
        received = await asyncio.wait_for(asyncio.gather(*readers), 10)
        assert received == [list(range(1, 301))] * 2
        assert stalled.dropped == 299
        newest = await stalled.next()
        assert newest is not None
        assert newest.seq == 300
        assert newest.data == jpeg(299)


async def test_viewers_that_never_read_hold_one_jpeg_at_most(relay: LocalMediaRelay) -> None:
    size = 100_000
    tracemalloc.start()
    try:
        async with (
            relay.watch("cam") as v1,
            relay.watch("cam") as v2,
            relay.watch("cam") as v3,
        ):
            relay.publish("cam", jpeg(0, size))
            await asyncio.sleep(0)
            baseline = tracemalloc.get_traced_memory()[0]
            for n in range(1, 500):
                relay.publish("cam", jpeg(n, size))  # 50 MB in total
            grown = tracemalloc.get_traced_memory()[0] - baseline
            assert (v1.dropped, v2.dropped, v3.dropped) == (499, 499, 499)
    finally:
        tracemalloc.stop()
    assert grown < 3 * size, f"memory grew by {grown} bytes"


async def test_a_joining_viewer_gets_the_newest_jpeg_only_if_recent(
    relay: LocalMediaRelay, wall: WallClock
) -> None:
    relay.publish("cam", jpeg(1))
    async with relay.watch("cam") as viewer:
        first = await asyncio.wait_for(viewer.next(), 1)
        assert first is not None
        assert first.seq == 1
    wall.now += 10
    async with relay.watch("cam") as late:
        relay.publish("cam", jpeg(2))
        got = await asyncio.wait_for(late.next(), 1)
        assert got is not None
        assert got.seq == 2, "a 10 s old picture is not passed off as live"


def test_pictures_that_are_not_jpegs_are_refused(relay: LocalMediaRelay) -> None:
    assert not relay.publish("cam", b"GIF89a....")
    assert not relay.publish("cam", b"")
    assert relay.latest("cam") is None


# --- demand --------------------------------------------------------------------------


async def test_edge_is_asked_for_jpegs_while_anyone_watches(relay: LocalMediaRelay) -> None:
    link = relay.attach_edge("cam")
    assert await next_demand(link) == JpegDemand(want=False, fps=5, max_width=640)
    assert relay.edge_connected("cam")
    async with relay.watch("cam"):
        assert await next_demand(link) == JpegDemand(want=True, fps=5, max_width=640)
        assert relay.wanted("cam")
        async with relay.watch("cam"):
            pass  # a second viewer comes and goes: still wanted
        assert relay.wanted("cam")
    assert (await next_demand(link)).want is False
    assert not relay.wanted("cam")
    relay.detach_edge(link)
    assert not relay.edge_connected("cam")


async def test_a_snapshot_keeps_the_jpegs_coming_for_a_while(tmp_path: Path) -> None:
    relay = LocalMediaRelay(tmp_path, snapshot_demand_s=0.3, fresh_wait_s=0.05)
    link = relay.attach_edge("cam")
    assert (await next_demand(link)).want is False
    await relay.snapshot("cam")
    assert (await next_demand(link)).want is True
    assert relay.wanted("cam")
    # The window ends on its own (a timer, not a request) and the edge is told.
    assert (await next_demand(link)).want is False
    assert not relay.wanted("cam")


async def test_a_late_edge_learns_the_current_demand_on_connect(relay: LocalMediaRelay) -> None:
    async with relay.watch("cam"):
        link = relay.attach_edge("cam")
        assert (await next_demand(link)).want is True


# --- snapshots -----------------------------------------------------------------------


async def test_snapshot_without_any_picture_is_none(relay: LocalMediaRelay) -> None:
    assert await relay.snapshot("cam") is None


async def test_snapshot_waits_for_a_fresh_jpeg_when_the_newest_is_stale(
    relay: LocalMediaRelay, wall: WallClock
) -> None:
    relay.attach_edge("cam")
    relay.publish("cam", jpeg(1))
    fresh = await relay.snapshot("cam")
    assert fresh is not None
    assert fresh.seq == 1, "fresh enough: served at once"
    wall.now += 5
    waiting = asyncio.create_task(relay.snapshot("cam"))
    await asyncio.sleep(0)
    assert not waiting.done()
    relay.publish("cam", jpeg(2))
    got = await asyncio.wait_for(waiting, 5)
    assert got is not None
    assert got.seq == 2


async def test_snapshot_gives_up_waiting_and_serves_the_old_one(tmp_path: Path) -> None:
    wall = WallClock()
    relay = LocalMediaRelay(tmp_path, fresh_wait_s=0.05, wall=wall)
    relay.attach_edge("cam")
    relay.publish("cam", jpeg(1))
    wall.now += 30
    got = await relay.snapshot("cam")
    assert got is not None
    assert got.seq == 1
    assert got.age_s(wall.now) == 30


async def test_newest_jpeg_is_stored_at_most_every_interval_and_on_shutdown(
    tmp_path: Path, wall: WallClock
) -> None:
    directory = tmp_path / "snapshots"
    relay = LocalMediaRelay(directory, wall=wall, save_interval_s=3600)
    relay.publish("cam", jpeg(1))
    await asyncio.gather(*relay._saving)
    stored = directory / "cam.jpg"
    assert stored.read_bytes() == jpeg(1)
    assert stored.stat().st_mtime == wall.now
    assert not [p for p in directory.iterdir() if p.name != "cam.jpg"], "no temp files left"
    wall.now += 1
    relay.publish("cam", jpeg(2))
    assert not relay._saving
    assert stored.read_bytes() == jpeg(1), "not again within the interval"
    await relay.aclose()
    assert stored.read_bytes() == jpeg(2)

    # A new process: the camera is offline, its last picture is still there.
    again = LocalMediaRelay(directory, wall=wall)
    assert again.last_snapshot_at("cam") is not None
    assert again.last_snapshot_at("cam") == Jpeg(b"", wall.now, 0).received_datetime
    served = await again.snapshot("cam")
    assert served is not None
    assert (served.data, served.seq) == (jpeg(2), 0)
    assert again.last_snapshot_at("other") is None


async def test_a_departing_edge_leaves_its_last_picture_on_disk(tmp_path: Path) -> None:
    relay = LocalMediaRelay(tmp_path, save_interval_s=3600)
    link = relay.attach_edge("cam")
    relay.publish("cam", jpeg(1))
    relay.publish("cam", jpeg(2))
    relay.detach_edge(link)
    await asyncio.gather(*relay._saving)
    assert (tmp_path / "cam.jpg").read_bytes() == jpeg(2)


async def test_forget_closes_everything_and_removes_the_file(tmp_path: Path) -> None:
    relay = LocalMediaRelay(tmp_path)
    link = relay.attach_edge("cam")
    relay.publish("cam", jpeg(1))
    await asyncio.gather(*relay._saving)
    async with relay.watch("cam") as viewer:
        assert await viewer.next() is not None
        relay.forget("cam")
        assert await asyncio.wait_for(viewer.next(), 1) is None
    assert link.close_code == 4401
    assert [d async for d in link.demands()] == []
    assert not (tmp_path / "cam.jpg").exists()
    assert relay.latest("cam") is None


async def test_disconnect_edges_works_from_another_thread(relay: LocalMediaRelay) -> None:
    link = relay.attach_edge("cam")
    await asyncio.to_thread(relay.disconnect_edges, "cam")
    await asyncio.wait_for(_closed(link), 5)
    assert link.close_code == 4401


async def _closed(link: EdgeLink) -> None:
    async for _ in link.demands():
        pass


# --- framing -------------------------------------------------------------------------


def test_multipart_part_framing() -> None:
    part = multipart_part(Jpeg(b"\xff\xd8JPEG\xff\xd9", 0.0, 7))
    assert (
        part
        == (
            f"--{BOUNDARY}\r\n"
            "Content-Type: image/jpeg\r\n"
            "Content-Length: 8\r\n"
            "X-Frame-Seq: 7\r\n"
            "\r\n"
        ).encode()
        + b"\xff\xd8JPEG\xff\xd9\r\n"
    )
    assert f"multipart/x-mixed-replace; boundary={BOUNDARY}" == MJPEG_CONTENT_TYPE


def test_a_multipart_client_reads_the_parts_back_from_any_chunking() -> None:
    bodies = [os.urandom(n) for n in (1, 500, 4096, 70_000)]
    # Bodies that contain the boundary and CRLFs must survive (Content-Length decides).
    bodies.append(f"\r\n--{BOUNDARY}\r\n\r\n".encode() * 3)
    stream = b"".join(multipart_part(Jpeg(b, 0.0, i + 1)) for i, b in enumerate(bodies))
    for chunk in (1, 7, 1000, len(stream)):
        parser = MultipartParser(boundary_of(MJPEG_CONTENT_TYPE))
        parts = []
        for i in range(0, len(stream), chunk):
            parts += parser.feed(stream[i : i + chunk])
        assert [p.body for p in parts] == bodies
        assert [p.seq for p in parts] == list(range(1, len(bodies) + 1))
        assert {p.headers["content-type"] for p in parts} == {"image/jpeg"}
