"""alembic environment: runs on the connection mpr.db.session passes in (or the URL)."""

from alembic import context
from sqlalchemy import create_engine

from mpr.db.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # `alembic` command line: MPR_DATABASE_URL or the default SQLite file
        from mpr.db.session import database_url

        with create_engine(database_url()).connect() as conn:
            _run_on(conn)
            conn.commit()
        return
    _run_on(connection)


def _run_on(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run()
