"""Background work on one mechanism: periodic jobs, run in-process (embedded) or by
procrastinate workers on PostgreSQL (production). See docs/architecture.md."""
