"""Correctness checks run in every round, and the fairness monitor of S2.

A failed check raises ``CheckFailed``; the runner finishes the report, marks the failure in it and
exits non-zero.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Any


class CheckFailed(AssertionError):
    """A pool broke one of the benchmark's correctness checks."""


class NotApplicable(Exception):
    """A contender cannot run this scenario (the reason is reported as n/a)."""


class Holds:
    """Which resources are held right now: never one by two tasks, never more than max_size."""

    __slots__ = ("held", "max_size", "peak", "who")

    def __init__(self, max_size: int, who: str) -> None:
        self.held: set[int] = set()
        self.max_size = max_size
        self.peak = 0
        self.who = who

    def take(self, resource: object) -> None:
        key = id(resource)
        held = self.held
        if key in held:
            raise CheckFailed(f"{self.who}: {resource!r} handed to two tasks at once")
        held.add(key)
        if len(held) > self.peak:
            self.peak = len(held)
            if self.peak > self.max_size:
                raise CheckFailed(
                    f"{self.who}: {self.peak} resources held, max_size={self.max_size}"
                )

    def give(self, resource: object) -> None:
        self.held.discard(id(resource))


class Fairness:
    """Counts overtakes: acquires served while an acquire that started earlier still waits."""

    __slots__ = ("_done", "_next", "_pending", "overtakes")

    def __init__(self) -> None:
        self._next = 0
        self._pending: list[int] = []
        self._done: set[int] = set()
        self.overtakes = 0

    def start(self) -> int:
        ticket = self._next
        self._next += 1
        heapq.heappush(self._pending, ticket)
        return ticket

    def served(self, ticket: int) -> None:
        pending, done = self._pending, self._done
        while pending[0] in done:
            done.discard(heapq.heappop(pending))
        if pending[0] != ticket:
            self.overtakes += 1
        done.add(ticket)


async def check_exhaustion(pool: Any, size: int, who: str) -> None:
    """A warm pool of ``size`` hands out ``size`` distinct resources, then makes the next wait."""
    held: list[tuple[Any, Any]] = []  # (lease, resource)
    extra: asyncio.Future[None] | None = None
    try:
        for _ in range(size):
            lease = pool.acquire()
            held.append((lease, await lease.__aenter__()))
        if len({id(resource) for _, resource in held}) != size:
            raise CheckFailed(f"{who}: {size} acquires returned duplicates")
        extra = asyncio.ensure_future(_acquire_once(pool))
        await asyncio.sleep(0.01)
        if extra.done():
            raise CheckFailed(f"{who}: acquire number {size + 1} did not wait (max_size={size})")
    finally:
        for lease, _ in reversed(held):
            await lease.__aexit__(None, None, None)
    await asyncio.wait_for(extra, 5)  # served by one of the releases above


async def _acquire_once(pool: Any) -> None:
    async with pool.acquire():
        pass
