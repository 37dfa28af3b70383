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
from aioconn import Backoff, Pool
from integration.integration_kit import (
    CountingRedisConnector,
    Load,
    recipe_client,
    report,
    through_outage,
)
from servers._process import running
from servers.redis import RedisServer

POOL_SIZE = 16
WORKERS = 32
OUTAGE = 3.0  # seconds the server stays down
REQUEST_TIMEOUT = 3.0
WARM = 200  # successes before the outage, and again after the first one after it
# The bounds. Without the pool's connect backoff it tried to connect for every waiting
# request, and the workers retry every 10 ms: 3,400-4,600 attempts in 3 s. With it (one probe per
# step, acquires failing fast with ServerDown meanwhile): 22-23, the first success 0.3-0.9 s
# after the server was ready, no error after it.
CONNECT_ATTEMPTS_BOUND = 50  # the target for a 3 s outage and a pool of 16
RECOVERY_BOUND = Backoff().maximum + 1.0  # s from ready to the first success: one
# backoff step (the longest, 2 s), plus the connect and the restart's own jitter
ERRORS_AFTER_BACK_BOUND = 0  # errors of requests begun after the first success

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

        load = Load(
            ask, documented=DOCUMENTED, workers=WORKERS, max_requests=1_000_000, max_seconds=30
        )
        load.start()
        try:
            outage = await through_outage(
                load,
                lambda: connector.attempts,
                take_down=server.kill if crash else server.stop,
                bring_up=server.start,
                outage=OUTAGE,
                executor=executor,
                warm=WARM,
                recovery_bound=RECOVERY_BOUND,
            )
        finally:
            tally = await load.stop()
        summary = f"{outage.summary()}; {tally.summary()}"
        report(f"Redis {how}, pool of {POOL_SIZE}, {WORKERS} workers: {summary}")
        assert tally.wrong == [], summary
        assert tally.undocumented == [], summary
        assert outage.recovery < RECOVERY_BOUND, summary
        assert outage.connect_attempts <= CONNECT_ATTEMPTS_BOUND, summary
        assert outage.errors_after.total() <= ERRORS_AFTER_BACK_BOUND, summary
        assert outage.errors_during.total() > 0, summary  # the outage was seen
        assert pool.stats().connect_failures > 0, summary


async def test_stopped_and_restarted(restartable: tuple[RedisServer, ThreadPoolExecutor]) -> None:
    await _outage(restartable, "stop", crash=False)


async def test_killed_and_restarted(restartable: tuple[RedisServer, ThreadPoolExecutor]) -> None:
    await _outage(restartable, "kill", crash=True)
