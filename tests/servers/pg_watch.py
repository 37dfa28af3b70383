"""Looking at PostgreSQL servers from the side: client sessions, session state, replay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

WAIT = 5.0  # seconds the server gets to show a change we wait for


@asynccontextmanager
async def monitor(dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A separate session to watch the server with."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "monitor"})
    try:
        yield conn
    finally:
        await conn.close()


async def client_pids(watcher: asyncpg.Connection[Any]) -> set[int]:
    """The server processes of the client sessions, the watcher's own excluded."""
    rows = await watcher.fetch(
        "SELECT pid FROM pg_stat_activity"
        " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    return {row["pid"] for row in rows}


async def session_state(watcher: asyncpg.Connection[Any], pid: int) -> str | None:
    """``pg_stat_activity.state`` of a session (``idle``, ``active``, ...) or None if gone."""
    state: str | None = await watcher.fetchval(
        "SELECT state FROM pg_stat_activity WHERE pid = $1", pid
    )
    return state


async def _poll(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Ask the server until ``condition()`` holds: it announces none of these changes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        await asyncio.sleep(0.005)


async def until_gone(watcher: asyncpg.Connection[Any], pid: int) -> None:
    """Wait until the server process ``pid`` has exited."""

    async def gone() -> bool:
        return pid not in await client_pids(watcher)

    await _poll(gone, f"server process {pid} exits")


async def until_sleeping(watcher: asyncpg.Connection[Any], pid: int) -> None:
    """Wait until session ``pid`` runs ``pg_sleep`` (so a cancel hits a running query)."""

    async def sleeping() -> bool:
        count = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
            pid,
        )
        return bool(count)

    await _poll(sleeping, f"session {pid} runs pg_sleep")


async def until_replayed(replica: asyncpg.Connection[Any], lsn: str) -> None:
    """Wait until ``replica`` replayed the primary's WAL up to ``lsn`` (replication is async)."""

    async def replayed() -> bool:
        return bool(await replica.fetchval("SELECT pg_last_wal_replay_lsn() >= $1", lsn))

    await _poll(replayed, f"the replica replays up to {lsn}")
