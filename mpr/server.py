"""`mpr server up`: a local Prefect server on SQLite (Prefect's default) or PostgreSQL.

    mpr server up [--host 127.0.0.1] [--port 4200] [--database URL]

`--database` (or `MPR_PREFECT_DATABASE_URL`) is a PostgreSQL URL in any of the forms
`postgresql://`, `postgresql+psycopg://`, `postgresql+asyncpg://`; Prefect gets the
asyncpg form. Without one Prefect uses SQLite under PREFECT_HOME. The process is replaced
by `prefect server start`, so signals reach the server directly.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from mpr.errors import InputError, MprError

POSTGRES_DRIVERS = ("postgresql", "postgresql+psycopg", "postgresql+asyncpg")


def add_parser(sub) -> None:
    """Add `server up` to the CLI's subparsers."""
    server = sub.add_parser("server", help="run a local Prefect server (SQLite or PostgreSQL)")
    actions = server.add_subparsers(dest="action", required=True, parser_class=type(server))
    up = actions.add_parser("up", help="start `prefect server start` in the foreground")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=4200)
    up.add_argument("--database", metavar="URL",
                    help="PostgreSQL URL (default: $MPR_PREFECT_DATABASE_URL, else SQLite under PREFECT_HOME)")


def run(args: argparse.Namespace) -> int:
    prefect = Path(sys.executable).parent / "prefect"
    if not prefect.exists():
        raise MprError(f"no prefect executable next to {sys.executable}")
    env = {**os.environ, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    database = args.database or os.environ.get("MPR_PREFECT_DATABASE_URL")
    if database:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = postgres_url(database)
    print(f"export PREFECT_API_URL=http://{_public_host(args.host)}:{args.port}/api", flush=True)
    argv = [str(prefect), "server", "start", "--host", args.host, "--port", str(args.port)]
    os.execve(argv[0], argv, env)
    return 1  # not reached


def postgres_url(url: str) -> str:
    """The asyncpg form of a PostgreSQL URL, after checking that the server answers."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from mpr.db.session import redact

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(f"Prefect database: not a database URL: {redact(url)}") from None
    if parsed.drivername not in POSTGRES_DRIVERS:
        raise InputError(f"Prefect database: expected a postgresql:// URL, got {parsed.drivername}:// "
                         f"(leave it out for SQLite)")
    _check_reachable(parsed.set(drivername="postgresql+psycopg"), redact(url))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def _check_reachable(url, shown: str) -> None:
    # A short connect now gives one clear line, instead of Prefect's traceback after startup.
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise MprError(f"cannot reach PostgreSQL at {shown}: {reason}") from None
    finally:
        engine.dispose()


def _public_host(host: str) -> str:
    """The host clients should use: a wildcard bind address means this machine's name."""
    return socket.gethostname() if host in ("0.0.0.0", "::", "") else host
