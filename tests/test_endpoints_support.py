"""Helpers shared by the test_endpoints_* files: loopback servers, a request load, event waits.

Not a test module (it holds no tests); it is named ``test_endpoints_*`` to live with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Self, TypeVar

from aioconn import Connection, Pool
from aioconn.events import PoolEvent
from aioconn.testing import EchoServer

E = TypeVar("E", bound=PoolEvent)

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")  # Linux routes all of 127.0.0.0/8 to lo


@contextlib.asynccontextmanager
async def echo_servers(n: int = 3) -> AsyncIterator[list[EchoServer]]:
    """``n`` echo servers, one per loopback address of ``HOSTS`` (then round again)."""
    servers: list[EchoServer] = []
    try:
        for i in range(n):
            servers.append(await EchoServer(host=HOSTS[i % len(HOSTS)]).start())
        yield servers
    finally:
        for server in servers:
            await server.stop()


async def dead_addresses(n: int = 3) -> list[str]:
    """``n`` loopback addresses nobody listens on (servers started, then stopped)."""
    async with echo_servers(n) as servers:
        addresses = [server.address for server in servers]
    return addresses


async def all_closed(*servers: EchoServer) -> None:
    """Every server saw every connection close (bounded wait, then an exact assertion)."""
    async with asyncio.timeout(5):
        for server in servers:
            await server.wait_open_count(0)
    assert [server.open_count for server in servers] == [0] * len(servers)


def five_sigma(n: int, p: float) -> float:
    """Five standard deviations of a Binomial(n, p) count.

    A count of independent picks, each landing on an endpoint with probability ``p``, has mean
    ``n p`` and standard deviation ``sqrt(n p (1 - p))``; by the normal approximation a count
    outside ``n p ± 5 sd`` happens less than once in 1.7 million runs (two-sided 5.7e-7).
    """
    return 5 * math.sqrt(n * p * (1 - p))


async def serve(conn: Connection, payload: bytes) -> None:
    """One request: send a line, read the same line back."""
    await conn.send(payload)
    reply = await conn.readline()
    assert reply == payload, (reply, payload)


class Events:
    """Pool events as they come (``Pool(on_event=events)``), and waits for particular ones."""

    def __init__(self) -> None:
        self.seen: list[PoolEvent] = []
        self._waits: list[tuple[Callable[[PoolEvent], bool], asyncio.Future[PoolEvent]]] = []

    def __call__(self, event: PoolEvent) -> None:
        self.seen.append(event)
        for predicate, future in list(self._waits):
            if not future.done() and predicate(event):
                future.set_result(event)

    def of(self, kind: type[E], endpoint: str | None = None) -> list[E]:
        """The events of type ``kind`` so far (for ``endpoint``, when given)."""
        return [
            e
            for e in self.seen
            if isinstance(e, kind)
            and (endpoint is None or getattr(e, "endpoint", None) == endpoint)
        ]

    async def next(self, kind: type[E], endpoint: str, timeout: float = 5.0) -> E:
        """Wait for the next event of type ``kind`` about ``endpoint``."""
        future: asyncio.Future[PoolEvent] = asyncio.get_running_loop().create_future()
        entry = (
            lambda e: isinstance(e, kind) and getattr(e, "endpoint", None) == endpoint,
            future,
        )
        self._waits.append(entry)
        try:
            async with asyncio.timeout(timeout):
                event = await future
        finally:
            self._waits.remove(entry)
        assert isinstance(event, kind)
        return event


class Load:
    """``workers`` tasks doing request after request through ``pool`` until the block ends.

    ``served`` counts requests per endpoint (``conn.target``), ``errors`` collects every
    failed request; ``pause()`` waits until no request is in flight and holds the workers
    until ``resume()``.
    """

    def __init__(self, pool: Pool[Connection], workers: int) -> None:
        self.pool = pool
        self.served: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self.total = 0
        self.in_flight = 0
        self._workers = workers
        self._gate = asyncio.Event()
        self._gate.set()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._waits: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    async def __aenter__(self) -> Self:
        self._tasks = [asyncio.create_task(self._work(i)) for i in range(self._workers)]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        self._gate.set()
        await asyncio.gather(*self._tasks)

    async def _work(self, worker: int) -> None:
        n = 0
        while True:
            await self._gate.wait()
            if self._stopping:
                return
            n += 1
            self.in_flight += 1
            try:
                async with self.pool.acquire() as conn:
                    await serve(conn, b"%d.%d\n" % (worker, n))
                    self.served[conn.target] += 1
            except Exception as exc:
                self.errors.append(exc)
            finally:
                self.in_flight -= 1
                self.total += 1
                self._check()

    def _check(self) -> None:
        for predicate, future in list(self._waits):
            if not future.done() and predicate():
                future.set_result(None)

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds, re-checked after every request."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waits.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await future
        finally:
            self._waits.remove(entry)

    async def more(self, n: int) -> None:
        """Wait until ``n`` more requests have finished."""
        target = self.total + n
        await self.until(lambda: self.total >= target)

    async def pause(self) -> None:
        """Hold the workers and wait until no request is in flight."""
        self._gate.clear()
        await self.until(lambda: self.in_flight == 0)

    def resume(self) -> None:
        """Let the workers go on."""
        self._gate.set()
