"""An aioconn ``Pool`` of ``AsyncpgConnector`` connections against the real PostgreSQL server:
a cancellation storm, the pool's size against ``pg_stat_activity``, and a ``ChaosProxy``
resetting and slowing connections mid-load."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import asyncpg

import aioconn
from aioconn import Pool
from aioconn.testing import ChaosProxy
from integration.integration_kit import (
    CountingAsyncpgConnector,
    Load,
    Recoveries,
    poll,
    report,
    through_chaos,
)
from servers.pg_watch import monitor
from servers.postgres import PostgresServer

SEED = 1107
WORKERS = 32
POOL_SIZE = 8

# The storm: every request under a random 1-60 ms timeout; most queries sleep up to 80 ms.
STORM_REQUESTS = 1500
STORM_SECONDS = 10.0
TIMEOUT_MS = (1, 60)
SLEEP_MS = (0, 80)
# New server sessions per 100 queries cancelled mid-flight (the target is <= 1; the
# connector's recover keeps the backend after asyncpg's own cancel: measured 0).
SESSIONS_PER_100_CANCELLED = 1.0
MIN_CANCELLED = 200  # the storm must cancel this many queries mid-flight to prove anything


async def our_sessions(watcher: asyncpg.Connection[Any], application_name: str) -> set[int]:
    """The server processes whose session carries ``application_name``."""
    rows = await watcher.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
    )
    return {row["pid"] for row in rows}


async def test_a_cancellation_storm_gets_every_value_right_and_keeps_its_sessions(
    postgres_server: PostgresServer,
) -> None:
    rng = random.Random(SEED)
    connector = CountingAsyncpgConnector(postgres_server.dsn, "integ-pg-storm")
    asked = answered = wrong = cancelled_in_query = cancelled_waiting = 0
    deadline = time.monotonic() + STORM_SECONDS

    async with Pool(connector, min_size=POOL_SIZE, max_size=POOL_SIZE, name="pg-storm") as pool:
        assert connector.attempts == POOL_SIZE
        before = set(connector.pids)

        async def worker() -> None:
            nonlocal asked, answered, wrong, cancelled_in_query, cancelled_waiting
            while asked < STORM_REQUESTS and time.monotonic() < deadline:
                asked += 1
                value = rng.randrange(1_000_000)
                sleep = rng.randint(*SLEEP_MS) / 1000 if rng.random() < 0.7 else 0.0
                in_query = False
                try:
                    async with asyncio.timeout(rng.randint(*TIMEOUT_MS) / 1000):
                        async with pool.acquire() as conn:
                            in_query = True
                            got = await conn.fetchval(
                                "SELECT $1::int FROM pg_sleep($2)", value, sleep
                            )
                except TimeoutError:
                    if in_query:
                        cancelled_in_query += 1
                    else:
                        cancelled_waiting += 1
                    continue
                answered += 1
                wrong += got != value

        started = time.monotonic()
        async with asyncio.timeout(STORM_SECONDS + 5):
            await asyncio.gather(*(worker() for _ in range(WORKERS)))
        took = time.monotonic() - started
        await poll(_quiet(pool), "the pool recovered every connection given back")
        new_sessions = len(set(connector.pids) - before)
        stats = pool.stats()
        async with monitor(postgres_server.dsn) as watcher:
            on_server = await our_sessions(watcher, connector.application_name)
        summary = (
            f"{asked} requests in {took:.2f} s: {answered} answered, {wrong} wrong,"
            f" {cancelled_in_query} cancelled mid-query, {cancelled_waiting} while acquiring;"
            f" {new_sessions} new server sessions"
            f" ({100 * new_sessions / max(cancelled_in_query, 1):.2f} per 100 cancelled);"
            f" discarded {stats.discarded}"
        )
        report(f"PostgreSQL storm: {summary}")
        assert wrong == 0, summary
        assert asked == answered + cancelled_in_query + cancelled_waiting, summary
        assert cancelled_in_query >= MIN_CANCELLED, summary
        assert answered >= STORM_REQUESTS // 10, summary
        assert 100 * new_sessions <= SESSIONS_PER_100_CANCELLED * cancelled_in_query, summary
        # Every connect made a server session and the pool made no other: the server agrees.
        assert connector.attempts == len(connector.pids) == POOL_SIZE + new_sessions, summary
        assert on_server <= set(connector.pids), summary
        assert len(on_server) == stats.size == POOL_SIZE, summary


def _quiet(pool: Pool[Any]) -> Any:
    async def quiet() -> bool:
        stats = pool.stats()
        return (stats.returning, stats.in_use, stats.opening, stats.size) == (0, 0, 0, POOL_SIZE)

    return quiet


SIZE_MIN, SIZE_MAX = 3, 8
SIZE_WORKERS = 12


async def test_the_pool_size_is_the_servers_count_of_our_sessions(
    postgres_server: PostgresServer,
) -> None:
    connector = CountingAsyncpgConnector(postgres_server.dsn, "integ-pg-size")
    async with monitor(postgres_server.dsn) as watcher:

        async def on_server() -> set[int]:
            return await our_sessions(watcher, connector.application_name)

        def server_shows(count: int) -> Any:
            async def shows() -> bool:
                return len(await on_server()) == count

            return shows

        pool = Pool(connector, min_size=SIZE_MIN, max_size=SIZE_MAX, name="pg-size")
        try:
            # Before the load: open() filled min_size, and the server has exactly those.
            await pool.open()
            assert pool.stats().size == SIZE_MIN
            await poll(server_shows(SIZE_MIN), f"the server shows {SIZE_MIN} sessions")
            assert await on_server() == set(connector.pids)

            # During the load: every connection leased, the others queue.
            release = asyncio.Event()

            async def hold(n: int) -> int:
                async with pool.acquire() as conn:
                    await release.wait()
                    value: int = await conn.fetchval("SELECT $1::int", n)
                    return value

            holders = [asyncio.create_task(hold(n)) for n in range(SIZE_WORKERS)]

            async def saturated() -> bool:
                stats = pool.stats()
                return (stats.in_use, stats.waiting) == (SIZE_MAX, SIZE_WORKERS - SIZE_MAX)

            await poll(saturated, "every connection leased")
            during = await on_server()
            stats = pool.stats()
            assert (stats.size, stats.idle, stats.opening) == (SIZE_MAX, 0, 0)
            assert len(during) == SIZE_MAX
            assert during == set(connector.pids)
            release.set()
            async with asyncio.timeout(5):
                assert await asyncio.gather(*holders) == list(range(SIZE_WORKERS))
            assert pool.stats().size == SIZE_MAX == len(await on_server())
        finally:
            await pool.close()
        # After close: none left, on either side.
        assert pool.stats().size == 0
        await poll(server_shows(0), "the server shows no session of ours")
        assert connector.attempts == SIZE_MAX


PROXY_WORKERS = 16
PROXY_POOL = 8
REQUEST_TIMEOUT = 3.0  # seconds; no request may take longer, whatever the proxy does
# Connections retire after this many uses, so that new links keep meeting the reset toxic
# (each link draws once whether a toxic applies to it).
PROXY_MAX_USES = 10
# What a caller may see while connections are reset: the pool's connect error, asyncpg's
# error for a connection lost mid-query, or a socket error from under asyncpg.
PG_DOCUMENTED: tuple[type[BaseException], ...] = (
    aioconn.ConnectError,
    aioconn.PoolTimeout,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    ConnectionError,
)


async def test_resets_and_latency_from_a_chaos_proxy(postgres_server: PostgresServer) -> None:
    async with ChaosProxy(postgres_server.host, postgres_server.port, seed=SEED) as proxy:
        recoveries = Recoveries()
        dsn = f"postgresql://postgres@{proxy.host}:{proxy.port}/postgres"
        connector = CountingAsyncpgConnector(dsn, "integ-pg-chaos", timeout=REQUEST_TIMEOUT)
        async with Pool(
            connector,
            max_size=PROXY_POOL,
            max_uses=PROXY_MAX_USES,
            acquire_timeout=REQUEST_TIMEOUT,
            on_event=recoveries,
            name="pg-chaos",
        ) as pool:

            async def ask(n: int) -> tuple[object, object]:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    async with pool.acquire() as conn:
                        return n, await conn.fetchval("SELECT $1::int", n)

            load = Load(
                ask,
                documented=PG_DOCUMENTED,
                workers=PROXY_WORKERS,
                max_requests=100_000,
                max_seconds=20.0,
            )
            tally = await through_chaos(load, proxy, recoveries)
            report(
                f"PostgreSQL behind ChaosProxy: {tally.summary()};"
                f" connects {connector.attempts}; discarded {pool.stats().discarded}"
            )
