"""Closing a pool under load: bounded, and nothing left open — whatever the peer does.

``pool.close(timeout=T)`` with connections in use and callers queued: the queued callers get
``PoolClosed`` at once; holders that give back in time have their connections closed; those
still holding after T are aborted; ``close()`` returns after T plus at most ``SLACK``; and then
no socket of the pool is open. The same holds when the peer is slow to close (``slow_close``)
and over TLS to a peer that never answers close_notify (bounded by ``close_timeout``).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from quiescence import assert_quiescent, live_connections, poll_until, take_baseline
from silent_tls import SilentTLSServer
from tls import client_context, server_context
from witness import ask

import aioconn
from aioconn import Connection, Pool, TCPConnector, _registry
from aioconn.testing import ChaosProxy, EchoServer, slow_close
from pool_helpers import until_waiting

SEED = 4242
SIZE = 4
WAITERS = 6
CLOSE_TIMEOUT = 0.3
SLACK = 0.5
BOUND = 5.0


@pytest.mark.parametrize("peer", ["prompt", "slow_close"])
async def test_close_with_connections_in_use_and_callers_queued(peer: str) -> None:
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        if peer == "slow_close":  # each side learns of the other's close a second late
            proxy.add(slow_close(1.0))
            proxy.add(slow_close(1.0, direction="upstream"))
        baseline = take_baseline()
        pool = Pool(
            TCPConnector(proxy.host, proxy.port, read_timeout=BOUND),
            max_size=SIZE,
            acquire_timeout=None,
            name=f"close-under-load-{peer}",
        )
        await pool.open()
        give_back = asyncio.Event()
        holding = [asyncio.Event() for _ in range(SIZE)]

        async def holder(i: int) -> Connection:
            async with pool.acquire() as conn:
                assert await ask(conn, f"h{i}") == (f"h{i}", i + 1)
                holding[i].set()
                if i % 2:
                    await asyncio.Event().wait()  # odd holders never give back
                await give_back.wait()
                return conn

        holders = []
        for i in range(SIZE):  # one after another, so that holder i gets server connection i+1
            holders.append(asyncio.create_task(holder(i)))
            await holding[i].wait()
        waiters = [asyncio.create_task(pool.get()) for _ in range(WAITERS)]
        await until_waiting(pool, WAITERS)

        started = time.monotonic()
        closing = asyncio.create_task(pool.close(timeout=CLOSE_TIMEOUT))
        await asyncio.sleep(0)
        assert pool.closed
        for waiter in waiters:
            with pytest.raises(aioconn.PoolClosed):
                await waiter  # at once: close() has not returned yet
        assert not closing.done()
        give_back.set()
        even = [await holders[i] for i in range(0, SIZE, 2)]
        async with asyncio.timeout(BOUND):
            await closing
        elapsed = time.monotonic() - started
        assert CLOSE_TIMEOUT <= elapsed <= CLOSE_TIMEOUT + SLACK
        assert all(conn.closed for conn in even)
        assert live_connections(baseline) == []  # the stuck holders' connections are aborted
        stats = pool.stats()
        assert (stats.discarded.pool_closed, stats.discarded.aborted) == (SIZE // 2, SIZE // 2)
        assert (stats.in_use, stats.waiting, stats.created) == (0, 0, SIZE)

        for task in holders[1::2]:
            assert task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task  # their late release is a no-op
        assert pool.stats().discarded.interrupted == 0
        await assert_quiescent(pool, server, baseline, proxy=proxy)


async def test_close_over_tls_to_a_peer_that_never_answers_close_notify() -> None:
    async with SilentTLSServer(server_context()) as server:
        baseline = take_baseline()
        pool = Pool(
            TCPConnector(
                server.host,
                server.port,
                ssl=client_context(),
                read_timeout=BOUND,
                close_timeout=CLOSE_TIMEOUT,
            ),
            max_size=3,
            name="silent-tls",
        )
        await pool.open()
        conns = [await pool.get() for _ in range(3)]
        for i, conn in enumerate(conns):
            assert conn.tls_version is not None
            assert await ask(conn, f"t{i}") == (f"t{i}", i + 1)
        await pool.put(conns[0])  # one idle...
        await pool.put(conns[1], discard=True)  # ...one discarded (closing in the background)

        started = time.monotonic()
        closing = asyncio.create_task(pool.close(timeout=BOUND))
        await asyncio.sleep(0)
        await pool.put(conns[2])  # ...and one given back while the pool closes
        async with asyncio.timeout(BOUND):
            await closing
        elapsed = time.monotonic() - started
        # Each close waited close_timeout for a close_notify that never came, then aborted.
        assert CLOSE_TIMEOUT - 0.002 <= elapsed <= CLOSE_TIMEOUT + SLACK
        assert server.close_notifies == 3
        stats = pool.stats()
        assert (stats.discarded.pool_closed, stats.discarded.requested) == (2, 1)
        await assert_quiescent(pool, server, baseline)


async def test_a_single_tls_connection_close_is_bounded_by_close_timeout() -> None:
    async with SilentTLSServer(server_context()) as server:
        baseline = take_baseline()
        conn = await aioconn.connect(
            server.host, server.port, ssl=client_context(), close_timeout=CLOSE_TIMEOUT
        )
        assert await ask(conn, "one") == ("one", 1)
        started = time.monotonic()
        await conn.close()
        assert CLOSE_TIMEOUT - 0.002 <= time.monotonic() - started <= CLOSE_TIMEOUT + SLACK
        async with asyncio.timeout(BOUND):
            await server.wait_until(lambda: server.open_count == 0)
        assert server.close_notifies == 1
        await poll_until(lambda: live_connections(baseline) == [], lambda: "connection open")
        baseline.restore_handler()
        assert baseline.loop_errors == []


# -- close() must finish its job even when the first call did not ---------------------------------


async def test_close_called_again_after_a_cancelled_close_still_aborts_what_is_held() -> None:
    """A cancelled ``close()`` leaves work undone; once ``close()`` returns (called again), the
    pool must be closed all the same: the connection still in use aborted, within the timeout.

    (Regression: the first call's ``finally`` used to mark the pool closed, so the second
    call returned at once and the connection in use stayed open.)
    """
    async with EchoServer(witness=True) as server:
        baseline = take_baseline()
        pool = Pool(TCPConnector(server.host, server.port), max_size=2, name="close-again")
        await pool.open()
        held = await pool.get()
        try:
            first = asyncio.create_task(pool.close(timeout=BOUND))
            for _ in range(3):
                await asyncio.sleep(0)
            assert pool.closed
            assert not first.done()  # waiting for `held`
            assert first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first

            started = time.monotonic()
            # From another task than the holder's (a task's own leases are closed when it
            # returns them, not waited for: see Pool.close).
            await asyncio.create_task(pool.close(timeout=CLOSE_TIMEOUT))
            elapsed = time.monotonic() - started
            stats = pool.stats()
            assert (stats.in_use, stats.discarded.aborted) == (0, 1), stats
            assert elapsed <= CLOSE_TIMEOUT + SLACK
            assert held.closed
        finally:
            await pool.put(held)  # a no-op once aborted; else it closes `held`
            baseline.restore_handler()
        await assert_quiescent(pool, server, baseline)


async def test_a_concurrent_close_returns_only_once_the_pool_is_closed() -> None:
    """Two tasks close the same pool (say ``async with pool`` ends while another task closes
    it): the second call must not return before the first one's work is done.
    """
    async with EchoServer(witness=True) as server:
        baseline = take_baseline()
        pool = Pool(TCPConnector(server.host, server.port), max_size=2, name="close-twice")
        await pool.open()
        held = await pool.get()
        first = asyncio.create_task(pool.close(timeout=CLOSE_TIMEOUT))
        await asyncio.sleep(0)
        started = time.monotonic()
        await pool.close(timeout=BOUND)
        elapsed = time.monotonic() - started
        assert first.done()
        assert CLOSE_TIMEOUT - 0.002 <= elapsed <= CLOSE_TIMEOUT + SLACK
        assert held.closed
        assert pool.stats().discarded.aborted == 1
        await pool.put(held)
        await assert_quiescent(pool, server, baseline)


async def test_a_close_waiting_on_a_close_that_gets_cancelled_takes_over() -> None:
    """A second ``close()`` waits for a first one still running; if the first is cancelled, the
    second must finish the job (wait for holders up to its own timeout, then abort), not return
    with the pool still closing and a connection in use left open.
    """
    async with EchoServer(witness=True) as server:
        baseline = take_baseline()
        pool = Pool(TCPConnector(server.host, server.port), max_size=2, name="close-takeover")
        await pool.open()
        held = await pool.get()
        try:
            first = asyncio.create_task(pool.close(timeout=BOUND))
            await asyncio.sleep(0)  # first now waits for `held`
            started = time.monotonic()
            second = asyncio.create_task(pool.close(timeout=CLOSE_TIMEOUT))
            await asyncio.sleep(0)  # second now waits for first
            assert not first.done()
            assert not second.done()
            assert first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            async with asyncio.timeout(BOUND):
                await second
            elapsed = time.monotonic() - started
            stats = pool.stats()
            assert (stats.in_use, stats.discarded.aborted) == (0, 1), stats
            assert elapsed <= CLOSE_TIMEOUT + SLACK
            assert held.closed
            assert pool not in _registry.open_pools  # closed for good
        finally:
            await pool.put(held)  # a no-op once aborted; else it closes `held`
            await pool.close()  # finish the job if `second` did not
            baseline.restore_handler()
        await assert_quiescent(pool, server, baseline)
