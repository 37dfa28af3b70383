"""AiosqliteConnector on a real SQLite file: rollback on reset, recover after a cancelled query
(interrupted in the worker thread), closed connections are not reused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from aioconn.drivers import AiosqliteConnector

# Runs for minutes unless interrupted: the worker thread is busy until then.
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"


@pytest.fixture
def connector(tmp_path: Path) -> AiosqliteConnector:
    return AiosqliteConnector(tmp_path / "app.db")


@pytest.fixture
async def conn(connector: AiosqliteConnector) -> AsyncIterator[aiosqlite.Connection]:
    conn = await connector.connect()
    await conn.execute("CREATE TABLE notes (n int)")
    await conn.commit()
    try:
        yield conn
    finally:
        await connector.close(conn)


async def count(conn: aiosqlite.Connection) -> int:
    async with conn.execute("SELECT count(*) FROM notes") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_reset_rolls_back_an_open_transaction(
    connector: AiosqliteConnector, conn: aiosqlite.Connection
) -> None:
    assert await connector.check(conn)
    await conn.execute("INSERT INTO notes VALUES (1)")
    assert conn.in_transaction
    await connector.reset(conn)
    assert not conn.in_transaction
    assert await count(conn) == 0


async def test_recover_interrupts_a_cancelled_query(
    connector: AiosqliteConnector, conn: aiosqlite.Connection
) -> None:
    await conn.execute("INSERT INTO notes VALUES (1)")
    query = asyncio.ensure_future(conn.execute_fetchall(ENDLESS))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await asyncio.shield(query)  # the await gives up; the thread would run on
    assert await connector.recover(conn, TimeoutError())
    with pytest.raises(aiosqlite.OperationalError, match="interrupted"):
        await query
    assert not conn.in_transaction
    assert await count(conn) == 0


async def test_init_and_a_closed_connection(tmp_path: Path) -> None:
    async def wal(conn: aiosqlite.Connection) -> None:
        await conn.execute("PRAGMA journal_mode=WAL")

    connector = AiosqliteConnector(str(tmp_path / "wal.db"), init=wal)
    conn = await connector.connect()
    await connector.init(conn)
    async with conn.execute("PRAGMA journal_mode") as cursor:
        assert await cursor.fetchone() == ("wal",)
    await connector.close(conn)
    assert not connector.is_reusable(conn)
    assert not await connector.check(conn)
    assert not await connector.recover(conn, asyncio.CancelledError())


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="database must be a path or str, got 3"):
        AiosqliteConnector(3)  # type: ignore[arg-type]  # the mistake under test
