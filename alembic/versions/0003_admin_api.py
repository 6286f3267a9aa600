"""admin API: verification target user, indexes for admin listings and audit queries

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("phone_verifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            "fk_phone_verifications_user_id_users", "users", ["user_id"], ["id"],
            ondelete="CASCADE",
        )
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor", "at"])
    op.create_index("ix_appointments_start_id", "appointments", ["start_at", "id"])
    op.create_index("ix_conversations_created", "conversations", ["created_at", "id"])
    op.create_index("ix_messages_created", "messages", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_created", table_name="messages")
    op.drop_index("ix_conversations_created", table_name="conversations")
    op.drop_index("ix_appointments_start_id", table_name="appointments")
    op.drop_index("ix_audit_log_actor_at", table_name="audit_log")
    with op.batch_alter_table("phone_verifications", schema=None) as batch_op:
        batch_op.drop_constraint("fk_phone_verifications_user_id_users", type_="foreignkey")
        batch_op.drop_column("user_id")
