"""calendar watches: push channels, subscriptions and sync cursors (issue 15)

Revision ID: 0009_ms365
Revises: 0009_reminders
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009_ms365"
down_revision: str | None = "0009_reminders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calendar_watches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "connection_id",
            sa.String(32),
            sa.ForeignKey("calendar_connections.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("channel_id", sa.String(128), unique=True),
        sa.Column("resource_id", sa.String(256)),
        sa.Column("token_hash", sa.String(64)),
        sa.Column("expires_at", UTC_DT),
        sa.Column("sync_token", sa.Text()),
        sa.Column("last_synced_at", UTC_DT),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("updated_at", UTC_DT, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("calendar_watches")
