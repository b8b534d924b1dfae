"""Engine, sessions and schema migration for the results database.

SQLite file by default (`MPR_DATA_DIR/mpr.db`); PostgreSQL with
`MPR_DATABASE_URL=postgresql+psycopg://user@host/db` (psycopg 3). The schema is brought to
the newest alembic revision on first use, under a lock, so concurrent processes starting
on a fresh database do not race.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mpr import settings
from mpr.errors import InputError, MprError

MIGRATIONS = Path(__file__).with_name("migrations")
SUPPORTED = ("sqlite", "postgresql")


def database_url() -> str:
    return os.environ.get("MPR_DATABASE_URL") or f"sqlite:///{settings.data_dir() / 'mpr.db'}"


def sqlite_missing(url: str | None = None) -> bool:
    """True for a SQLite database whose file does not exist yet (reading it finds nothing;
    opening it would create it)."""
    try:
        parsed = make_url(url or database_url())
    except ArgumentError:
        return False
    return parsed.get_backend_name() == "sqlite" and bool(parsed.database) and parsed.database != ":memory:" \
        and not Path(parsed.database).exists()


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


def get_engine(url: str | None = None) -> Engine:
    """An engine with the schema at the newest revision; one per URL per process."""
    return _engine(url or database_url())


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(f"MPR_DATABASE_URL {url!r}: not a database URL") from None
    if parsed.get_backend_name() not in SUPPORTED:
        raise InputError(f"MPR_DATABASE_URL {redact(url)}: unsupported database (want sqlite or postgresql+psycopg)")
    try:
        engine = _create(parsed)
        migrate(engine)
    except NoSuchModuleError as exc:
        raise InputError(f"MPR_DATABASE_URL {redact(url)}: no driver ({exc})") from None
    except OperationalError as exc:
        raise MprError(f"database {redact(url)} unavailable: {str(exc.orig).strip().splitlines()[0]}") from None
    return engine


def _create(url) -> Engine:
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL: readers never wait for the writer; busy_timeout: writers queue instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine) -> None:
    """alembic upgrade head, unless the database is there already."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    with _migration_lock(engine) as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            return
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


@contextmanager
def _migration_lock(engine: Engine):
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(4242001)"))
            try:
                yield connection
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(4242001)"))
                connection.commit()
        return
    database = engine.url.database
    lock_path = Path(f"{database}.lock") if database and database != ":memory:" else None
    with open(lock_path, "w") if lock_path else open(os.devnull, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with engine.connect() as connection:
            yield connection


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back on any error."""
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    with factory.begin() as session:
        yield session


def reset_engines() -> None:
    """Forget cached engines (tests switching databases)."""
    _engine.cache_clear()
