"""Closing under load, servers restarting, and the background maintenance task."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref

import pytest

import aioconn
from aioconn import Pool, TCPConnector
from aioconn.testing import EchoServer
from pool_helpers import ThingFactory, eventually, until_waiting


async def test_close_with_connections_in_use_aborts_after_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with EchoServer() as server:
        pool = Pool(TCPConnector("127.0.0.1", server.port), max_size=2, name="busy")
        await pool.open()
        holding = asyncio.Event()

        async def hog() -> None:
            async with pool.acquire():
                holding.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(hog(), name="hog-task")
        await holding.wait()
        started = time.monotonic()
        await pool.close(timeout=0.1)
        elapsed = time.monotonic() - started
        assert 0.1 <= elapsed < 2.0
        await server.wait_open_count(0)
        stats = pool.stats()
        assert (stats.in_use, stats.discarded.aborted) == (0, 1)
        assert "hog-task" in caplog.text
        assert "closing aborted a connection" in caplog.text
        task.cancel()  # the holder's late release is a no-op, not an error
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.stats().released == 0


async def test_close_wakes_waiters_and_waits_for_holders() -> None:
    factory = ThingFactory()
    pool = Pool(factory.open, close=factory.close, max_size=1)
    await pool.open()
    held = await pool.get()
    waiter = asyncio.create_task(pool.get())
    await until_waiting(pool, 1)
    closing = asyncio.create_task(pool.close(timeout=5))
    with pytest.raises(aioconn.PoolClosed):
        await waiter
    assert not closing.done()  # still waiting for the holder
    await pool.put(held)
    await closing
    assert held.closed
    assert pool.stats().discarded.pool_closed == 1
    with pytest.raises(aioconn.PoolClosed):
        await pool.get()
    await pool.close()  # idempotent


async def test_close_from_inside_an_acquire_block_does_not_deadlock() -> None:
    async with EchoServer() as server:
        pool = Pool(TCPConnector("127.0.0.1", server.port), max_size=2)
        await pool.open()
        started = time.monotonic()
        async with pool.acquire() as conn:
            await pool.close(timeout=5)
            assert time.monotonic() - started < 2.0  # did not wait for our own connection
            await conn.send(b"still usable\n")
            assert await conn.readline() == b"still usable\n"
        # Leaving the block closed the connection before returning: no waiting needed.
        assert conn.closed
        assert pool.stats().discarded.pool_closed == 1
        await server.wait_open_count(0)


async def test_second_close_waits_for_the_first() -> None:
    factory = ThingFactory()
    pool = Pool(factory.open, close=factory.close, max_size=1)
    await pool.open()
    held = await pool.get()
    first = asyncio.create_task(pool.close(timeout=5))
    await asyncio.sleep(0)  # the first close is now waiting for `held`
    second = asyncio.create_task(pool.close())
    await asyncio.sleep(0)
    assert not second.done()  # waits for the first close rather than returning early
    await pool.put(held)
    await asyncio.gather(first, second)
    assert held.closed
    assert pool.stats().size == 0


async def test_server_restart_while_idle_is_invisible_to_callers() -> None:
    async with EchoServer() as first:
        port = first.port
        pool = Pool(TCPConnector("127.0.0.1", port), max_size=3)
        await pool.open()
        held = [await pool.get() for _ in range(3)]
        for conn in held:
            await pool.put(conn)
    # The server is gone; wait until the idle connections have seen it close.
    await eventually(lambda: not any(c.reusable for c in held))
    async with EchoServer(port=port) as second:
        for i in range(3):
            async with pool.acquire() as conn:
                await conn.send(b"after restart %d\n" % i)
                assert await conn.readline() == b"after restart %d\n" % i
        stats = pool.stats()
        assert stats.discarded.not_reusable == 3
        assert stats.created == 4
        await pool.close()
        await second.wait_open_count(0)


async def test_max_idle_closes_idle_connections_down_to_min_size() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, min_size=1, max_idle=0.02) as pool:
        held = [await pool.get() for _ in range(3)]
        for thing in held:
            await pool.put(thing)
        await eventually(lambda: pool.stats().idle == 1)
        stats = pool.stats()
        assert (stats.size, stats.discarded.max_idle) == (1, 2)


async def test_maintenance_refills_min_size() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, min_size=2, max_idle=0.02) as pool:
        for _ in range(2):
            await pool.put(await pool.get(), discard=True)
        await eventually(lambda: pool.stats().idle == 2)
        assert pool.stats().created == 4


async def test_keepalive_checks_idle_connections_and_drops_dead_ones() -> None:
    dead: set[int] = set()
    factory = ThingFactory(alive=lambda thing: thing.id not in dead)
    async with Pool(
        factory.open,
        close=factory.close,
        check=factory.check,
        min_size=1,
        keepalive_interval=0.01,
    ) as pool:
        first = factory.made[0]
        await eventually(lambda: factory.checks >= 2)
        assert pool.stats().idle == 1
        assert not first.closed
        dead.add(first.id)  # the firewall dropped the flow
        await eventually(lambda: first.closed and pool.stats().idle == 1)
        assert pool.stats().discarded.check_failed == 1
        async with pool.acquire() as thing:
            assert thing is not first


async def test_leak_warning_fires_once_with_the_acquiring_stack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = ThingFactory()
    leaked = asyncio.Event()

    class Notify(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "leak_timeout" in record.getMessage():
                leaked.set()

    handler = Notify()
    logging.getLogger("aioconn.pool").addHandler(handler)
    try:
        async with Pool(factory.open, close=factory.close, leak_timeout=0.02) as pool:
            with pytest.warns(aioconn.LeakWarning) as caught:  # noqa: PT031  (spans the hold)
                thing = await pool.get()  # this line is in the reported stack
                await leaked.wait()
                await asyncio.sleep(0.05)  # longer than leak_timeout again: still one warning
            await pool.put(thing)
    finally:
        logging.getLogger("aioconn.pool").removeHandler(handler)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "leak_timeout=0.02" in message
    assert "test_leak_warning_fires_once_with_the_acquiring_stack" in message
    assert "acquired at:" in message


async def test_no_leak_warning_when_released_in_time(caplog: pytest.LogCaptureFixture) -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, leak_timeout=0.02) as pool:
        for _ in range(3):
            async with pool.acquire():
                pass
        await asyncio.sleep(0.05)
    assert "leak_timeout" not in caplog.text


async def test_unclosed_pool_warns_naming_where_it_was_created() -> None:
    factory = ThingFactory()
    pool = Pool(factory.open, close=factory.close)
    await pool.open()
    with pytest.warns(ResourceWarning, match=r"unclosed <aioconn.Pool .*test_pool_lifecycle.py"):  # noqa: PT031
        del pool
        gc.collect()


async def test_an_idle_connection_does_not_keep_its_last_holder_alive() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:

        async def borrow() -> None:
            async with pool.acquire():
                pass

        task = asyncio.create_task(borrow())
        await task
        await asyncio.sleep(0)  # one loop step: the loop lets go of the callback that woke us
        finished = weakref.ref(task)
        del task
        gc.collect()
        assert finished() is None  # the slot forgot its owner on return
        assert pool.stats().idle == 1
