"""audit log: the chain's keys (seq, hash) unique among the entries that have them

Revision ID: 0010_audit_keys
Revises: 0009_ms365

An entry is appended with no `seq` and no `hash` (the seal sets them later), yet a UNIQUE
constraint's index holds a key for every row, NULL ones included, on SQLite and on
PostgreSQL: each turn's audit entry wrote a page of both indexes (2 of the ~18 pages an
SMS turn commits on SQLite) for keys no query or constraint uses. Partial unique indexes
(`WHERE ... IS NOT NULL`) keep the same uniqueness and still serve `audit verify`'s walk
(`WHERE seq IS NOT NULL ... ORDER BY seq`).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010_audit_keys"
down_revision: str | None = "0009_ms365"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = ("seq", "hash")


def _unsealed_index() -> None:
    op.create_index(
        "ix_audit_log_unsealed",
        "audit_log",
        ["id"],
        postgresql_where=sa.text("seq IS NULL"),
        sqlite_where=sa.text("seq IS NULL"),
    )


def upgrade() -> None:
    # SQLite's batch copies the table; the partial index is made again after it.
    op.drop_index("ix_audit_log_unsealed", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        for key in _KEYS:
            batch.drop_constraint(f"uq_audit_log_{key}", type_="unique")
    for key in _KEYS:
        op.create_index(
            f"uq_audit_log_{key}",
            "audit_log",
            [key],
            unique=True,
            postgresql_where=sa.text(f"{key} IS NOT NULL"),
            sqlite_where=sa.text(f"{key} IS NOT NULL"),
        )
    _unsealed_index()


def downgrade() -> None:
    for key in _KEYS:
        op.drop_index(f"uq_audit_log_{key}", table_name="audit_log")
    op.drop_index("ix_audit_log_unsealed", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        for key in _KEYS:
            batch.create_unique_constraint(f"uq_audit_log_{key}", [key])
    _unsealed_index()
