"""An aioconn ``Pool`` of RESP connections (the client of docs/recipes/redis.md) against the
real Redis server: a cancellation storm, the pool's size against ``CLIENT LIST``, and a
``ChaosProxy`` resetting and slowing connections mid-load."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aioconn
from aioconn import Pool
from aioconn.testing import ChaosProxy
from integration.integration_kit import (
    CountingRedisConnector,
    Load,
    Recoveries,
    poll,
    recipe_client,
    redis_command,
    report,
    through_chaos,
)
from servers.redis import RedisServer

SEED = 1108
WORKERS = 32
POOL_SIZE = 8

# The storm: every request under a random 1-60 ms timeout. Most requests first block the
# connection server-side for up to 80 ms (BLPOP on an empty list, which, unlike DEBUG SLEEP,
# blocks only its own client), and every one echoes a token of up to 64 KiB that it checks.
STORM_REQUESTS = 1500
STORM_SECONDS = 10.0
TIMEOUT_MS = (1, 60)
BLOCK_MS = (1, 80)
TOKEN_BYTES = 64 * 1024
MIN_INTERRUPTED = 200  # requests the storm must cut inside their block to prove anything
# The recipe's client has no ``recover``: a request cut mid-flight costs its connection, so
# the bound is one new server session per request interrupted inside its block (exact below).
SESSIONS_PER_100_INTERRUPTED = 100


@asynccontextmanager
async def monitor(server: RedisServer) -> AsyncIterator[aioconn.Connection]:
    """A connection of its own to watch the server with (not one of the pool's)."""
    async with aioconn.connect(server.host, server.port, read_timeout=5) as conn:
        yield conn


async def connections_received(watcher: aioconn.Connection) -> int:
    """The server's count of every connection it ever accepted (``INFO stats``)."""
    info = await redis_command(watcher, "INFO", "stats")
    for line in info.decode().splitlines():
        if line.startswith("total_connections_received:"):
            return int(line.partition(":")[2])
    raise AssertionError(f"no total_connections_received in INFO stats: {info!r}")


async def named_clients(watcher: aioconn.Connection, name: str) -> set[int]:
    """The ids of the server's clients named ``name`` (``CLIENT LIST``)."""
    listing = await redis_command(watcher, "CLIENT", "LIST")
    ids = set()
    for line in listing.decode().splitlines():
        fields = dict(field.partition("=")[::2] for field in line.split())
        if fields.get("name") == name:
            ids.add(int(fields["id"]))
    return ids


async def test_a_cancellation_storm_gets_every_value_right(redis_server: RedisServer) -> None:
    rng = random.Random(SEED)
    connector = CountingRedisConnector(
        redis_server.host, redis_server.port, "integ-redis-storm", read_timeout=5
    )
    pool = Pool(connector, min_size=POOL_SIZE, max_size=POOL_SIZE, name="redis-storm")
    redis = recipe_client(pool)
    asked = answered = wrong = timeouts = 0
    deadline = time.monotonic() + STORM_SECONDS

    async def worker() -> None:
        nonlocal asked, answered, wrong, timeouts
        while asked < STORM_REQUESTS and time.monotonic() < deadline:
            asked += 1
            token = b"%d:" % asked + rng.randbytes(rng.randrange(TOKEN_BYTES))
            commands: list[tuple[Any, ...]] = [("ECHO", token)]
            if rng.random() < 0.7:
                block = rng.randint(*BLOCK_MS) / 1000
                commands.insert(0, ("BLPOP", "integ:storm:empty", f"{block:.3f}"))
            try:
                async with asyncio.timeout(rng.randint(*TIMEOUT_MS) / 1000):
                    replies = await redis.pipeline(commands)
            except TimeoutError:
                timeouts += 1
                continue
            answered += 1
            wrong += replies != [None] * (len(commands) - 1) + [token]

    async with monitor(redis_server) as watcher:
        received = await connections_received(watcher)
        async with redis:
            assert connector.attempts == POOL_SIZE
            started = time.monotonic()
            async with asyncio.timeout(STORM_SECONDS + 5):
                await asyncio.gather(*(worker() for _ in range(WORKERS)))
            took = time.monotonic() - started

            async def quiet() -> bool:
                stats = pool.stats()
                return (stats.in_use, stats.opening, stats.returning) == (0, 0, 0)

            # (Not until it refilled min_size: that waits for the maintenance task's next
            # round, up to 5 s away.)
            await poll(quiet, "every connection given back")
            stats = pool.stats()
            new_sessions = connector.attempts - POOL_SIZE
            interrupted = stats.discarded.interrupted

            async def server_agrees() -> bool:
                return len(await named_clients(watcher, connector.client_name)) == stats.size

            # The server ends a client a moment after the pool closed it.
            await poll(server_agrees, f"the server shows the pool's {stats.size} clients")
            on_server = await named_clients(watcher, connector.client_name)
            server_new = await connections_received(watcher) - received - POOL_SIZE
        summary = (
            f"{asked} requests in {took:.2f} s: {answered} answered, {wrong} wrong,"
            f" {timeouts} timed out ({interrupted} inside their block);"
            f" {new_sessions} new server sessions (server counted {server_new}),"
            f" {100 * new_sessions / max(interrupted, 1):.1f} per 100 interrupted"
        )
        report(f"Redis storm: {summary}")
        assert wrong == 0, summary
        assert asked == answered + timeouts, summary
        assert interrupted >= MIN_INTERRUPTED, summary
        assert answered >= STORM_REQUESTS // 10, summary
        assert 100 * new_sessions <= SESSIONS_PER_100_INTERRUPTED * interrupted, summary
        # Every connection the pool opened is open or was discarded for an interrupted
        # request, and the server saw exactly the connections our connector opened.
        assert connector.attempts == stats.size + stats.discarded.total, summary
        assert stats.discarded.total == interrupted, summary
        assert server_new == new_sessions, summary
        assert len(on_server) == stats.size, summary
        assert on_server <= set(connector.client_ids), summary


SIZE_MIN, SIZE_MAX = 3, 8
SIZE_WORKERS = 12


async def test_the_pool_size_is_the_servers_count_of_our_clients(redis_server: RedisServer) -> None:
    connector = CountingRedisConnector(
        redis_server.host, redis_server.port, "integ-redis-size", read_timeout=5
    )
    async with monitor(redis_server) as watcher:

        async def on_server() -> set[int]:
            return await named_clients(watcher, connector.client_name)

        def server_shows(count: int) -> Any:
            async def shows() -> bool:
                return len(await on_server()) == count

            return shows

        pool = Pool(connector, min_size=SIZE_MIN, max_size=SIZE_MAX, name="redis-size")
        redis = recipe_client(pool)
        try:
            # Before the load: open() filled min_size, each named by init, and no more.
            await redis.__aenter__()
            assert pool.stats().size == SIZE_MIN
            await poll(server_shows(SIZE_MIN), f"the server shows {SIZE_MIN} clients")
            assert await on_server() == set(connector.client_ids)

            # During the load: every connection leased (each blocked in BLPOP), the rest queue.
            release = asyncio.Event()

            async def hold(n: int) -> object:
                async with pool.acquire() as conn:
                    await release.wait()
                    return await redis_command(conn, "ECHO", n)

            holders = [asyncio.create_task(hold(n)) for n in range(SIZE_WORKERS)]

            async def saturated() -> bool:
                stats = pool.stats()
                return (stats.in_use, stats.waiting) == (SIZE_MAX, SIZE_WORKERS - SIZE_MAX)

            await poll(saturated, "every connection leased")
            during = await on_server()
            stats = pool.stats()
            assert (stats.size, stats.idle, stats.opening) == (SIZE_MAX, 0, 0)
            assert during == set(connector.client_ids)
            assert len(during) == SIZE_MAX
            release.set()
            async with asyncio.timeout(5):
                replies = await asyncio.gather(*holders)
            assert replies == [b"%d" % n for n in range(SIZE_WORKERS)]
            assert pool.stats().size == SIZE_MAX == len(await on_server())
        finally:
            await redis.__aexit__(None, None, None)
        # After close: none left, on either side.
        assert pool.stats().size == 0
        await poll(server_shows(0), "the server shows no client of ours")
        assert connector.attempts == SIZE_MAX


PROXY_WORKERS = 16
PROXY_POOL = 8
PROXY_MAX_USES = 10  # new links keep meeting the reset toxic (each link draws once)
REQUEST_TIMEOUT = 3.0
# What a caller of the recipe's client may see while connections are reset: the pool's
# connect error, or the connection closed under it (docs/reference/errors.md).
REDIS_DOCUMENTED: tuple[type[BaseException], ...] = (
    aioconn.ConnectError,
    aioconn.ConnectionClosed,
    aioconn.PoolTimeout,
)


async def test_resets_and_latency_from_a_chaos_proxy(redis_server: RedisServer) -> None:
    async with ChaosProxy(redis_server.host, redis_server.port, seed=SEED) as proxy:
        recoveries = Recoveries()
        connector = CountingRedisConnector(
            proxy.host,
            proxy.port,
            "integ-redis-chaos",
            connect_timeout=REQUEST_TIMEOUT,
            read_timeout=REQUEST_TIMEOUT,
        )
        pool = Pool(
            connector,
            max_size=PROXY_POOL,
            max_uses=PROXY_MAX_USES,
            acquire_timeout=REQUEST_TIMEOUT,
            on_event=recoveries,
            name="redis-chaos",
        )
        async with recipe_client(pool) as redis:

            async def ask(n: int) -> tuple[object, object]:
                key = f"integ:chaos:{n}"
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    replies = await redis.pipeline([("SET", key, n, "EX", 60), ("GET", key)])
                return [b"OK", b"%d" % n], replies

            load = Load(
                ask,
                documented=REDIS_DOCUMENTED,
                workers=PROXY_WORKERS,
                max_requests=100_000,
                max_seconds=20.0,
            )
            tally = await through_chaos(load, proxy, recoveries)
            report(
                f"Redis behind ChaosProxy: {tally.summary()};"
                f" connects {connector.attempts}; discarded {pool.stats().discarded}"
            )
