"""The migrations build the schema the models describe, on the suite's database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from app.db import Base


def test_migrated_schema_has_every_table_column_and_index_of_the_models(db_engine: Engine):
    # A model change without its migration (or the reverse) would run in tests, which
    # migrate, yet differ from what `create_all` and the code's queries assume.
    with db_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
