"""Event ingest and queries on PostgreSQL: the migration matches the models, concurrent
deliveries of one event (as from several API processes) insert it once, versions stay
unique, pagination and replay work.

Runs against a fresh database in the PostgreSQL cluster the test run starts (Debian's
postgresql), or the one ``LIVECAM_TEST_POSTGRES_URL`` names.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select

from app.db import make_engine, make_session_factory
from app.errors import ApiError
from app.event_snapshots import EventSnapshotStore
from app.eventbus import EventBus
from app.events import (
    EventFilter,
    EventIngest,
    events_after_version,
    list_events,
    prune_events,
)
from app.migrations import upgrade
from app.models import Base, Camera, Event
from app.schemas import EventIn
from tests.app.event_helpers import T0, jpeg, message


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(engine)
    yield engine
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()


def test_postgres_ingest_is_idempotent_under_concurrency(engine: Engine, tmp_path: Path) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert list(compare_metadata(context, Base.metadata)) == []
    factory = make_session_factory(engine)
    with factory() as session:
        session.add_all(
            Camera(id=c, name=c, created_at=T0, state="offline") for c in ("door", "yard")
        )
        session.commit()
    store = EventSnapshotStore(tmp_path / "events")
    ingests = [EventIngest(factory, store, EventBus()) for _ in range(6)]
    rounds = 10
    for _ in range(rounds):
        event_id = str(uuid.uuid4())
        parsed = [
            EventIn.model_validate(message(event_id, i % 3, score=0.5 + (i % 3) / 10))
            for i in range(6)
        ]
        barrier = threading.Barrier(6)

        def deliver(
            i: int, parsed: list[EventIn] = parsed, barrier: threading.Barrier = barrier
        ) -> str:
            barrier.wait()
            return ingests[i].apply("door", parsed[i], jpeg(), T0).status

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(deliver, range(6)))
        assert "stored" in statuses
        with factory() as session:
            rows = session.scalars(select(Event).where(Event.id == event_id)).all()
            assert len(rows) == 1
            assert rows[0].last_seq == 2
            assert rows[0].snapshot_score == 0.7
    taken = str(uuid.uuid4())
    ingests[0].apply("door", EventIn.model_validate(message(taken)), None, T0)
    with pytest.raises(ApiError) as conflict:
        ingests[1].apply("yard", EventIn.model_validate(message(taken, 3)), None, T0)
    assert conflict.value.status_code == 409
    with factory() as session:
        versions = session.scalars(select(Event.version)).all()
        assert len(versions) == len(set(versions)) == rounds + 1
        first, cursor = list_events(session, EventFilter(cameras=("door",)), 4)
        second, _ = list_events(session, EventFilter(cameras=("door",)), 4, cursor)
        assert len(first) == 4
        assert not {e["id"] for e in first} & {e["id"] for e in second}
        replay = events_after_version(session, 0, EventFilter())
        assert [e["version"] for e in replay] == sorted(versions)
    pruned = prune_events(factory, store, T0 + timedelta(days=1))
    assert pruned.events == rounds + 1
    assert pruned.files == rounds
