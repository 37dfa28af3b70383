"""Idle connections that went bad in the pool are never handed to a caller.

A server closes (FIN) or resets (RST) the connections a pool holds idle; or bytes nobody asked
for arrive on an idle connection (a stale second reply, witness ``twice``). Once that reached
the client, no caller ever gets such a connection: each is discarded as ``not_reusable`` on
checkout (or on release, if the bytes came first), and callers get fresh connections that carry
their own replies.
"""

from __future__ import annotations

import asyncio

import pytest
from quiescence import assert_quiescent, poll_until, take_baseline
from witness import ask, line

from aioconn import Connection, Pool, TCPConnector
from aioconn.testing import ChaosProxy, EchoServer, slicer

SEED = 1701
BOUND = 5.0
SIZE = 3


def witness_pool(proxy: ChaosProxy, name: str) -> Pool[Connection]:
    return Pool(
        TCPConnector(proxy.host, proxy.port, read_timeout=BOUND),
        max_size=SIZE,
        acquire_timeout=BOUND,
        name=name,
    )


async def hold_all(pool: Pool[Connection], n: int) -> list[Connection]:
    """Acquire ``n`` connections at once (so that they are distinct), then return them."""
    conns = [await pool.get() for _ in range(n)]
    for conn in conns:
        await pool.put(conn)
    return conns


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_connections_the_server_dropped_while_idle_are_replaced(how: str) -> None:
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool = witness_pool(proxy, f"stale-{how}")
        await pool.open()
        stale = await hold_all(pool, SIZE)
        assert pool.stats().idle == SIZE
        async with asyncio.timeout(BOUND):
            await server.wait_open_count(SIZE)  # the proxy connects upstream on its own time
        dropped = server.close_all() if how == "close" else server.reset_all()
        assert dropped == SIZE
        async with asyncio.timeout(BOUND):
            await server.wait_open_count(0)
        # Wait until every client end has seen the FIN/RST (it travels through the proxy).
        await poll_until(
            lambda: not any(c.reusable for c in stale), lambda: f"{stale} still look alive"
        )

        async def request(i: int) -> tuple[Connection, tuple[str, int]]:
            async with pool.acquire() as conn:
                return conn, await ask(conn, f"r{i}")

        async with asyncio.timeout(BOUND):
            results = await asyncio.gather(*(request(i) for i in range(SIZE)))
        for i, (conn, (request_id, link)) in enumerate(results):
            assert conn not in stale
            assert request_id == f"r{i}"
            assert link > SIZE  # a server connection opened after the drop
        assert len({link for _, (_, link) in results}) == SIZE
        stats = pool.stats()
        assert (stats.discarded.not_reusable, stats.discarded.total) == (SIZE, SIZE)
        assert (stats.created, stats.idle) == (2 * SIZE, SIZE)
        await assert_quiescent(pool, server, baseline, proxy=proxy)


async def test_a_stale_reply_arriving_while_idle_is_never_handed_out() -> None:
    reply = b"stale 1\n"
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool = witness_pool(proxy, "stale-reply-while-idle")
        await pool.open()
        # The server writes both copies at once; the slicer lets the first through and keeps
        # the second for a minute, until the test removes it.
        slow = proxy.add(slicer(len(reply), 0, 60.0))
        async with pool.acquire() as victim:
            assert await ask(victim, "stale", "twice") == ("stale", 1)
        assert (pool.stats().idle, victim.reusable) == (1, True)  # idle and clean, for now
        slow.remove()
        async with asyncio.timeout(BOUND):
            await proxy.wait_for(downstream_bytes=2 * len(reply))
        await poll_until(lambda: victim.buffered == len(reply), lambda: "the stale reply")

        async with asyncio.timeout(BOUND):
            async with pool.acquire() as conn:
                assert conn is not victim
                assert await ask(conn, "fresh") == ("fresh", 2)
        stats = pool.stats()
        assert (stats.discarded.not_reusable, stats.discarded.total) == (1, 1)
        assert (stats.created, stats.idle) == (2, 1)
        await assert_quiescent(pool, server, baseline, proxy=proxy)


async def test_a_stale_reply_that_arrived_before_the_release_is_discarded_at_release() -> None:
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool = witness_pool(proxy, "stale-reply-before-release")
        await pool.open()
        async with pool.acquire() as victim:
            await victim.send(line("stale", "twice"))
            assert await victim.readline() == b"stale 1\n"
            async with asyncio.timeout(BOUND):
                await proxy.wait_for(downstream_bytes=2 * len(b"stale 1\n"))
            await poll_until(lambda: victim.buffered == len(b"stale 1\n"), lambda: "stale bytes")
        stats = pool.stats()
        assert (stats.idle, stats.discarded.not_reusable) == (0, 1)
        async with asyncio.timeout(BOUND):
            async with pool.acquire() as conn:
                assert await ask(conn, "fresh") == ("fresh", 2)
        await assert_quiescent(pool, server, baseline, proxy=proxy)
