"""Alembic's environment, run by `assistant.store.migrate` with the connection in
`config.attributes["connection"]` (online), or a URL in the `sqlalchemy.url` option (offline: `--sql`).

Batch mode is on for SQLite, which cannot ALTER most things in place: alembic copies the table instead.
"""

from __future__ import annotations

from alembic import context

from assistant.store.tables import Base

config = context.config
target = Base.metadata

if context.is_offline_mode():
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run the migrations through `cxa db upgrade` (assistant.store.migrate), not alembic's CLI")
    context.configure(
        connection=connection,
        target_metadata=target,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
