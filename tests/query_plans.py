"""The database's plan of a statement, as text, for tests that a hot read uses its index."""

from __future__ import annotations

from sqlalchemy import Engine, Executable, text


def plan_of(engine: Engine, statement: Executable) -> str:
    """EXPLAIN (PostgreSQL, sequential scans off: the suite's tables are nearly empty and
    the planner would rightly prefer them) or EXPLAIN QUERY PLAN (SQLite) of `statement`
    with its parameters rendered in."""
    sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL enable_seqscan = off"))
            rows = connection.exec_driver_sql("EXPLAIN " + sql).all()
        else:
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
    return "\n".join(str(row) for row in rows)
