"""Real services for tests: a fresh PostgreSQL database per test (and SQLite beside it).

PostgreSQL is the machine's own (127.0.0.1:5432, trust auth; `.ci/run` starts it when
none answers; `MPR_TEST_PG` overrides the server URL). Without a server the PostgreSQL
variants skip, unless `MPR_REQUIRE_SERVICES=1` (set by `.ci/run`) makes that a failure.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

PG_SERVER = os.environ.get("MPR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def pg_available() -> str | None:
    """None when the server answers, else why not."""
    try:
        engine = create_engine(PG_SERVER, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return None
    except OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]


def need_service(why: str | None, name: str) -> None:
    if why is None:
        return
    if os.environ.get("MPR_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is required (MPR_REQUIRE_SERVICES=1) but unavailable: {why}")
    pytest.skip(f"{name} unavailable: {why}")


def fresh_pg_database() -> tuple[str, callable]:
    """A new empty database on the server; returns its URL and a function that drops it."""
    need_service(pg_available(), "PostgreSQL")
    name = f"mpr_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_SERVER.rsplit("/", 1)[0] + f"/{name}"

    def drop() -> None:
        from mpr.db.session import reset_engines

        reset_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, monkeypatch) -> str:
    """MPR_DATABASE_URL for one test: a SQLite file, or a fresh PostgreSQL database."""
    from mpr.db.session import reset_engines

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'mpr.db'}"
        drop = reset_engines
    else:
        url, drop = fresh_pg_database()
    monkeypatch.setenv("MPR_DATABASE_URL", url)
    reset_engines()
    yield url
    drop()


class FlakyProxy:
    """A real TCP proxy to a server that closes its first `drop` connections at once, as a
    database that is restarting or behind a failing network does. With `down_after_puts` it
    passes that many HTTP PUT requests, then cuts every open connection and refuses new
    ones: storage that goes away in the middle of a run."""

    def __init__(self, host: str, port: int, drop: int, down_after_puts: int | None = None):
        import socket
        import threading

        self.target, self.drop, self.dropped = (host, port), drop, 0
        self.puts_left, self.open = down_after_puts, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.dropped < self.drop:
                self.dropped += 1
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.open += [client, upstream]
            for a, b, outgoing in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, outgoing), daemon=True).start()

    def go_down(self) -> None:
        import socket

        self.drop = 1 << 30
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _pump(self, src, dst, outgoing: bool) -> None:
        try:
            while data := src.recv(65536):
                if outgoing and self.puts_left is not None:
                    self.puts_left -= data.count(b"PUT /")
                    if self.puts_left < 0:
                        self.go_down()
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()
