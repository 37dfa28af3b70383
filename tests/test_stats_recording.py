"""The pool's inlined hold/wait recording buckets exactly like ``SummaryRecorder.add``.

``Lease.__aexit__`` and ``PoolCore.release`` (hold times) and ``Lease.__aenter__`` (wait times)
inline the recorder's arithmetic for speed; these tests drive them with a fake clock and compare the
snapshots with a recorder fed the same durations.
"""

from __future__ import annotations

import asyncio

import pytest

import aioconn._core
import aioconn._lease
import aioconn._runner
from aioconn import Pool
from aioconn.stats import SummaryRecorder
from pool_helpers import Thing, ThingFactory, eventually, until_waiting

# Around bucket edges, below the 1 µs floor, zero, and past the last bucket (~18 hours).
DURATIONS = [0.0, 5e-7, 1e-6, 1.0000001e-6, 1.05e-6, 2.5e-6, 1e-3, 0.75, 3.0, 7e4, 1e6]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(aioconn._core, "_monotonic", fake)
    monkeypatch.setattr(aioconn._runner, "_monotonic", fake)
    monkeypatch.setattr(aioconn._lease, "monotonic", fake)
    return fake


def quiet_pool(factory: ThingFactory) -> Pool[Thing]:
    """A pool whose timers and expiry never look at the (fake) clock."""
    return Pool(
        factory.open,
        close=factory.close,
        max_size=1,
        acquire_timeout=None,
        max_idle=None,
        max_lifetime=None,
        slow_acquire_threshold=None,
    )


async def test_hold_times_bucket_like_the_recorder(clock: FakeClock) -> None:
    async with quiet_pool(ThingFactory()) as pool:
        for held in DURATIONS:
            clock.now = 0.0
            async with pool.acquire():
                clock.now = held
        expected = SummaryRecorder()
        for held in DURATIONS:
            expected.add(held)
        stats = pool.stats()
        assert stats.hold_time == expected.snapshot()
        assert stats.released == len(DURATIONS)


async def test_hold_times_of_get_and_put_bucket_like_the_recorder(clock: FakeClock) -> None:
    """``put()`` records through ``PoolCore.release``, an ``acquire()`` block's exit inline."""
    async with quiet_pool(ThingFactory()) as pool:
        for held in DURATIONS:
            clock.now = 0.0
            thing = await pool.get()
            clock.now = held
            await pool.put(thing)
        expected = SummaryRecorder()
        for held in DURATIONS:
            expected.add(held)
        stats = pool.stats()
        assert stats.hold_time == expected.snapshot()
        assert stats.released == len(DURATIONS)


async def test_wait_times_bucket_like_the_recorder(clock: FakeClock) -> None:
    async with quiet_pool(ThingFactory()) as pool:
        async with pool.acquire():  # opens the one connection (waited 0 on the fake clock)
            pass
        for waited in DURATIONS:
            clock.now = 0.0
            holder_may_go = asyncio.Event()

            async def hold(go: asyncio.Event = holder_may_go) -> None:
                async with pool.acquire():  # instant: the connection is idle
                    await go.wait()

            holder = asyncio.create_task(hold())
            await eventually(lambda: pool.stats().in_use == 1)
            waiter = asyncio.create_task(pool.get())
            await until_waiting(pool, 1)  # queued at clock 0
            clock.now = waited
            holder_may_go.set()
            thing = await waiter
            await holder
            await pool.put(thing)
        expected = SummaryRecorder()
        for waited in [0.0, *DURATIONS]:
            expected.add(waited)
        stats = pool.stats()
        instant = len(DURATIONS)  # each holder's acquire
        assert stats.acquire_wait == expected.snapshot(zeros=instant)
        assert stats.acquired == 1 + 2 * len(DURATIONS)
