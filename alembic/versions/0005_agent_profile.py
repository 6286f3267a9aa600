"""agents: address, services description, FAQ and voice mode

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("address", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("services_description", sa.Text(), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("faq", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("voice_mode", sa.String(16), nullable=False, server_default="gather")
        )


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        for column in ("voice_mode", "faq", "services_description", "address"):
            batch.drop_column(column)
