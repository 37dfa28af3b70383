"""The server goes down, then comes back: fast, clear failures meanwhile, and full recovery.

Directly against a stopped server, and behind a disabled proxy (which refuses connections the
same way), every acquire fails at once with ``ConnectError``, long before the 10 s connect
timeout: the first ones because the connection is refused, the later ones with
``ServerDown`` (a ``ConnectError``) while the pool backs off, without a connect of their own.
Behind a proxy whose server is stopped, the TCP connect to the proxy succeeds and the proxy
then resets it, so each request fails at once with ``ConnectionClosed`` instead. Either way
no caller waits, none gets a reply, idle connections that died meanwhile are never handed
out, and once the server is back every request succeeds on a new connection.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from quiescence import assert_quiescent, poll_until, take_baseline
from witness import ask

import aioconn
from aioconn import Backoff, Connection, Pool, ServerDown, TCPConnector
from aioconn.testing import ChaosProxy, EchoServer

SEED = 503
SIZE = 2
DOWN_REQUESTS = 5
FAST = 0.5  # seconds within which a request to a down server must fail (it takes ms)
BOUND = 5.0
STEP = Backoff(initial=1.0, maximum=1.0, jitter=0)  # longer than the down phase takes


async def until_reachable(pool: Pool[Connection]) -> None:
    """Acquire as a client would after an outage: on ``ServerDown``, retry when it says."""
    async with asyncio.timeout(BOUND):
        while True:
            try:
                async with pool.acquire():
                    return
            except ServerDown as down:
                await asyncio.sleep(down.retry_in)


async def warm_up(pool: Pool[Connection]) -> list[Connection]:
    conns = [await pool.get() for _ in range(SIZE)]
    for conn in conns:
        await pool.put(conn)
    return conns


async def recovered(pool: Pool[Connection], server: EchoServer) -> None:
    async def request(i: int) -> tuple[str, int]:
        async with pool.acquire() as conn:
            return await ask(conn, f"up{i}")

    async with asyncio.timeout(BOUND):
        replies = await asyncio.gather(*(request(i) for i in range(2 * SIZE)))
    assert [request_id for request_id, _ in replies] == [f"up{i}" for i in range(2 * SIZE)]
    assert {link for _, link in replies} <= set(range(1, server.opened + 1))


async def test_a_stopped_server_fails_acquires_at_once_with_connect_error() -> None:
    server = await EchoServer(witness=True).start()
    port = server.port
    try:
        baseline = take_baseline()
        pool = Pool(
            TCPConnector(server.host, port), max_size=SIZE, connect_backoff=STEP, name="server-down"
        )
        await pool.open()
        idle = await warm_up(pool)
        await server.stop()
        await poll_until(lambda: not any(c.reusable for c in idle), lambda: "idle still alive")

        async def acquire() -> tuple[float, bool]:
            started = time.monotonic()
            with pytest.raises(aioconn.ConnectError) as caught:
                async with pool.acquire():
                    pass
            down = isinstance(caught.value, ServerDown)
            assert down or "could not connect" in str(caught.value)
            return time.monotonic() - started, down

        async with asyncio.timeout(BOUND):
            results = await asyncio.gather(*(acquire() for _ in range(DOWN_REQUESTS)))
        assert max(waited for waited, _ in results) < FAST
        # Two connects run (max_size); each failure fails the longest waiter. The first may be
        # a blip, so a third connect starts; the second begins the outage, and the two
        # waiters that nothing in flight can serve fail at once with ServerDown.
        assert sum(down for _, down in results) == 2
        stats = pool.stats()
        assert (stats.connect_failures, stats.discarded.not_reusable) == (3, SIZE)
        assert (stats.size, stats.waiting, stats.opening) == (0, 0, 0)
    finally:
        await server.stop()
    async with EchoServer(port=port, witness=True) as server:
        await until_reachable(pool)
        await recovered(pool, server)
        assert pool.stats().created == 2 * SIZE
        await assert_quiescent(pool, server, baseline)


async def test_a_disabled_proxy_fails_acquires_at_once_with_connect_error() -> None:
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool = Pool(
            TCPConnector(proxy.host, proxy.port),
            max_size=SIZE,
            connect_backoff=STEP,
            name="proxy-down",
        )
        await pool.open()
        idle = await warm_up(pool)
        proxy.disable()  # closes every link, then refuses connections like a downed server
        await poll_until(lambda: not any(c.reusable for c in idle), lambda: "idle still alive")

        for i in range(DOWN_REQUESTS):
            started = time.monotonic()
            # Two refused connects (the first may be a blip), then ServerDown without one.
            error = ServerDown if i >= 2 else aioconn.ConnectError
            with pytest.raises(error) as caught:
                async with pool.acquire():
                    pass
            assert i >= 2 or "could not connect" in str(caught.value)
            assert time.monotonic() - started < FAST
        stats = pool.stats()
        assert (stats.connect_failures, stats.discarded.not_reusable) == (2, SIZE)
        assert (stats.size, stats.waiting, stats.opening) == (0, 0, 0)
        assert (proxy.stats.accepted, proxy.stats.refused) == (SIZE, 0)  # refused by the kernel
        assert server.requests == 0

        proxy.enable()
        await until_reachable(pool)
        await recovered(pool, server)
        assert pool.stats().created == 2 * SIZE
        await assert_quiescent(pool, server, baseline, proxy=proxy)


async def test_behind_a_proxy_to_a_stopped_server_requests_fail_with_connection_closed() -> None:
    server = await EchoServer(witness=True).start()
    port = server.port
    try:
        async with ChaosProxy(server.host, port, seed=SEED) as proxy:
            baseline = take_baseline()
            pool = Pool(
                TCPConnector(proxy.host, proxy.port, read_timeout=BOUND),
                max_size=SIZE,
                acquire_timeout=BOUND,
                name="server-behind-proxy-down",
            )
            await pool.open()
            idle = await warm_up(pool)
            await server.stop()  # the proxy passes the FIN on; links close with the client
            await poll_until(lambda: not any(c.reusable for c in idle), lambda: "idle alive")

            for i in range(DOWN_REQUESTS):
                started = time.monotonic()
                with pytest.raises(aioconn.ConnectionClosed):
                    async with pool.acquire() as conn:
                        await ask(conn, f"down{i}")
                assert time.monotonic() - started < FAST
            stats = pool.stats()
            assert (stats.discarded.not_reusable, stats.discarded.error) == (SIZE, DOWN_REQUESTS)
            assert stats.created == SIZE + DOWN_REQUESTS
            assert server.requests == 0

            server = await EchoServer(port=port, witness=True).start()
            await recovered(pool, server)
            await assert_quiescent(pool, server, baseline, proxy=proxy)
    finally:
        await server.stop()
