"""edge.events.outbox: durable across kill -9, ordered, capped by dropping snapshots only."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.events.message import EventMessage
from edge.events.outbox import Outbox

S = 1_000_000
T0 = 1_700_000_000 * S
ROOT = Path(__file__).resolve().parents[3]


def message(
    event: str = "ev", seq: int = 0, phase: str = "start", snapshot: bytes | None = None
) -> EventMessage:
    return EventMessage(
        event_id=event,
        seq=seq,
        phase=phase,  # type: ignore[arg-type]
        label="person",
        object="person",
        score=0.8,
        box=(0.1, 0.2, 0.3, 0.4),
        zones=("Door",),
        started_us=T0,
        at_us=T0 + seq * S,
        ended_us=T0 + seq * S if phase == "end" else None,
        snapshot=snapshot,
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "cam" / "outbox.sqlite3")


def test_rows_come_out_oldest_first_with_their_snapshots(outbox: Outbox) -> None:
    outbox.enqueue([message("a", 0, snapshot=b"\xff\xd8jpeg"), message("b", 0)])
    outbox.enqueue([message("a", 1, "update")])
    first = outbox.oldest()
    assert first is not None
    assert (first.key, first.snapshot, first.attempts) == ("a:0", b"\xff\xd8jpeg", 0)
    assert first.body["zones"] == ["Door"]
    assert first.body["snapshot"] is None
    outbox.failed(first.id, "HTTP 503")
    again = outbox.oldest()
    assert again is not None
    assert (again.key, again.attempts) == ("a:0", 1), "the same row again"
    keys = []
    while (row := outbox.oldest()) is not None:
        keys.append(row.key)
        outbox.delete(row.id)
    assert keys == ["a:0", "b:0", "a:1"]
    assert outbox.depth().queued == 0


def test_the_database_is_wal_and_synchronous_full(outbox: Outbox) -> None:
    db = sqlite3.connect(outbox.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db.close()


def test_the_same_key_is_stored_once(outbox: Outbox) -> None:
    outbox.enqueue([message("a", 0)])
    outbox.enqueue([message("a", 0)])
    assert outbox.depth().queued == 1


def test_depth_reports_count_and_age(outbox: Outbox) -> None:
    assert outbox.depth().oldest_s is None
    outbox.enqueue([message("a", 0, snapshot=b"x" * 1000)])
    depth = outbox.depth(now=outbox.oldest().created_at + 42)  # type: ignore[union-attr]
    assert (depth.queued, depth.dead, depth.snapshot_bytes) == (1, 0, 1000)
    assert depth.oldest_s == pytest.approx(42)


def test_dead_rows_keep_the_reason(outbox: Outbox) -> None:
    outbox.enqueue([message("a", 0), message("b", 0)])
    row = outbox.oldest()
    assert row is not None
    outbox.bury(row.id, 422, "HTTP 422: box must be within 0..1")
    assert outbox.depth().dead == 1
    assert outbox.dead_rows() == [("a:0", 422, "HTTP 422: box must be within 0..1")]
    nxt = outbox.oldest()
    assert nxt is not None
    assert nxt.key == "b:0"


def test_the_cap_drops_the_oldest_snapshots_never_events(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=30_000, max_snapshots=1000)
    with caplog.at_level(logging.WARNING, "edge.outbox"):
        for i in range(10):
            outbox.enqueue([message(f"e{i}", 0, snapshot=bytes([i]) * 5000)])
    depth = outbox.depth()
    assert depth.queued == 10, "every event is kept"
    assert depth.snapshot_bytes <= 30_000
    rows = []
    while (row := outbox.oldest()) is not None:
        rows.append(row)
        outbox.delete(row.id)
    with_snapshots = [r.key for r in rows if r.snapshot is not None]
    assert with_snapshots == [f"e{i}:0" for i in range(5, 10)], "the newest keep theirs"
    assert outbox.snapshots_dropped == 5
    assert "outbox full camera=" in caplog.text
    assert "dropped the oldest snapshots" in caplog.text

    counted = Outbox(tmp_path / "n.sqlite3", max_snapshots=3)
    for i in range(5):
        counted.enqueue([message(f"e{i}", 0, snapshot=b"j")])
    assert counted.depth().snapshot_bytes == 3


def test_open_events_of_a_crashed_run_are_ended(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    first = Outbox(path)
    first.enqueue([message("open", 0), message("done", 0)])
    first.enqueue([message("open", 1, "update"), message("done", 1, "end")])
    first.close()  # the process dies here
    second = Outbox(path)
    assert second.close_orphans(T0 + 60 * S) == 1
    rows = []
    while (row := second.oldest()) is not None:
        rows.append(row.body)
        second.delete(row.id)
    end = rows[-1]
    assert (end["key"], end["phase"], end["label"]) == ("open:2", "end", "person")
    assert end["ended_at"] == "2023-11-14T22:13:21.000Z", "the time of its last message"
    assert end["at"] == "2023-11-14T22:14:20.000Z"
    assert second.close_orphans(T0 + 61 * S) == 0, "ended once"


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from edge.events.message import EventMessage
    from edge.events.outbox import Outbox

    outbox = Outbox(Path(sys.argv[1]))
    seq = 0
    while True:
        m = EventMessage(event_id="ev", seq=seq, phase="update", label="motion",
                         object=None, score=0.1, box=None, zones=(), started_us=0,
                         at_us=seq, snapshot=b"\\xff\\xd8" + bytes(2000))
        outbox.enqueue([m])
        print(m.key, flush=True)  # acknowledged: it is on disk
        seq += 1
    """
)


def test_every_acknowledged_row_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])},
    )
    acked: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            acked.append(line.strip())
            if len(acked) >= 200:
                break
        os.kill(child.pid, signal.SIGKILL)  # mid-write, most likely
    finally:
        child.kill()
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    outbox = Outbox(path)
    stored = []
    while (row := outbox.oldest()) is not None:
        stored.append(row.key)
        assert row.snapshot is not None
        assert len(row.snapshot) == 2002
        outbox.delete(row.id)
    assert stored[: len(acked)] == acked, "every acknowledged row, in order"
    assert stored == [f"ev:{i}" for i in range(len(stored))], "no hole, nothing half-written"


def test_bodies_are_plain_json(outbox: Outbox) -> None:
    outbox.enqueue([message("a", 0)])
    raw = outbox._db.execute("SELECT body FROM outbox").fetchone()[0]
    assert json.loads(raw)["key"] == "a:0"
