"""The pool over other resources: Unix-socket connections and aiosqlite (the `sqlite` extra)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite

from aioconn import Pool, UnixConnector
from aioconn.testing import EchoServer


async def test_unix_socket_pool_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    async with EchoServer(path=path) as server:
        async with Pool(UnixConnector(path), max_size=2) as pool:

            async def request(i: int) -> bytes:
                async with pool.acquire() as conn:
                    await conn.send(b"unix %d\n" % i)
                    return await conn.readline()

            replies = await asyncio.gather(*(request(i) for i in range(20)))
            assert replies == [b"unix %d\n" % i for i in range(20)]
            assert pool.stats().created == 2
            assert server.open_count == 2
        await server.wait_open_count(0)


async def test_aiosqlite_pool_shares_connections_and_closes_them(tmp_path: Path) -> None:
    database = tmp_path / "pool.db"
    opened: list[aiosqlite.Connection] = []

    async def open_db() -> aiosqlite.Connection:
        conn = await aiosqlite.connect(database)
        opened.append(conn)
        return conn

    async def close_db(conn: aiosqlite.Connection) -> None:
        await conn.close()

    async with Pool(open_db, close=close_db, max_size=2) as pool:
        async with pool.acquire() as db:
            await db.execute("CREATE TABLE items (n INTEGER)")
            await db.commit()

        async def insert(n: int) -> None:
            async with pool.acquire() as db:
                await db.execute("INSERT INTO items VALUES (?)", (n,))
                await db.commit()

        await asyncio.gather(*(insert(n) for n in range(10)))
        async with pool.acquire() as db, db.execute("SELECT COUNT(*), SUM(n) FROM items") as cur:
            assert await cur.fetchone() == (10, 45)
        assert pool.stats().created == len(opened) <= 2
    assert all(not conn._running for conn in opened)  # every worker thread stopped
