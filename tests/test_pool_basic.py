"""Pool basics: acquire/release, the fast path, block exits, reset, stats counted exactly."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import aioconn
from aioconn import Pool, TCPConnector
from aioconn.testing import EchoServer
from pool_helpers import Thing, ThingFactory, eventually, until_waiting


async def test_round_trips_share_connections(echo_server: EchoServer) -> None:
    async with Pool(TCPConnector("127.0.0.1", echo_server.port), max_size=3) as pool:

        async def request(i: int) -> bytes:
            async with pool.acquire() as conn:
                await conn.send(b"%d\n" % i)
                return await conn.readline()

        replies = await asyncio.gather(*(request(i) for i in range(60)))
        assert replies == [b"%d\n" % i for i in range(60)]
        # Connects run detached from the waiters: on a loaded machine the first connection can
        # serve every request before the other two finish opening. They still join the pool.
        await eventually(lambda: pool.stats().opening == 0)
        stats = pool.stats()
        assert (stats.size, stats.idle, stats.in_use, stats.waiting) == (3, 3, 0, 0), stats
        assert (stats.acquired, stats.released, stats.created) == (60, 60, 3)
        assert stats.discarded.total == 0
        assert echo_server.open_count == 3
    await echo_server.wait_open_count(0)
    assert echo_server.opened == 3


async def test_fast_path_completes_without_suspending() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=2) as pool:
        async with pool.acquire():
            pass  # warm: one idle Thing
        coro = pool.get()
        with pytest.raises(StopIteration) as done:
            coro.send(None)  # a coroutine that never suspends finishes on its first step
        thing = done.value.value
        assert isinstance(thing, Thing)
        assert thing is factory.made[0]
        await pool.put(thing)


async def test_a_lease_enters_and_exits_by_hand_and_through_an_exit_stack() -> None:
    # Lease.__aenter__/__aexit__ return awaitables (a done future on the fast paths, else a
    # coroutine): whatever awaits them — async with, AsyncExitStack, a caller by hand — gets
    # the same resource and the same return.
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        async with contextlib.AsyncExitStack() as stack:
            first = await stack.enter_async_context(pool.acquire())  # opens one: the coroutine
            assert pool.stats().in_use == 1
        assert (pool.stats().idle, pool.stats().in_use) == (1, 0)
        lease = pool.acquire()
        entered = lease.__aenter__()
        assert not asyncio.iscoroutine(entered)  # the fast path: already done, leased
        assert pool.stats().in_use == 1
        assert await entered is first
        exited = lease.__aexit__(None, None, None)
        assert not asyncio.iscoroutine(exited)  # a clean return: done, back to idle
        assert (pool.stats().idle, pool.stats().in_use) == (1, 0)
        assert await exited is None  # None: an exception in the block is not suppressed
        with pytest.raises(RuntimeError, match="already returned"):
            await lease.__aexit__(None, None, None)  # a second exit changes nothing
        lease = pool.acquire()
        assert await lease.__aenter__() is first
        assert await lease.__aexit__(ValueError, ValueError("x"), None) is None  # discarded
        stats = pool.stats()
    assert (stats.acquired, stats.released, stats.created, factory.closes) == (3, 3, 1, 1)
    assert stats.discarded == aioconn.Discards(error=1)


async def test_block_exits_decide_reuse_or_discard() -> None:
    factory = ThingFactory()
    async with Pool(
        factory.open, close=factory.close, is_reusable=lambda t: not t.dirty, max_size=1
    ) as pool:
        with pytest.raises(KeyError):
            async with pool.acquire():
                raise KeyError("any exception: the protocol state is unknown, discarded")
        with pytest.raises(ConnectionResetError):
            async with pool.acquire():
                raise ConnectionResetError("I/O error: discarded")
        with pytest.raises(aioconn.ReadTimeout):
            async with pool.acquire():
                raise aioconn.ReadTimeout("aioconn error: discarded")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.001), pool.acquire():
                await asyncio.Event().wait()  # cancelled by the timeout: discarded
        async with pool.acquire() as thing:
            thing.dirty = True  # the connector says it is not reusable: discarded
        async with pool.acquire() as thing:
            pass
        await pool.put(await pool.get(), discard=True)
        stats = pool.stats()
    assert stats.discarded == aioconn.Discards(interrupted=1, error=3, not_reusable=1, requested=1)
    assert (stats.acquired, stats.released, stats.created) == (7, 7, 6)
    assert factory.closes == 6
    assert all(t.closed for t in factory.made)


async def test_cancelled_task_discards_its_connection(echo_server: EchoServer) -> None:
    async with Pool(TCPConnector("127.0.0.1", echo_server.port), max_size=1) as pool:
        blocked = asyncio.Event()

        async def stuck() -> None:
            async with pool.acquire() as conn:
                await conn.send(b"request\n")
                blocked.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(stuck())
        await blocked.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.stats().discarded.interrupted == 1
        async with pool.acquire() as conn:
            await conn.send(b"mine\n")
            assert await conn.readline() == b"mine\n"
        assert pool.stats().created == 2
    await echo_server.wait_open_count(0)


async def test_reset_runs_on_every_return_and_failure_discards() -> None:
    factory = ThingFactory()
    pool = Pool(factory.open, close=factory.close, reset=factory.reset, max_size=1)
    async with pool:
        async with pool.acquire():
            pass
        with pytest.raises(ValueError, match="boom"):
            async with pool.acquire():
                raise ValueError("boom")  # not reset: discarded, whatever the exception
        assert factory.resets == 1
        assert pool.stats().discarded.error == 1
        async with pool.acquire():
            pass
        assert factory.resets == 2
        assert pool.stats().idle == 1
        factory.fail_reset = True
        async with pool.acquire():
            pass
        stats = pool.stats()
        assert factory.resets == 3
        assert stats.discarded.reset_failed == 1
        assert (stats.idle, stats.size) == (0, 0)


async def test_check_after_idle_replaces_dead_connection_invisibly() -> None:
    factory = ThingFactory(alive=lambda thing: thing.id != first_id)
    first_id = -1
    async with Pool(
        factory.open, close=factory.close, check=factory.check, check_after_idle=0.01
    ) as pool:
        async with pool.acquire() as thing:
            first_id = thing.id
        # Let it idle past check_after_idle: the loop clock has to move on.
        await asyncio.sleep(0.02)
        async with pool.acquire() as thing:
            assert thing.id != first_id
        stats = pool.stats()
    assert factory.checks == 1
    assert stats.discarded.check_failed == 1
    assert stats.created == 2


async def test_max_lifetime_retires_on_return_not_in_use() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_lifetime=0.01) as pool:
        async with pool.acquire() as thing:
            await asyncio.sleep(0.02)  # outlives max_lifetime while in use
            assert not thing.closed  # never retired while in use
        stats = pool.stats()
        assert stats.discarded.max_lifetime == 1
        assert stats.idle == 0


async def test_too_many_waiters_fails_at_once() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1, max_waiting=1) as pool:
        held = await pool.get()
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        with pytest.raises(aioconn.TooManyWaiters, match="max_waiting=1"):
            await pool.get()
        await pool.put(held)
        assert await waiter is held
        await pool.put(held)


async def test_pool_timeout_message_has_the_numbers() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=2, name="db") as pool:
        a, b = await pool.get(), await pool.get()
        with pytest.raises(aioconn.PoolTimeout) as caught:
            await pool.get(timeout=0.01)
        assert isinstance(caught.value, TimeoutError)
        assert str(caught.value) == (
            "db: no connection within 0.01 s (max_size=2, in_use=2, idle=0, opening=0, waiting=0)"
        )
        assert pool.stats().timeouts == 1
        await pool.put(a)
        await pool.put(b)


async def test_min_size_opened_concurrently_and_kept(echo_server: EchoServer) -> None:
    async with Pool(TCPConnector("127.0.0.1", echo_server.port), min_size=4) as pool:
        assert pool.stats().idle == 4
        assert echo_server.open_count == 4


async def test_open_fails_when_min_size_cannot_connect() -> None:
    with socket_port_closed() as port:
        pool = Pool(TCPConnector("127.0.0.1", port), min_size=2)
        with pytest.raises(aioconn.ConnectError, match=f"127.0.0.1:{port}"):
            await pool.open()
        assert pool.closed


async def test_connect_failure_reaches_the_waiter_and_pool_recovers() -> None:
    with socket_port_closed() as port:
        pool = Pool(TCPConnector("127.0.0.1", port), max_size=2)
        async with pool:
            with pytest.raises(aioconn.ConnectError, match=f"127.0.0.1:{port}"):
                await pool.get()
            assert pool.stats().connect_failures == 1
            async with EchoServer(port=port) as server:
                async with pool.acquire() as conn:
                    await conn.send(b"back\n")
                    assert await conn.readline() == b"back\n"
                await pool.close()
                await server.wait_open_count(0)


async def test_connect_retry_is_used_for_pool_connections() -> None:
    attempts = 0

    async def flaky() -> Thing:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise OSError("not yet")
        return Thing()

    retry = aioconn.Retry(attempts=3, initial_delay=0.001, max_delay=0.001)
    async with Pool(flaky, connect_retry=retry) as pool, pool.acquire() as thing:
        assert isinstance(thing, Thing)
    assert attempts == 3
    assert pool.stats().connect_failures == 0


async def test_resize_grows_for_waiters_and_shrinks_idle() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        held = await pool.get()
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        pool.resize(max_size=2)
        second = await waiter
        assert second is not held
        await pool.put(held)
        await pool.put(second)
        assert pool.stats().idle == 2
        pool.resize(max_size=1)
        stats = pool.stats()
        assert (stats.idle, stats.max_size, stats.discarded.resized) == (1, 1, 1)


async def test_repr_shows_state() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, name="things", max_size=3) as pool:
        async with pool.acquire():
            assert repr(pool) == (
                "<aioconn.Pool 'things' [open | 1 in use, 0 idle, 0 opening, 0 waiting"
                " | max_size=3]>"
            )


class socket_port_closed:
    """A loopback port with nothing listening (bound, then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        return None


async def test_queued_acquires_time_out_on_their_own_deadlines() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1, acquire_timeout=0.05) as pool:
        held = await pool.get()
        defaults = [asyncio.create_task(pool.get()) for _ in range(5)]  # one shared timer
        short = asyncio.create_task(pool.get(timeout=0.02))  # a timer of its own
        patient = asyncio.create_task(pool.get(timeout=None))
        await until_waiting(pool, 7)
        with pytest.raises(aioconn.PoolTimeout, match=r"within 0\.02 s"):
            await short
        assert pool.stats().waiting == 6
        for task in defaults:
            with pytest.raises(aioconn.PoolTimeout, match=r"within 0\.05 s"):
                await task
        stats = pool.stats()
        assert (stats.timeouts, stats.waiting) == (6, 1)
        await pool.put(held)
        assert await patient is held
        await pool.put(held)
        assert pool.stats().waiting == 0
