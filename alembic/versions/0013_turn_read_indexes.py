"""indexes for two reads of every turn: the reminder read-along and the caller's name

Revision ID: 0013_turn_read_indexes
Revises: 0011_booking_keys
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_turn_read_indexes"
down_revision: str | None = "0011_booking_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every SMS turn looks for the latest reminder sent to its caller by its agent; the
    # agent-only index made that a scan of the agent's whole notification history.
    op.create_index(
        "ix_notifications_agent_to_sent", "notifications", ["agent_id", "to_e164", "sent_at"]
    )
    # Every turn reads the name the caller last gave the agent: the newest of their
    # bookings, found in index order instead of sorting all of them.
    op.create_index(
        "ix_appointments_agent_contact_created",
        "appointments",
        ["agent_id", "contact_e164", "created_at"],
    )
    op.drop_index("ix_appointments_agent_contact", table_name="appointments")


def downgrade() -> None:
    op.create_index(
        "ix_appointments_agent_contact", "appointments", ["agent_id", "contact_e164"]
    )
    op.drop_index("ix_appointments_agent_contact_created", table_name="appointments")
    op.drop_index("ix_notifications_agent_to_sent", table_name="notifications")
