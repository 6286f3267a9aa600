"""audit log appended without a lock: entry MACs, sequence set by the seal, checkpoints

Revision ID: 0006_perf
Revises: 0006_dashboard

Existing entries get their MAC under the configured AUDIT_SIGNING_KEY and lose their old
chain links: the first seal chains them again in id order. Run `audit verify` on the old
version before upgrading if the old chain must be checked one last time.
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.db
from alembic import op
from app.security.audit import entry_mac, signing_key

revision: str = "0006_perf"
down_revision: str | None = "0006_dashboard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("mac", sa.String(64), nullable=True))
        batch.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=True)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=True)
        batch.create_unique_constraint("uq_audit_log_seq", ["seq"])
    _sign_existing_entries()
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("mac", existing_type=sa.String(64), nullable=False)
    op.create_index(
        "ix_audit_log_unsealed",
        "audit_log",
        ["id"],
        postgresql_where=sa.text("seq IS NULL"),
        sqlite_where=sa.text("seq IS NULL"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("sealed_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )


def _sign_existing_entries() -> None:
    bind = op.get_bind()
    key = signing_key(bind)
    log = sa.table(
        "audit_log",
        sa.column("id", sa.Integer()),
        sa.column("at", app.db.UTCDateTime()),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("subject", sa.String()),
        sa.column("details", sa.JSON()),
        sa.column("mac", sa.String()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(log).where(log.c.id > last).order_by(log.c.id).limit(_BATCH)
        ).all()
        if not rows:
            return
        updates = [
            {
                "entry_id": r.id,
                "mac": entry_mac(key, r.at, r.actor, r.action, r.subject, r.details),
            }
            for r in rows
        ]
        bind.execute(
            sa.update(log)
            .where(log.c.id == sa.bindparam("entry_id"))
            .values(mac=sa.bindparam("mac"), prev_hash=None, hash=None),
            updates,
        )
        last = rows[-1].id


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_index("ix_audit_log_unsealed", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("uq_audit_log_seq", type_="unique")
        batch.drop_column("seq")
        batch.drop_column("mac")
