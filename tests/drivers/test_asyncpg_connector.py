"""AsyncpgConnector against a real PostgreSQL: liveness, reset, recover after a cancelled query,
abort — at the connector level (the pool's use of these hooks is tested with the pool)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from aioconn.drivers import AsyncpgConnector
from servers.pg_watch import client_pids, monitor, session_state, until_gone, until_sleeping
from servers.postgres import PostgresServer

if TYPE_CHECKING:
    Conn = asyncpg.Connection[Any]
else:
    Conn = asyncpg.Connection  # generic only in the stubs


@pytest.fixture
async def watcher(postgres_server: PostgresServer) -> AsyncIterator[Conn]:
    async with monitor(postgres_server.dsn) as conn:
        yield conn


@pytest.fixture
def connector(postgres_server: PostgresServer) -> AsyncpgConnector:
    return AsyncpgConnector(postgres_server.dsn)


@pytest.fixture
async def conn(connector: AsyncpgConnector) -> AsyncIterator[Conn]:
    conn = await connector.connect()
    try:
        yield conn
    finally:
        await connector.close(conn)


def count_queries(conn: Conn) -> list[str]:
    """The queries ``conn`` sends from now on, as seen after ``logged()``."""
    queries: list[str] = []
    conn.add_query_logger(lambda logged: queries.append(logged.query))
    return queries


async def logged() -> None:
    await asyncio.sleep(0)  # asyncpg calls query loggers from the loop's next iteration


async def test_connect_check_close(connector: AsyncpgConnector, watcher: Conn) -> None:
    conn = await connector.connect()
    pid = conn.get_server_pid()
    assert pid in await client_pids(watcher)
    assert connector.is_reusable(conn)
    assert await connector.check(conn)
    await connector.close(conn)
    assert not connector.is_reusable(conn)
    assert not await connector.check(conn)
    await until_gone(watcher, pid)


async def test_init_runs_the_hook_on_the_connection(postgres_server: PostgresServer) -> None:
    async def name_the_session(conn: Conn) -> None:
        await conn.execute("SET application_name = 'orders-api'")

    connector = AsyncpgConnector(postgres_server.dsn, init=name_the_session)
    conn = await connector.connect()
    try:
        await connector.init(conn)
        assert await conn.fetchval("SHOW application_name") == "orders-api"
    finally:
        await connector.close(conn)
    assert AsyncpgConnector(postgres_server.dsn).init is None  # no hook: nothing for the pool


async def test_a_clean_return_costs_no_round_trip(connector: AsyncpgConnector, conn: Conn) -> None:
    await conn.fetchval("SELECT 1")
    queries = count_queries(conn)
    await connector.reset(conn)
    await logged()
    assert queries == []


async def test_reset_rolls_back_a_transaction_left_open(
    connector: AsyncpgConnector, conn: Conn
) -> None:
    await conn.execute("CREATE TEMP TABLE notes (n int)")
    pid = conn.get_server_pid()
    await conn.execute("BEGIN")
    await conn.execute("INSERT INTO notes VALUES (1)")
    assert conn.is_in_transaction()
    await connector.reset(conn)
    assert not conn.is_in_transaction()
    assert await conn.fetchval("SELECT count(*) FROM notes") == 0
    assert conn.get_server_pid() == pid


async def test_reset_forgets_a_transaction_object_never_finished(
    connector: AsyncpgConnector, conn: Conn
) -> None:
    reported: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
    try:
        transaction = conn.transaction()
        await transaction.start()
        await connector.reset(conn)
    finally:
        loop.set_exception_handler(None)
    # asyncpg reports the user's unfinished Transaction, as its own pool does on release.
    assert len(reported) == 1
    assert reported[0].startswith("Resetting connection with an active transaction")
    async with conn.transaction():  # would be a savepoint outside a transaction otherwise
        assert await conn.fetchval("SELECT 1") == 1
    assert not conn.is_in_transaction()


async def test_session_reset_clears_settings_and_advisory_locks(
    postgres_server: PostgresServer, watcher: Conn
) -> None:
    connector = AsyncpgConnector(postgres_server.dsn, reset="session")
    conn = await connector.connect()
    try:
        await conn.execute("SET application_name = 'dirty'")
        await conn.execute("SELECT pg_advisory_lock(4242)")
        queries = count_queries(conn)
        await connector.reset(conn)
        await logged()
        assert len(queries) == 1  # asyncpg's reset query, one round trip
        assert await conn.fetchval("SHOW application_name") == ""
        held = await watcher.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
        )
        assert held == 0
    finally:
        await connector.close(conn)


async def _cancelled_sleep(conn: Conn, watcher: Conn) -> None:
    query = asyncio.ensure_future(conn.fetchval("SELECT pg_sleep(30)"))
    await until_sleeping(watcher, conn.get_server_pid())
    query.cancel()
    with pytest.raises(asyncio.CancelledError):
        await query


async def test_recover_after_a_cancelled_query_keeps_the_server_session(
    connector: AsyncpgConnector, conn: Conn, watcher: Conn
) -> None:
    pid = conn.get_server_pid()
    sessions = await client_pids(watcher)
    await _cancelled_sleep(conn, watcher)
    # pg_sleep(30) against recover_timeout=2: True means the server really cancelled it.
    assert await connector.recover(conn, asyncio.CancelledError())
    assert await session_state(watcher, pid) == "idle"
    assert await conn.fetchval("SELECT 42") == 42
    assert conn.get_server_pid() == pid
    assert await client_pids(watcher) == sessions  # no new backend, none lost


async def test_recover_inside_a_transaction_rolls_it_back(
    connector: AsyncpgConnector, conn: Conn, watcher: Conn
) -> None:
    await conn.execute("CREATE TEMP TABLE notes (n int)")
    await conn.execute("BEGIN")
    await conn.execute("INSERT INTO notes VALUES (1)")
    await _cancelled_sleep(conn, watcher)
    assert await connector.recover(conn, TimeoutError())
    assert not conn.is_in_transaction()
    assert await conn.fetchval("SELECT count(*) FROM notes") == 0


async def test_recover_after_a_failed_query_in_a_transaction(
    connector: AsyncpgConnector, conn: Conn
) -> None:
    await conn.execute("BEGIN")
    with pytest.raises(asyncpg.exceptions.DivisionByZeroError) as caught:
        await conn.fetchval("SELECT 1 / 0")
    assert await connector.recover(conn, caught.value)
    assert await conn.fetchval("SELECT 1") == 1


async def test_recover_gives_up_on_a_session_the_server_ended(
    connector: AsyncpgConnector, conn: Conn, watcher: Conn
) -> None:
    pid = conn.get_server_pid()
    assert await watcher.fetchval("SELECT pg_terminate_backend($1)", pid)
    await until_gone(watcher, pid)
    assert not await connector.recover(conn, ConnectionResetError())
    assert not connector.is_reusable(conn)


async def test_abort_closes_at_once_and_the_server_session_ends(
    connector: AsyncpgConnector, watcher: Conn
) -> None:
    conn = await connector.connect()
    pid = conn.get_server_pid()
    connector.abort(conn)
    assert conn.is_closed()
    assert not connector.is_reusable(conn)
    assert not await connector.recover(conn, asyncio.CancelledError())
    await until_gone(watcher, pid)
    await connector.close(conn)  # closing an aborted connection is a no-op


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"reset": "always"}, ValueError, "reset must be 'transaction' or 'session', got 'always'"),
        ({"init": "SET x = 1"}, TypeError, "init must be callable or None, got 'SET x = 1'"),
        ({"recover_timeout": 0}, ValueError, "recover_timeout must be a positive"),
        ({"close_timeout": None}, TypeError, "close_timeout must be a number of seconds"),
    ],
)
def test_bad_arguments_are_named(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AsyncpgConnector("postgresql://127.0.0.1/x", **kwargs)


def test_a_dsn_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="dsn must be a str or None, got 5432"):
        AsyncpgConnector(5432)  # type: ignore[arg-type]  # the mistake under test
