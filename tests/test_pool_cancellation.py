"""Cancellation at every instant loses nothing: hand-off races, cancelled releases, the CVE."""

from __future__ import annotations

import asyncio
import random

import pytest

import aioconn
from aioconn import Pool, TCPConnector
from aioconn.testing import EchoServer
from pool_helpers import Thing, ThingFactory, eventually, until_waiting


async def test_cancelled_waiter_assigned_conn_is_reclaimed() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        held = await pool.get()
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        await pool.put(held)  # handed to the waiter, which has not run yet...
        waiter.cancel()  # ...and is cancelled at that very instant
        with pytest.raises(asyncio.CancelledError):
            await waiter
        stats = pool.stats()
        assert (stats.idle, stats.in_use, stats.waiting, stats.size) == (1, 0, 0, 1)
        assert await pool.get() is held  # the same connection, not a new one
        assert pool.stats().created == 1
        await pool.put(held)


async def test_cancelled_waiter_passes_the_conn_to_the_next_waiter() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        held = await pool.get()
        first = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        second = asyncio.create_task(pool.get())
        await until_waiting(pool, 2)
        await pool.put(held)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second is held
        stats = pool.stats()
        assert (stats.in_use, stats.waiting, stats.acquired, stats.created) == (1, 0, 2, 1)
        await pool.put(held)


async def test_waiter_timing_out_at_hand_off_loses_nothing() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        held = await pool.get()
        waiter = asyncio.create_task(pool.get(timeout=5))
        await until_waiting(pool, 1)
        await pool.put(held)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pool.stats().idle == 1


async def test_release_completes_when_the_releasing_task_is_cancelled() -> None:
    factory = ThingFactory()
    started = asyncio.Event()
    gate = asyncio.Event()

    async def slow_reset(thing: Thing) -> None:
        started.set()
        await gate.wait()

    async with Pool(factory.open, close=factory.close, reset=slow_reset, max_size=1) as pool:

        async def user() -> None:
            async with pool.acquire():
                pass  # the reset on release blocks

        task = asyncio.create_task(user())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = pool.stats()
        # The release finished: the connection is discarded (its reset was interrupted).
        assert (stats.in_use, stats.idle, stats.released) == (0, 0, 1)
        assert stats.discarded.reset_failed == 1
    assert factory.closes == 1


async def test_opening_is_detached_from_cancelled_waiters() -> None:
    gate = asyncio.Event()
    connects = 0

    async def slow_open() -> Thing:
        nonlocal connects
        connects += 1
        await gate.wait()
        return Thing()

    async with Pool(slow_open, max_size=2) as pool:
        waiters = [asyncio.create_task(pool.get(timeout=None)) for _ in range(10)]
        await until_waiting(pool, 10)
        for task in waiters:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        stats = pool.stats()
        assert (stats.opening, stats.waiting) == (2, 0)  # still opening: not cancelled
        assert connects == 2  # 10 waiters, but never more than max_size connects
        gate.set()
        await eventually(lambda: pool.stats().opening == 0)
        stats = pool.stats()
        assert (stats.idle, stats.created, stats.opening) == (2, 2, 0)


async def test_cve_2023_28858_no_cross_talk_under_random_cancellation() -> None:
    """1,200 (or more) requests through 4 connections, many cut between send and reply.

    Every reply a caller receives is its own; cancelled connections are closed, never pooled;
    and at the end the server sees exactly the connections the pool holds.
    """
    rng = random.Random(28858)
    outcomes = {"ok": 0, "cut": 0}
    async with EchoServer() as server:
        pool = Pool(TCPConnector("127.0.0.1", server.port), max_size=4)
        async with pool:

            async def request(i: int) -> None:
                token = b"request-%d\n" % i
                try:
                    async with asyncio.timeout(rng.uniform(0.0, 0.004)):
                        async with pool.acquire(timeout=None) as conn:
                            await conn.send(token)
                            reply = await conn.readline()
                except TimeoutError:
                    outcomes["cut"] += 1
                    return
                assert reply == token, f"cross-talk: {token!r} got {reply!r}"
                outcomes["ok"] += 1

            # At least 12 batches, more (up to 40) until both paths were exercised 100 times:
            # how many requests a 0-4 ms timeout cuts depends on how busy the machine is.
            batches = 0
            while batches < 12 or (batches < 40 and min(outcomes["ok"], outcomes["cut"]) <= 100):
                await asyncio.gather(*(request(batches * 100 + i) for i in range(100)))
                batches += 1
            stats = pool.stats()
            assert outcomes["ok"] + outcomes["cut"] == 100 * batches
            assert outcomes["ok"] > 100  # both paths exercised
            assert outcomes["cut"] > 100
            assert stats.in_use == 0
            assert stats.size <= 4
            assert stats.released == stats.acquired
            await server.wait_until(lambda: server.open_count == pool.stats().size)
        await server.wait_open_count(0)


async def test_cancelled_request_is_closed_and_next_gets_own_reply() -> None:
    async with EchoServer() as server:
        async with Pool(TCPConnector("127.0.0.1", server.port), max_size=1) as pool:
            sent = asyncio.Event()

            async def doomed() -> None:
                async with pool.acquire() as conn:
                    await conn.send(b"first\n")
                    sent.set()
                    await asyncio.Event().wait()  # the reply stays unread

            task = asyncio.create_task(doomed())
            await sent.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with pool.acquire() as conn:
                await conn.send(b"second\n")
                assert await conn.readline() == b"second\n"
            stats = pool.stats()
            assert (stats.created, stats.discarded.interrupted) == (2, 1)
            await server.wait_open_count(1)


async def test_connection_broken_by_read_timeout_is_not_reused() -> None:
    async with EchoServer() as server:
        async with Pool(TCPConnector("127.0.0.1", server.port), max_size=1) as pool:
            async with pool.acquire() as conn:
                with pytest.raises(aioconn.ReadTimeout):
                    await conn.readline(timeout=0.01)
                # swallowed inside the block: the connector still sees it broken
            stats = pool.stats()
            assert (stats.idle, stats.discarded.not_reusable) == (0, 1)
