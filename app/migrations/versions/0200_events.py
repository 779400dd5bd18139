"""Events (with their zones and a change counter) and per-camera zones and masks.

Revision ID: 0200_events
Revises: 0100_push
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0200_events"
down_revision: str | None = "0100_push"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("camera_id", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("object", sa.String(length=40), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("best_score", sa.Float(), nullable=False),
        sa.Column("box", sa.JSON(), nullable=True),
        sa.Column("zones", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.String(length=200), nullable=True),
        sa.Column("snapshot_score", sa.Float(), nullable=True),
        sa.Column("snapshot_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_events_camera_started", "events", ["camera_id", "started_at"])
    op.create_index("ix_events_label_started", "events", ["label", "started_at"])
    op.create_index("ix_events_started_at", "events", ["started_at"])
    op.create_index("ix_events_version", "events", ["version"], unique=True)
    op.create_table(
        "event_zones",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("zone", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("event_id", "zone"),
    )
    op.create_index("ix_event_zones_zone", "event_zones", ["zone"])
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(counters, [{"name": "events", "value": 0}])
    op.create_table(
        "camera_zones",
        sa.Column("camera_id", sa.String(length=32), nullable=False),
        sa.Column("zones", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("camera_id"),
    )


def downgrade() -> None:
    op.drop_table("camera_zones")
    op.drop_table("counters")
    op.drop_index("ix_event_zones_zone", table_name="event_zones")
    op.drop_table("event_zones")
    op.drop_index("ix_events_version", table_name="events")
    op.drop_index("ix_events_started_at", table_name="events")
    op.drop_index("ix_events_label_started", table_name="events")
    op.drop_index("ix_events_camera_started", table_name="events")
    op.drop_table("events")
