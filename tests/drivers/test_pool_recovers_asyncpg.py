"""The pool's return rule wired to a driver: a cancelled query costs no server session."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aioconn import Pool
from aioconn.drivers import AsyncpgConnector
from pool_helpers import eventually
from servers.pg_watch import client_pids, monitor, until_sleeping
from servers.postgres import PostgresServer


async def test_a_block_cancelled_mid_query_is_recovered_on_the_same_backend(
    postgres_server: PostgresServer,
) -> None:
    async with monitor(postgres_server.dsn) as watcher:
        async with Pool(AsyncpgConnector(postgres_server.dsn), max_size=1) as pool:
            async with pool.acquire() as conn:
                pid = conn.get_server_pid()
            sessions = await client_pids(watcher)

            async def slow() -> Any:
                async with pool.acquire() as conn:
                    return await conn.fetchval("SELECT pg_sleep(30)")

            task = asyncio.create_task(slow())
            await until_sleeping(watcher, pid)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await eventually(lambda: pool.stats().returning == 0)
            async with pool.acquire() as conn:
                assert conn.get_server_pid() == pid  # recovered: the same server session
                assert await conn.fetchval("SELECT 7") == 7
            stats = pool.stats()
            assert (stats.created, stats.discarded.total) == (1, 0)
            assert await client_pids(watcher) == sessions
