"""Session fixtures ``postgres_server`` and ``redis_server`` (loaded by tests/conftest.py).

Each server starts once per test session, on the first test that asks for it, in a temporary
directory on a free loopback port, and stops when the session ends. A server that cannot be
found or started fails the tests that need it, with the reason; it is never skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TypeVar

import pytest

from ._process import ServerError, ServerProcess, running
from .postgres import PostgresReplica, PostgresServer
from .redis import RedisServer

S = TypeVar("S", bound=ServerProcess)

started: list[ServerProcess] = []  # reported at the end of the session with their start times


@contextlib.contextmanager
def _running(kind: type[S], *args: object) -> Iterator[S]:
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running(kind, *args))
        except ServerError as exc:
            pytest.fail(f"{kind.name} for the integration tests: {exc}", pytrace=False)
        started.append(server)
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL 18 cluster (superuser ``postgres``, trust auth) on 127.0.0.1."""
    with _running(PostgresServer) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_replica(postgres_server: PostgresServer) -> Iterator[PostgresReplica]:
    """A hot standby of ``postgres_server`` (streaming replication), read-only."""
    with _running(PostgresReplica, postgres_server) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server (no persistence, no password) on 127.0.0.1."""
    with _running(RedisServer) as server:
        yield server


def summary() -> list[str]:
    """One line per server started this session, with the time its start took."""
    lines = []
    for server in started:
        extra = ""
        if isinstance(server, PostgresServer) and server.initdb_in is not None:
            extra = f" after initdb {server.initdb_in:.2f} s"
        where = f"{server.name} on {server.host}:{server.port}"
        lines.append(f"{where}: ready in {server.started_in:.2f} s{extra}")
    return lines
