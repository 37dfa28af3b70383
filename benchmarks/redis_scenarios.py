"""S8: Redis SET+GET through the recipe client and through redis-py's two asyncio pools.

The server is a real ``redis-server`` (``servers.redis()``) on 127.0.0.1. The contenders:

- *redis-py, BlockingConnectionPool* (the baseline of every ratio): ``max_connections`` = the
  pool size, so callers wait for a connection as they do in an aioconn pool;
- *the recipe*: the ``Redis`` client of docs/recipes/redis.md (RESP over ``aioconn.Connection``
  in an ``aioconn.Pool``), loaded from the page itself;
- *redis-py, default pool*: ``redis.asyncio.Redis(host, port)`` with its default
  ``ConnectionPool``, which has no limit (``max_connections=None``): it opens a connection per
  concurrent caller instead of making callers wait, so its pool size is not the others'.

Each worker SETs its own key to a new value, then GETs it and checks the value: two commands,
two round trips, two acquires per pair. The connection count is read from the server
(``CLIENT LIST``) after the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .checks import CheckFailed
from .harness import Case, Metrics, interleave, run_once
from .plan import Plan
from .stats import percentile

BASELINE = "blocking"


@dataclass(frozen=True)
class RedisContender:
    key: str
    label: str
    is_floor: bool = False


S8_CONTENDERS = [
    RedisContender(BASELINE, "redis-py BlockingConnectionPool", is_floor=True),
    RedisContender("aioconn", "recipe: RESP over aioconn.Connection in an aioconn.Pool"),
    RedisContender("default", "redis-py default ConnectionPool (no limit)"),
]


@dataclass
class Client:
    set: Callable[[str, bytes], Awaitable[Any]]
    get: Callable[[str], Awaitable[Any]]
    connections: Callable[[], Awaitable[int]]  # client connections the server sees
    close: Callable[[], Awaitable[None]]


async def open_client(contender: RedisContender, host: str, port: int, size: int) -> Client:
    if contender.key == "aioconn":
        from .servers import recipe_redis_client

        recipe = recipe_redis_client()(host, port, max_size=size)
        await recipe.__aenter__()

        async def set_(key: str, value: bytes) -> Any:
            return await recipe.execute("SET", key, value)

        async def get(key: str) -> Any:
            return await recipe.execute("GET", key)

        async def connections() -> int:
            listing = await recipe.execute("CLIENT", "LIST")
            return len(listing.splitlines())

        async def close() -> None:
            await recipe.__aexit__(None, None, None)

        return Client(set_, get, connections, close)
    from redis.asyncio import BlockingConnectionPool, Redis

    if contender.key == BASELINE:
        client = Redis(
            connection_pool=BlockingConnectionPool(host=host, port=port, max_connections=size)
        )
    else:
        client = Redis(host=host, port=port)

    async def count() -> int:
        return len(await client.client_list())

    async def aclose() -> None:
        await client.aclose(close_connection_pool=True)

    return Client(client.set, client.get, count, aclose)


async def s8_pairs(
    contender: RedisContender, host: str, port: int, workers: int, pairs: int, size: int
) -> Metrics:
    """``workers`` tasks x ``pairs`` of SET key value / GET key, every value checked."""
    client = await open_client(contender, host, port, size)
    latencies: list[float] = []
    clock = time.perf_counter
    set_, get, label = client.set, client.get, contender.label

    async def worker(n: int) -> None:
        key = f"bench:{contender.key}:{n}"
        for i in range(pairs):
            value = b"%d:%d" % (n, i)
            asked = clock()
            ok = await set_(key, value)
            got = await get(key)
            latencies.append(clock() - asked)
            if ok not in (True, b"OK") or got != value:
                raise CheckFailed(f"{label}: SET {key} {value!r} -> {ok!r}, GET -> {got!r}")

    try:
        started = clock()
        await asyncio.gather(*(worker(n) for n in range(workers)))
        elapsed = clock() - started
        connections = await client.connections()
    finally:
        await client.close()
    if contender.key != "default" and connections > size:
        raise CheckFailed(f"{label}: the server saw {connections} connections, pool {size}")
    latencies.sort()
    return {
        "rate": workers * pairs / elapsed,
        "lat_p50": percentile(latencies, 0.50),
        "lat_p99": percentile(latencies, 0.99),
        "lat_max": latencies[-1],
        "connections": connections,
    }


def run_s8(plan: Plan, host: str, port: int) -> list[Case]:
    case = Case("S8", f"SET+GET, pool {plan.s8_pool}, {plan.s8_workers} workers")
    interleave(
        case,
        S8_CONTENDERS,
        plan.heavy_rounds,
        lambda c, _: run_once(
            lambda: s8_pairs(c, host, port, plan.s8_workers, plan.s8_pairs, plan.s8_pool),
            budget=plan.budget,
        ),
    )
    return [case]
