"""PsycopgConnector against a real PostgreSQL: liveness from psycopg, rollback of INTRANS and
INERROR, session reset, recover after a cancelled query, abort."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from aioconn.drivers import PsycopgConnector
from servers.pg_watch import client_pids, monitor, session_state, until_gone, until_sleeping
from servers.postgres import PostgresServer

if TYPE_CHECKING:
    import asyncpg

    Watcher = asyncpg.Connection[Any]
else:
    Watcher = Any
Conn = psycopg.AsyncConnection[Any]


@pytest.fixture
async def watcher(postgres_server: PostgresServer) -> AsyncIterator[Watcher]:
    async with monitor(postgres_server.dsn) as conn:
        yield conn


@pytest.fixture
def connector(postgres_server: PostgresServer) -> PsycopgConnector:
    return PsycopgConnector(postgres_server.dsn)


@pytest.fixture
async def conn(connector: PsycopgConnector) -> AsyncIterator[Conn]:
    conn = await connector.connect()
    try:
        yield conn
    finally:
        await connector.close(conn)


def status(conn: Conn) -> TransactionStatus:
    return conn.info.transaction_status  # a call, so that mypy does not narrow it for good


async def fetchval(conn: Conn, query: str) -> Any:
    cursor = await conn.execute(query)
    row = await cursor.fetchone()
    assert row is not None
    return row[0]


async def test_connect_check_close(connector: PsycopgConnector, watcher: Watcher) -> None:
    conn = await connector.connect()
    pid = conn.info.backend_pid
    assert pid in await client_pids(watcher)
    assert connector.is_reusable(conn)
    assert await connector.check(conn)
    assert status(conn) == TransactionStatus.IDLE  # the check opened none
    await connector.close(conn)
    assert not connector.is_reusable(conn)
    assert not await connector.check(conn)
    await until_gone(watcher, pid)


async def test_init_runs_the_hook(postgres_server: PostgresServer) -> None:
    async def configure(conn: Conn) -> None:
        await conn.set_autocommit(True)
        await conn.execute("SET application_name = 'billing'")

    connector = PsycopgConnector(postgres_server.dsn, init=configure)
    conn = await connector.connect()
    try:
        await connector.init(conn)
        assert conn.autocommit
        assert await fetchval(conn, "SHOW application_name") == "billing"
    finally:
        await connector.close(conn)


async def test_reset_rolls_back_an_open_transaction(
    connector: PsycopgConnector, conn: Conn
) -> None:
    await conn.execute("CREATE TEMP TABLE notes (n int)")
    await conn.commit()
    await conn.execute("INSERT INTO notes VALUES (1)")  # psycopg opened a transaction
    assert status(conn) == TransactionStatus.INTRANS
    await connector.reset(conn)
    assert status(conn) == TransactionStatus.IDLE
    assert await fetchval(conn, "SELECT count(*) FROM notes") == 0


async def test_reset_rolls_back_a_failed_transaction(
    connector: PsycopgConnector, conn: Conn
) -> None:
    with pytest.raises(psycopg.errors.DivisionByZero):
        await conn.execute("SELECT 1 / 0")
    assert status(conn) == TransactionStatus.INERROR
    await connector.reset(conn)
    assert status(conn) == TransactionStatus.IDLE
    assert await fetchval(conn, "SELECT 1") == 1


async def test_session_reset_restores_the_settings(postgres_server: PostgresServer) -> None:
    connector = PsycopgConnector(postgres_server.dsn, reset="session")
    conn = await connector.connect()
    try:
        await conn.execute("SET application_name = 'dirty'")
        await conn.commit()
        await connector.reset(conn)
        assert status(conn) == TransactionStatus.IDLE
        assert await fetchval(conn, "SHOW application_name") == ""
    finally:
        await connector.close(conn)


async def test_recover_after_a_cancelled_query_keeps_the_server_session(
    connector: PsycopgConnector, conn: Conn, watcher: Watcher
) -> None:
    pid = conn.info.backend_pid
    sessions = await client_pids(watcher)
    query = asyncio.ensure_future(conn.execute("SELECT pg_sleep(30)"))
    await until_sleeping(watcher, pid)
    query.cancel()
    with pytest.raises(asyncio.CancelledError):
        await query
    # psycopg cancelled the query on the server itself: the 30 s sleep is over already.
    assert await connector.recover(conn, asyncio.CancelledError())
    assert status(conn) == TransactionStatus.IDLE
    assert await session_state(watcher, pid) == "idle"
    assert await fetchval(conn, "SELECT 42") == 42
    assert conn.info.backend_pid == pid
    assert await client_pids(watcher) == sessions


async def test_recover_gives_up_on_a_session_the_server_ended(
    connector: PsycopgConnector, conn: Conn, watcher: Watcher
) -> None:
    pid = conn.info.backend_pid
    assert await watcher.fetchval("SELECT pg_terminate_backend($1)", pid)
    await until_gone(watcher, pid)
    with pytest.raises(psycopg.OperationalError):
        await conn.execute("SELECT 1")
    assert conn.broken
    assert not connector.is_reusable(conn)
    assert not await connector.recover(conn, ConnectionResetError())


async def test_abort_closes_at_once_and_the_server_session_ends(
    connector: PsycopgConnector, watcher: Watcher
) -> None:
    conn = await connector.connect()
    pid = conn.info.backend_pid
    connector.abort(conn)
    assert conn.closed
    assert not connector.is_reusable(conn)
    assert not await connector.recover(conn, asyncio.CancelledError())
    await until_gone(watcher, pid)
    await connector.close(conn)  # closing an aborted connection is a no-op


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="reset must be 'transaction' or 'session', got 'none'"):
        PsycopgConnector("", reset="none")  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(TypeError, match="conninfo must be a str, got None"):
        PsycopgConnector(None)  # type: ignore[arg-type]  # the mistake under test
