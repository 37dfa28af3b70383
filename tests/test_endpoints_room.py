"""Room under ``max_per_endpoint`` that appears outside a pool event reaches the pool at once.

``Endpoints`` frees a place on an endpoint when a connection's close begins and when one
connect attempt inside ``connect()`` fails (the call then fails over). The pool must hear of
it then: otherwise a queued caller waits with room to open and nothing opening for it. Both
found by tests/test_endpoints_explore.py.
"""

from __future__ import annotations

import asyncio

from aioconn import Endpoints, Pool
from pool_helpers import until_waiting


class Server:
    """An in-memory endpoint: closes may hang on ``finish``; one connect may be refused."""

    def __init__(self, *, host: str, port: int) -> None:
        self.key = f"{host}:{port}"
        self.made = 0
        self.closing = asyncio.Event()  # a close began
        self.finish: asyncio.Event | None = None  # closes wait for it when set
        self.blip: asyncio.Event | None = None  # the next connect waits for it, then is refused

    async def connect(self) -> str:
        if self.blip is not None:
            blip, self.blip = self.blip, None
            await blip.wait()
            raise ConnectionRefusedError(111, f"{self.key}: one refused connect")
        self.made += 1
        return f"{self.key}#{self.made}"

    async def close(self, resource: str) -> None:
        self.closing.set()
        if self.finish is not None:
            await self.finish.wait()


def servers_for(keys: list[str]) -> tuple[dict[str, Server], Endpoints[str]]:
    servers: dict[str, Server] = {}

    def make(*, host: str, port: int) -> Server:
        server = Server(host=host, port=port)
        servers[server.key] = server
        return server

    return servers, Endpoints.using(
        make, keys, strategy="primary", max_per_endpoint=1, eject_after=None
    )


async def test_a_place_freed_when_a_close_begins_serves_the_waiter_at_once() -> None:
    servers, endpoints = servers_for(["a:1"])
    async with Pool(endpoints, max_size=2, acquire_timeout=5, close_timeout=5) as pool:
        server = servers["a:1"]
        server.finish = asyncio.Event()
        held = await pool.get()
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)  # a is at its cap of 1
        await pool.put(held, discard=True)  # its close begins, and hangs until `finish`
        await server.closing.wait()
        pool.check_invariants()  # room on a: a connect is in flight for the waiter
        assert pool.stats().opening + pool.stats().size == 1
        fresh = await waiter
        assert fresh == "a:1#2"  # served while the old one still closes
        stats = pool.stats()
        assert (stats.waiting, stats.in_use, stats.timeouts) == (0, 1, 0)
        server.finish.set()
        await pool.put(fresh)


async def test_a_failed_attempt_that_fails_over_frees_its_place_for_the_next_waiter() -> None:
    servers, endpoints = servers_for(["a:1", "b:1"])
    async with Pool(endpoints, max_size=3, acquire_timeout=5, connect_backoff=None) as pool:
        a, b = servers["a:1"], servers["b:1"]
        on_a, on_b = await pool.get(), await pool.get()
        await pool.put(on_a, discard=True)  # a: 0 open, b: 1 (its cap)
        blip = a.blip = asyncio.Event()
        first = asyncio.create_task(pool.get())  # its connect goes to a (primary) and hangs
        await until_waiting(pool, 1)
        second = asyncio.create_task(pool.get())  # a has one opening: no room, it queues
        await until_waiting(pool, 2)
        assert pool.stats().opening == 1
        blip.set()  # a refuses that connect; the call fails over to b, at its cap, and waits
        for _ in range(20):
            if pool.stats().opening == 2:
                break
            await asyncio.sleep(0)
        pool.check_invariants()  # a has room again: the pool opened for the other waiter
        on_a = await first  # that new connection to a serves the longest waiter
        assert on_a == "a:1#2"
        await pool.put(on_b)  # b's connection back: the second caller takes it
        assert await second is on_b
        stats = pool.stats()
        assert (stats.timeouts, stats.waiting, stats.in_use) == (0, 0, 2)
        assert (a.made, b.made) == (2, 1)
        await pool.put(on_a)
        await pool.put(on_b)
