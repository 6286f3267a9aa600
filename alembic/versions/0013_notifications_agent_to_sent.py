"""notifications: index for the reminder read-along of every SMS turn

Revision ID: 0013_notifications_agent_to
Revises: 0011_booking_keys
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_notifications_agent_to"
down_revision: str | None = "0011_booking_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every SMS turn looks for the latest reminder sent to its caller by its agent; the
    # agent-only index made that a scan of the agent's whole notification history.
    op.create_index(
        "ix_notifications_agent_to_sent", "notifications", ["agent_id", "to_e164", "sent_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_agent_to_sent", table_name="notifications")
