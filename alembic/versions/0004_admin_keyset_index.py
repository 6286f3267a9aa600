"""admin API: (agent, start, id) index so a page of one agent's appointments is one range scan

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_appointments_agent_start_id", "appointments", ["agent_id", "start_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_appointments_agent_start_id", table_name="appointments")
