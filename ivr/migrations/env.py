"""Alembic environment: runs against the connection handed in by `ivr.migrate`."""
from __future__ import annotations

from alembic import context

from ivr.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs plain `alembic`
    raise SystemExit("run migrations with `ivr db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
