"""The two home-made pools: the floor (the least a correct FIFO pool does) and an asyncio.Queue.

The floor is the yardstick of every ratio: an idle deque, a deque of waiter futures, direct
hand-off of a returned resource to the longest waiter (so nobody can barge), lazy creation up to
``max_size``, and nothing else: no timeouts, no health checks, no statistics, no close.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

Factory = Callable[[], Awaitable[Any]]


class FloorPool:
    """A minimal FIFO pool; ``async with pool.acquire() as resource:``."""

    def __init__(self, factory: Factory, max_size: int) -> None:
        self._factory = factory
        self._max_size = max_size
        self._size = 0
        self._idle: deque[Any] = deque()
        self._waiters: deque[asyncio.Future[Any]] = deque()

    def acquire(self) -> _FloorLease:
        return _FloorLease(self)

    async def _get(self) -> Any:
        if self._idle:  # a non-empty idle deque means nobody waits: hand-off comes first
            return self._idle.pop()
        if self._size < self._max_size:
            self._size += 1
            try:
                return await self._factory()
            except BaseException:
                self._size -= 1
                raise
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._put(waiter.result())  # handed over, then cancelled: pass it on
            raise

    def _put(self, resource: Any) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # skip waiters that were cancelled
                waiter.set_result(resource)
                return
        self._idle.append(resource)


class _FloorLease:
    __slots__ = ("_pool", "_resource")

    def __init__(self, pool: FloorPool) -> None:
        self._pool = pool

    async def __aenter__(self) -> Any:
        self._resource = resource = await self._pool._get()
        return resource

    async def __aexit__(self, *exc_info: object) -> None:
        self._pool._put(self._resource)


class QueuePool:
    """The textbook pool: resources in an ``asyncio.Queue``, created lazily up to ``max_size``.

    A returned resource goes into the queue and *wakes* the first getter, so a task that calls
    ``acquire`` before the woken getter runs can take it first (barging).
    """

    def __init__(self, factory: Factory, max_size: int) -> None:
        self._factory = factory
        self._max_size = max_size
        self._size = 0
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def acquire(self) -> _QueueLease:
        return _QueueLease(self)

    async def _get(self) -> Any:
        if self._queue.empty() and self._size < self._max_size:
            self._size += 1
            try:
                return await self._factory()
            except BaseException:
                self._size -= 1
                raise
        return await self._queue.get()


class _QueueLease:
    __slots__ = ("_pool", "_resource")

    def __init__(self, pool: QueuePool) -> None:
        self._pool = pool

    async def __aenter__(self) -> Any:
        self._resource = resource = await self._pool._get()
        return resource

    async def __aexit__(self, *exc_info: object) -> None:
        self._pool._queue.put_nowait(self._resource)
