"""Small helpers shared by the pool tests."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aioconn import Pool


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Step the loop until ``predicate()`` holds: for state that background tasks change.

    Waits in small steps under a hard deadline; it asserts nothing about how long it took.
    """
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110  (background tasks change it; no event to await)
            await asyncio.sleep(0.002)


async def until_waiting(pool: Pool[Any], n: int) -> None:
    """Step the loop until exactly ``n`` callers queue in ``pool``."""
    for _ in range(10_000):
        if pool.stats().waiting == n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"expected {n} waiters, have {pool.stats().waiting}")


_ids = itertools.count(1)


@dataclass(eq=False)
class Thing:
    """A stand-in resource for pool-logic tests."""

    id: int = field(default_factory=lambda: next(_ids))
    closed: bool = False
    dirty: bool = False


@dataclass
class ThingFactory:
    """A factory with hooks that count calls; ``alive`` decides ``check``."""

    made: list[Thing] = field(default_factory=list)
    closes: int = 0
    checks: int = 0
    resets: int = 0
    alive: Callable[[Thing], bool] = lambda thing: True
    fail_reset: bool = False

    async def open(self) -> Thing:
        thing = Thing()
        self.made.append(thing)
        return thing

    async def close(self, thing: Thing) -> None:
        self.closes += 1
        thing.closed = True

    async def check(self, thing: Thing) -> bool:
        self.checks += 1
        return self.alive(thing)

    async def reset(self, thing: Thing) -> None:
        self.resets += 1
        if self.fail_reset:
            raise RuntimeError("reset failed")
