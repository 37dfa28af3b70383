"""PostgreSQL stopped, or killed, under load, then restarted on the same port: no wrong value,
only documented errors, and the pool serves again once the server is back.

These tests stop their own server (not the session's, whose replica streams from it). The
bounds are one constant each; the measured figures are in the comments and in the end-of-run
report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

import aioconn
from aioconn import Pool
from integration.integration_kit import (
    OUTAGE_WORKERS,
    CountingAsyncpgConnector,
    assert_outage_targets,
    report,
    through_outage,
)
from servers._process import running
from servers.postgres import PostgresServer

POOL_SIZE = 16
REQUEST_TIMEOUT = 3.0
# Not documented, and counted apart: as the server goes, a connection whose last query had just
# succeeded fails its next one with asyncpg's InternalClientError ("cannot switch to state 12;
# another operation (2) is in progress"), at once, before asyncpg has seen the connection lost
# (is_closed() is still False, so the pool handed it out); the pool then discards it. At most
# once per connection; seen 1-16 of 16, on a stop and on a kill. To be 0 once the connector
# tells such a connection apart.
DRIVER_QUIRK: tuple[type[BaseException], ...] = (asyncpg.exceptions.InternalClientError,)
DRIVER_QUIRK_BOUND = POOL_SIZE

# What callers may see: the pool's own errors, asyncpg's for a session the server ended
# (ConnectionDoesNotExistError when the socket closes mid-query, AdminShutdownError when a
# fast shutdown terminates the session).
DOCUMENTED: tuple[type[BaseException], ...] = (
    aioconn.ConnectError,
    aioconn.PoolTimeout,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
)


@pytest.fixture(scope="module")
def restartable() -> Iterator[tuple[PostgresServer, ThreadPoolExecutor]]:
    """A PostgreSQL server of this module's own, and the thread that restarts it."""
    with ThreadPoolExecutor(max_workers=1) as executor, running(PostgresServer) as server:
        yield server, executor


async def _outage(
    restartable: tuple[PostgresServer, ThreadPoolExecutor], how: str, crash: bool
) -> None:
    server, executor = restartable
    connector = CountingAsyncpgConnector(server.dsn, f"integ-pg-{how}", timeout=REQUEST_TIMEOUT)
    async with Pool(
        connector,
        max_size=POOL_SIZE,
        acquire_timeout=REQUEST_TIMEOUT,
        connect_timeout=REQUEST_TIMEOUT,
        name=f"pg-{how}",
    ) as pool:

        async def ask(n: int) -> tuple[object, object]:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                async with pool.acquire() as conn:
                    return n, await conn.fetchval("SELECT $1::int", n)

        outage, tally = await through_outage(
            ask,
            DOCUMENTED,
            lambda: connector.attempts,
            take_down=server.kill if crash else server.stop,
            bring_up=server.start,
            executor=executor,
        )
        summary = f"{outage.summary()}; {tally.summary()}"
        report(f"PostgreSQL {how}, pool of {POOL_SIZE}, {OUTAGE_WORKERS} workers: {summary}")
        assert tally.wrong == [], summary
        unexpected = [exc for exc in tally.undocumented if not isinstance(exc, DRIVER_QUIRK)]
        quirks = len(tally.undocumented) - len(unexpected)
        assert unexpected == [], summary
        assert quirks <= DRIVER_QUIRK_BOUND, summary
        assert_outage_targets(outage, summary)
        assert pool.stats().connect_failures > 0, summary


async def test_stopped_and_restarted(
    restartable: tuple[PostgresServer, ThreadPoolExecutor],
) -> None:
    await _outage(restartable, "stop", crash=False)


async def test_killed_and_restarted(
    restartable: tuple[PostgresServer, ThreadPoolExecutor],
) -> None:
    await _outage(restartable, "kill", crash=True)
