"""notifications, reminder settings and attendance (issue 11)

Revision ID: 0006_jobs
Revises: 0006_perf
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006_jobs"
down_revision: str | None = "0006_perf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "agent_id",
            sa.String(32),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "appointment_id",
            sa.String(32),
            sa.ForeignKey("appointments.id", ondelete="SET NULL"),
        ),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("to_e164", sa.String(20), nullable=False),
        sa.Column("from_e164", sa.String(20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("due_at", UTC_DT, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200)),
        sa.Column("dedupe_key", sa.String(160), nullable=False, unique=True),
        sa.Column("provider_sid", sa.String(64), unique=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", UTC_DT),
        sa.Column("sent_at", UTC_DT),
        sa.Column("status_at", UTC_DT),
        sa.Column("created_at", UTC_DT, nullable=False),
    )
    op.create_index("ix_notifications_status_due", "notifications", ["status", "due_at"])
    op.create_index(
        "ix_notifications_agent_created", "notifications", ["agent_id", "created_at", "id"]
    )
    op.create_index("ix_notifications_appointment", "notifications", ["appointment_id"])
    op.create_index(
        "ix_notifications_sender_due", "notifications", ["from_e164", "status", "due_at"]
    )
    op.create_table(
        "reminder_settings",
        sa.Column(
            "agent_id",
            sa.String(32),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("reminders_enabled", sa.Boolean(), nullable=False),
        sa.Column("offsets_minutes", sa.JSON(), nullable=False),
        sa.Column("quiet_start", sa.String(5), nullable=False),
        sa.Column("quiet_end", sa.String(5), nullable=False),
        sa.Column("confirmations_enabled", sa.Boolean(), nullable=False),
        sa.Column("owner_notifications", sa.Boolean(), nullable=False),
        sa.Column("daily_agenda_time", sa.String(5)),
        sa.Column("reminder_calls", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "sms_sender_pace",
        sa.Column("from_e164", sa.String(20), primary_key=True),
        sa.Column("next_free_at", UTC_DT, nullable=False),
    )
    op.create_table(
        "appointment_attendance",
        sa.Column(
            "appointment_id",
            sa.String(32),
            sa.ForeignKey("appointments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("confirmed_at", UTC_DT),
        sa.Column("confirmed_via", sa.String(16)),
        sa.Column("outcome", sa.String(16)),
        sa.Column("outcome_at", UTC_DT),
    )


def downgrade() -> None:
    op.drop_table("appointment_attendance")
    op.drop_table("sms_sender_pace")
    op.drop_table("reminder_settings")
    op.drop_index("ix_notifications_sender_due", "notifications")
    op.drop_index("ix_notifications_appointment", "notifications")
    op.drop_index("ix_notifications_agent_created", "notifications")
    op.drop_index("ix_notifications_status_due", "notifications")
    op.drop_table("notifications")
