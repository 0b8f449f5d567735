"""Alembic environment: runs on the connection maildesk hands in (see store.db.upgrade)."""

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

from maildesk.store.models import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=Base.metadata,
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # the alembic CLI, for developers: alembic -x url=sqlite:///dev.db revision --autogenerate
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///dev.db")
    engine = engine_from_config({"sqlalchemy.url": url}, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
