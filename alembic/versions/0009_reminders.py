"""notifications: planned send time and how early a send may start (issue 11)

Revision ID: 0009_reminders
Revises: 0006_jobs
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009_reminders"
down_revision: str | None = "0006_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("send_at", UTC_DT, nullable=True))
        batch.add_column(sa.Column("not_before", UTC_DT, nullable=True))
    op.execute("UPDATE notifications SET send_at = due_at")
    with op.batch_alter_table("notifications") as batch:
        batch.alter_column("send_at", existing_type=UTC_DT, nullable=False)
        batch.create_index("ix_notifications_status_send", ["status", "send_at"])


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ix_notifications_status_send")
        batch.drop_column("not_before")
        batch.drop_column("send_at")
