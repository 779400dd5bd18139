"""Event clips: one uploaded video per event, its bytes in the media store.

Revision ID: 0300_clips
Revises: 0200_events
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0300_clips"
down_revision: str | None = "0200_events"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "clips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("camera_id", sa.String(length=32), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_clips_camera_id", "clips", ["camera_id"])
    op.create_index("ix_clips_started_at", "clips", ["started_at"])
    op.create_index("ix_clips_upload_id", "clips", ["upload_id"])


def downgrade() -> None:
    op.drop_index("ix_clips_upload_id", table_name="clips")
    op.drop_index("ix_clips_started_at", table_name="clips")
    op.drop_index("ix_clips_camera_id", table_name="clips")
    op.drop_table("clips")
