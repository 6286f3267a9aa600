"""The migrations build the schema the models describe, on the suite's database."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from app.db import Base


def _ours(item: Any, _name: Any, kind: str, _reflected: bool, _compare_to: Any) -> bool:
    """The app's own tables and their indexes: the job engine (procrastinate on
    PostgreSQL) installs a schema of its own beside them, which no model describes."""
    table = item if kind == "table" else getattr(item, "table", None)
    return table is None or table.name in Base.metadata.tables


def test_migrated_schema_has_every_table_column_and_index_of_the_models(db_engine: Engine):
    # A model change without its migration (or the reverse) would run in tests, which
    # migrate, yet differ from what `create_all` and the code's queries assume.
    with db_engine.connect() as connection:
        options = {"compare_type": True, "include_object": _ours}
        context = MigrationContext.configure(connection, opts=options)
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
