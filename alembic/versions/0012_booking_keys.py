"""bookings: no index a booking writes for nothing

Revision ID: 0011_booking_keys
Revises: 0010_audit_keys

A booking's commit wrote a page of every index of the appointment and its notifications
(~33 pages on SQLite). Two served nothing: `ix_appointments_agent_start` (agent_id,
start_at) is the prefix of `ix_appointments_agent_start_id` (agent_id, start_at, id),
which answers every query it did; and the UNIQUE constraint on `notifications.
provider_sid` indexed the NULL key of every planned row (the SID comes when it is
sent). The SID is unique among the rows that have one, as before, and the status
callback's look-up by SID uses the partial index.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011_booking_keys"
down_revision: str | None = "0010_audit_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_appointments_agent_start", table_name="appointments")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("uq_notifications_provider_sid", type_="unique")
    op.create_index(
        "uq_notifications_provider_sid",
        "notifications",
        ["provider_sid"],
        unique=True,
        postgresql_where=sa.text("provider_sid IS NOT NULL"),
        sqlite_where=sa.text("provider_sid IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_notifications_provider_sid", table_name="notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.create_unique_constraint("uq_notifications_provider_sid", ["provider_sid"])
    op.create_index("ix_appointments_agent_start", "appointments", ["agent_id", "start_at"])
