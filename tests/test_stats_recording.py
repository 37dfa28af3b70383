"""How durations become histogram buckets, whichever path records them.

``Lease.__aexit__`` and ``PoolCore.release`` (hold times), ``Lease.__aenter__`` and
``PoolCore.lease_to`` (wait times) append to the recorders' pending lists inline instead of
calling ``SummaryRecorder.add``; these tests drive them with a fake clock and compare the snapshots
with a recorder fed the same durations, pin where a bucket's edges are, and check that what waits
to be bucketed stays bounded.
"""

from __future__ import annotations

import asyncio
import math

import pytest

import aioconn._core
import aioconn._lease
import aioconn._runner
from aioconn import Pool
from aioconn.stats import _BUCKETS, _EDGES, _MIDDLES, BATCH, SummaryRecorder
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


def test_a_duration_on_a_bucket_edge_belongs_to_the_bucket_below_it() -> None:
    recorder = SummaryRecorder()
    for edge in (0, 1, 2, 100, _BUCKETS - 3, _BUCKETS - 2):
        recorder.add(_EDGES[edge])
        recorder.add(math.nextafter(_EDGES[edge], math.inf))
    for small in (0.0, 5e-7):
        recorder.add(small)
    recorder.add(1e12)
    buckets = recorder.snapshot().buckets
    expected = [0] * _BUCKETS
    for edge in (0, 1, 2, 100, _BUCKETS - 3, _BUCKETS - 2):
        expected[edge] += 1
        expected[edge + 1] += 1
    expected[0] += 2
    expected[_BUCKETS - 1] += 1
    assert list(buckets) == expected


def test_each_buckets_middle_lands_in_that_bucket_in_one_fold_or_one_at_a_time() -> None:
    together, one_by_one = SummaryRecorder(), SummaryRecorder()
    for middle in reversed(_MIDDLES):  # unsorted: fold sorts
        together.add(middle)
    for middle in _MIDDLES:
        one_by_one.add(middle)
        one_by_one.fold()
    assert together.snapshot().buckets == (1,) * _BUCKETS
    assert one_by_one.snapshot().buckets == (1,) * _BUCKETS
    assert together.snapshot().max == one_by_one.snapshot().max == _MIDDLES[-1]
    assert together.count == _BUCKETS


def test_a_recorder_folds_once_a_batch_is_pending() -> None:
    recorder = SummaryRecorder()
    for n in range(3 * BATCH + 7):
        recorder.add(n * 1e-5)
        assert len(recorder.pending) < BATCH
        assert recorder.count == n + 1
    assert len(recorder.pending) == 7
    summary = recorder.snapshot()
    assert summary.count == 3 * BATCH + 7
    assert recorder.pending == []
    assert summary.max == (3 * BATCH + 6) * 1e-5


async def test_durations_waiting_to_be_bucketed_stay_bounded_in_a_long_run() -> None:
    """Every return appends a hold inline and folds both lists at BATCH: waits, appended
    without a check, stay below BATCH plus the leases outstanding."""
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=2) as pool:
        core = pool._core
        cycles = 0

        async def worker() -> None:
            nonlocal cycles
            for _ in range(BATCH):
                async with pool.acquire():
                    await asyncio.sleep(0)
                cycles += 1
                assert len(core.hold_times.pending) < BATCH
                assert len(core.wait_times.pending) <= BATCH + 2

        await asyncio.gather(*(worker() for _ in range(4)))
        stats = pool.stats()
        assert cycles == 4 * BATCH
        assert stats.released == stats.hold_time.count == 4 * BATCH
        assert stats.acquired == 4 * BATCH
        assert stats.acquire_wait.count == 4 * BATCH  # the instant ones as zeros
        assert stats.acquire_wait.count - pool._core.instant_acquires > BATCH  # many waited
