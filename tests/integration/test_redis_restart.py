"""Redis stopped, or killed, under load, then restarted on the same port: no wrong value, only
documented errors, and the pool (the recipe's client) serves again once the server is back.

These tests stop a Redis server of their own. The bounds are one constant each, the measured
figures are in the comments and in the end-of-run report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import aioconn
from aioconn import Pool
from integration.integration_kit import (
    OUTAGE_WORKERS,
    CountingRedisConnector,
    assert_outage_targets,
    recipe_client,
    report,
    through_outage,
)
from servers._process import running
from servers.redis import RedisServer

POOL_SIZE = 16
REQUEST_TIMEOUT = 3.0

# What a caller of the recipe's client may see: the pool's connect error, or the connection
# closed under its request (docs/reference/errors.md).
DOCUMENTED: tuple[type[BaseException], ...] = (
    aioconn.ConnectError,
    aioconn.ConnectionClosed,
    aioconn.PoolTimeout,
)


@pytest.fixture(scope="module")
def restartable() -> Iterator[tuple[RedisServer, ThreadPoolExecutor]]:
    """A Redis server of this module's own, and the thread that restarts it."""
    with ThreadPoolExecutor(max_workers=1) as executor, running(RedisServer) as server:
        yield server, executor


async def _outage(
    restartable: tuple[RedisServer, ThreadPoolExecutor], how: str, crash: bool
) -> None:
    server, executor = restartable
    connector = CountingRedisConnector(
        server.host,
        server.port,
        f"integ-redis-{how}",
        connect_timeout=REQUEST_TIMEOUT,
        read_timeout=REQUEST_TIMEOUT,
    )
    pool = Pool(connector, max_size=POOL_SIZE, acquire_timeout=REQUEST_TIMEOUT, name=f"redis-{how}")
    async with recipe_client(pool) as redis:

        async def ask(n: int) -> tuple[object, object]:
            key = f"integ:{how}:{n % 1000}"
            async with asyncio.timeout(REQUEST_TIMEOUT):
                replies = await redis.pipeline([("SET", key, n), ("GET", key)])
            return [b"OK", b"%d" % n], replies

        outage, tally = await through_outage(
            ask,
            DOCUMENTED,
            lambda: connector.attempts,
            take_down=server.kill if crash else server.stop,
            bring_up=server.start,
            executor=executor,
        )
        summary = f"{outage.summary()}; {tally.summary()}"
        report(f"Redis {how}, pool of {POOL_SIZE}, {OUTAGE_WORKERS} workers: {summary}")
        assert tally.wrong == [], summary
        assert tally.undocumented == [], summary
        assert_outage_targets(outage, summary)
        assert pool.stats().connect_failures > 0, summary


async def test_stopped_and_restarted(restartable: tuple[RedisServer, ThreadPoolExecutor]) -> None:
    await _outage(restartable, "stop", crash=False)


async def test_killed_and_restarted(restartable: tuple[RedisServer, ThreadPoolExecutor]) -> None:
    await _outage(restartable, "kill", crash=True)
