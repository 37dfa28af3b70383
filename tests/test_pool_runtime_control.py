"""Runtime control a trusted pool offers: non-blocking acquire, max_uses, expire(), check(),
reset_stats(), open(wait=False) and wait() (issue #11's pool features, on the new core)."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

import aioconn
from aioconn import Pool, PoolTimeout
from pool_helpers import Thing, ThingFactory, eventually, until_waiting


async def test_timeout_zero_takes_an_idle_connection_or_fails_at_once() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        with pytest.raises(PoolTimeout, match="within 0"):
            await pool.get(timeout=0)  # nothing idle: no wait, no new connection
        assert (len(factory.made), pool.stats().timeouts) == (0, 1)
        async with pool.acquire():
            pass
        async with pool.acquire(timeout=0) as thing:
            assert thing is factory.made[0]  # idle: served at once
            with pytest.raises(PoolTimeout):
                async with pool.acquire(timeout=0):
                    pass  # the only one is in use
        held = await pool.get()
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        with pytest.raises(PoolTimeout):
            await pool.get(timeout=0)  # never barges in front of a queued caller
        await pool.put(held)
        await pool.put(await waiter)


@pytest.mark.parametrize("bad", [-1, float("nan"), "0", True])
def test_timeout_zero_is_the_only_non_positive_timeout(bad: object) -> None:
    pool = Pool(ThingFactory().open)
    with pytest.raises((TypeError, ValueError), match="timeout"):
        pool.acquire(timeout=bad)  # type: ignore[arg-type]  # bad input on purpose


async def test_max_uses_retires_a_connection_on_its_last_return() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1, max_uses=3) as pool:
        seen = []
        for _ in range(7):
            async with pool.acquire() as thing:
                seen.append(thing.id)
        first, second, third = (factory.made[i].id for i in range(3))
        assert seen == [first] * 3 + [second] * 3 + [third]
        assert pool.stats().discarded.max_uses == 2
        assert [t.closed for t in factory.made] == [True, True, False]


async def test_max_uses_counts_put_and_reset_returns_too() -> None:
    factory = ThingFactory()
    async with Pool(
        factory.open, close=factory.close, reset=factory.reset, max_size=1, max_uses=2
    ) as pool:
        thing = await pool.get()
        await pool.put(thing)
        async with pool.acquire() as again:
            assert again is thing
        await eventually(lambda: thing.closed)
        assert pool.stats().discarded.max_uses == 1


def test_max_uses_is_validated() -> None:
    with pytest.raises(ValueError, match="max_uses must be >= 1, got 0"):
        Pool(ThingFactory().open, max_uses=0)


async def test_expire_retires_idle_now_and_in_use_on_return() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=2) as pool:
        idle = await pool.get()
        busy = await pool.get()
        await pool.put(idle)
        assert pool.expire() == 1
        await eventually(lambda: idle.closed)
        assert not busy.closed  # in use: untouched until it comes back
        await pool.put(busy)
        await eventually(lambda: busy.closed)
        async with pool.acquire() as fresh:
            assert fresh not in (idle, busy)
        assert pool.stats().discarded.expired == 2


async def test_check_checks_every_idle_connection_now() -> None:
    dead: set[int] = set()
    factory = ThingFactory(alive=lambda thing: thing.id not in dead)
    async with Pool(
        factory.open, close=factory.close, check=factory.check, max_size=3, check_after_idle=None
    ) as pool:
        things = [await pool.get() for _ in range(3)]
        for thing in things[:2]:
            await pool.put(thing)
        dead.add(things[0].id)
        assert await pool.check() == 1
        assert factory.checks == 2  # the two idle ones, not the one in use
        stats = pool.stats()
        assert (stats.idle, stats.in_use, stats.discarded.check_failed) == (1, 1, 1)
        await pool.put(things[2])


async def test_check_without_a_check_hook_uses_is_reusable() -> None:
    factory = ThingFactory()
    async with Pool(
        factory.open, close=factory.close, is_reusable=lambda t: not t.dirty, max_size=2
    ) as pool:
        a, b = await pool.get(), await pool.get()
        await pool.put(a)
        await pool.put(b)
        a.dirty = True
        assert await pool.check() == 1
        assert pool.stats().idle == 1


async def test_reset_stats_zeroes_counters_but_not_state() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close) as pool:
        async with pool.acquire():
            pass
        held = await pool.get()
        pool.reset_stats()
        stats = pool.stats()
        assert (stats.acquired, stats.released, stats.created) == (0, 0, 0)
        assert (stats.size, stats.in_use, stats.hold_time.count) == (1, 1, 0)
        await pool.put(held)
        assert pool.stats().released == 1


async def test_open_without_waiting_starts_while_the_server_is_down() -> None:
    up = asyncio.Event()
    attempts = 0

    async def connect() -> Thing:
        nonlocal attempts
        attempts += 1
        if not up.is_set():
            raise OSError("connection refused")
        return Thing()

    pool = Pool(connect, min_size=2, max_idle=0.05, max_lifetime=None)  # maintenance every 25 ms
    await pool.open(wait=False)  # returns although no connection can be opened
    try:
        with pytest.raises(PoolTimeout, match="0 of min_size=2 connections open"):
            await pool.wait(timeout=0.05)
        up.set()
        await pool.wait(timeout=5)  # the maintenance round refills
        assert pool.stats().size == 2
        assert attempts >= 4
    finally:
        await pool.close()


async def test_wait_before_open_and_after_close() -> None:
    pool = Pool(ThingFactory().open, min_size=1)
    with pytest.raises(RuntimeError, match="not open"):
        await pool.wait()
    await pool.open()
    await pool.wait()
    await pool.close()
    with pytest.raises(aioconn.PoolClosed):
        await pool.wait()


async def test_a_pool_dropped_without_close_is_freed_at_once_and_warns() -> None:
    pool = Pool(ThingFactory().open, min_size=1)
    await pool.open()
    gc.disable()  # freed by reference counting, not by the collector
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del pool
        assert [str(w.message)[:15] for w in caught] == ["unclosed <aioco"]
    finally:
        gc.enable()
    await asyncio.sleep(0)  # the maintenance task it cancelled ends


async def test_the_leak_report_lists_the_callers_frames_outermost_first() -> None:
    reports: list[str] = []

    def record(event: object) -> None:
        message = getattr(event, "report", None)
        if isinstance(message, str):
            reports.append(message)

    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, leak_timeout=0.01, on_event=record) as pool:
        reported = asyncio.Event()

        async def inner_helper() -> None:
            async with pool.acquire():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", aioconn.LeakWarning)
                    await eventually(lambda: bool(reports))
                reported.set()

        async def outer_helper() -> None:
            await inner_helper()

        await outer_helper()
        assert reported.is_set()
    acquired = reports[0].split("acquired at:\n", 1)[1].split("held by", 1)[0]
    assert acquired.index("outer_helper") < acquired.index("inner_helper")
    assert "asyncio" not in acquired
    assert "aioconn/" not in acquired.replace("tests/", "")
