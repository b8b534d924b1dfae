"""Engine, sessions and schema migration for the results database.

SQLite file by default (`MPR_DATA_DIR/mpr.db`); PostgreSQL with
`MPR_DATABASE_URL=postgresql+psycopg://user@host/db` (psycopg 3). The schema is brought to
the newest alembic revision on first use, under a lock, so concurrent processes starting
on a fresh database do not race.

A database that does not answer is retried with exponential backoff and jitter
(`MPR_DB_ATTEMPTS`, default 4 attempts over about 4 s) before the run fails with one
line. Every retried unit is a whole transaction, so a retry never half-applies.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import tenacity
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mpr import settings
from mpr.errors import InputError, MprError

MIGRATIONS = Path(__file__).with_name("migrations")
SUPPORTED = ("sqlite", "postgresql")
log = logging.getLogger("mpr.progress.db")  # the CLI prints mpr.progress on stderr
T = TypeVar("T")


def _attempts() -> int:
    return settings.env_int("MPR_DB_ATTEMPTS", 4, 1, 20)


def _unavailable(url: str, exc: OperationalError) -> MprError:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["no answer"]
    return MprError(f"database {redact(url)} unavailable: {reason[0]}")


def retried(fn: Callable[..., T], *args, url: str | None = None, **kwargs) -> T:
    """fn(*args, **kwargs), retried on connection-level errors; then one clear MprError."""
    url = url or database_url()

    def warn(state: tenacity.RetryCallState) -> None:
        log.warning("database %s unavailable (attempt %d of %d), retrying in %.1f s", redact(url),
                    state.attempt_number, _attempts(), state.next_action.sleep if state.next_action else 0)

    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(_attempts()), reraise=True,
                                 wait=tenacity.wait_exponential_jitter(initial=0.5, max=8, jitter=0.5),
                                 retry=tenacity.retry_if_exception_type(OperationalError), before_sleep=warn)
    try:
        return retrying(fn, *args, **kwargs)
    except OperationalError as exc:
        raise _unavailable(url, exc) from None


def with_retries(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: the whole function (one transaction) is retried, see `retried`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return retried(fn, *args, **kwargs)
    return wrapper


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
    except NoSuchModuleError as exc:
        raise InputError(f"MPR_DATABASE_URL {redact(url)}: no driver ({exc})") from None
    retried(migrate, engine, url=url)
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
