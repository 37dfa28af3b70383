"""A black hole (the ``timeout(0)`` toxic, or a direction on hold): every wait obeys its deadline.

Nothing comes back and nothing closes, so only deadlines end the waits. Each acquire, read,
write and connect must fail with its own timeout error no earlier than its deadline and no
later than ``SLACK`` after it; the whole test takes bounded time; and once the black hole is
gone the same pool serves every caller again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from quiescence import assert_quiescent, take_baseline
from tls import client_context, server_context
from witness import ask, line

import aioconn
from aioconn import Connection, Pool, TCPConnector
from aioconn.testing import ChaosProxy, EchoServer, timeout

SEED = 404
SIZE = 4
CALLERS = 8
ACQUIRE_TIMEOUT = 0.2
READ_TIMEOUT = 0.6
WRITE_TIMEOUT = 0.3
CONNECT_TIMEOUT = 0.3
SLACK = 0.5  # how late a deadline may be reported (a loaded loop runs callbacks late)
BIG = 32 * 1024 * 1024  # more than socket buffers and the proxy's read-ahead take


def within(elapsed: float, deadline: float) -> bool:
    return deadline - 0.002 <= elapsed <= deadline + SLACK  # 2 ms: the loop clock's resolution


async def test_acquires_and_reads_obey_their_deadlines_then_service_resumes() -> None:
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool = Pool(
            TCPConnector(proxy.host, proxy.port, read_timeout=READ_TIMEOUT),
            max_size=SIZE,
            acquire_timeout=ACQUIRE_TIMEOUT,
            name="black-hole",
        )
        await pool.open()
        hole = proxy.add(timeout(0))  # replies vanish; the links stay open and silent
        results: list[tuple[str, float]] = []

        async def caller(i: int) -> None:
            started = time.monotonic()
            try:
                async with pool.acquire() as conn:
                    got_connection = time.monotonic()
                    await ask(conn, f"r{i}")
            except aioconn.PoolTimeout:
                results.append(("acquire", time.monotonic() - started))
            except aioconn.ReadTimeout:
                results.append(("read", time.monotonic() - got_connection))

        started = time.monotonic()
        await asyncio.gather(*(caller(i) for i in range(CALLERS)))
        total = time.monotonic() - started

        kinds = Counter(kind for kind, _ in results)
        assert kinds == {"read": SIZE, "acquire": CALLERS - SIZE}
        for kind, elapsed in results:
            assert within(elapsed, READ_TIMEOUT if kind == "read" else ACQUIRE_TIMEOUT), results
        assert total <= READ_TIMEOUT + SLACK
        stats = pool.stats()
        assert (stats.timeouts, stats.discarded.error, stats.created) == (
            CALLERS - SIZE,
            SIZE,
            SIZE,
        )
        assert server.requests == SIZE  # the requests got through; only the replies vanished

        hole.remove()

        async def request(i: int) -> tuple[str, int]:
            async with pool.acquire() as conn:
                return await ask(conn, f"again{i}")

        async with asyncio.timeout(READ_TIMEOUT + SLACK):
            replies = await asyncio.gather(*(request(i) for i in range(CALLERS)))
        assert [request_id for request_id, _ in replies] == [f"again{i}" for i in range(CALLERS)]
        assert all(link > SIZE for _, link in replies)  # new connections, not black-holed ones
        await assert_quiescent(pool, server, baseline, proxy=proxy)


async def test_writes_into_a_stalled_peer_obey_the_write_timeout() -> None:
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool = Pool(
            TCPConnector(proxy.host, proxy.port, write_timeout=WRITE_TIMEOUT, close_timeout=0.2),
            max_size=1,
            name="write-black-hole",
        )
        await pool.open()
        proxy.hold("upstream")  # nothing is forwarded; read-ahead fills, then TCP pushes back
        started = time.monotonic()
        with pytest.raises(aioconn.WriteTimeout):
            async with pool.acquire() as conn:
                await conn.send(line("big", "x" * BIG))
        assert within(time.monotonic() - started, WRITE_TIMEOUT)
        assert proxy.stats.upstream_bytes == 0
        # The proxy still holds what it read; drop those links as a failing network would.
        proxy.disable()
        async with asyncio.timeout(1):
            await proxy.wait_for(open=0)
        proxy.enable()
        proxy.release("upstream")
        async with asyncio.timeout(1):
            async with pool.acquire() as conn:
                assert await ask(conn, "after") == ("after", 2)
        assert server.requests == 1
        stats = pool.stats()
        assert (stats.discarded.error, stats.created) == (1, 2)
        await assert_quiescent(pool, server, baseline, proxy=proxy)


async def test_a_tls_handshake_into_a_black_hole_obeys_the_connect_timeout() -> None:
    async with (
        EchoServer(witness=True, ssl=server_context()) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool: Pool[Connection] = Pool(
            TCPConnector(
                proxy.host,
                proxy.port,
                ssl=client_context(),
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=1.0,
            ),
            max_size=2,
            acquire_timeout=5.0,
            connect_backoff=None,  # each acquire's own connect must time out, not back off
            name="tls-black-hole",
        )
        await pool.open()
        hole = proxy.add(timeout(0))  # the server's handshake messages vanish
        for attempt in range(2):
            started = time.monotonic()
            with pytest.raises(aioconn.ConnectTimeout):
                async with pool.acquire():
                    pass
            assert within(time.monotonic() - started, CONNECT_TIMEOUT), attempt
        stats = pool.stats()
        assert (stats.connect_failures, stats.created, stats.size) == (2, 0, 0)
        hole.remove()
        async with asyncio.timeout(1.0):
            async with pool.acquire() as conn:
                assert conn.tls_version is not None
                assert await ask(conn, "secure") == ("secure", server.opened)
        await assert_quiescent(pool, server, baseline, proxy=proxy)
