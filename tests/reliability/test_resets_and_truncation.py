"""Resets and truncation in the middle of a request or reply: a clear error, fast, then repair.

Whatever cuts the connection — an RST instead of the reply, an RST after half the reply, the
reply or the request truncated at every possible byte — the caller gets ``ConnectionClosed``
(a ``ConnectionError`` and an ``aioconn.Error``) well before its read deadline, never a partial
or foreign line and never a hang. The pool discards that connection (``discarded.error``) and
the next request gets its own reply from a new server connection.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from quiescence import assert_quiescent, poll_until, take_baseline
from witness import ask, line

import aioconn
from aioconn import Pool, TCPConnector
from aioconn.testing import ChaosProxy, EchoServer, limit_data, reset_peer
from aioconn.testing._toxic_base import Direction

SEED = 104
READ_TIMEOUT = 10.0  # a hang would show as ReadTimeout, which is no ConnectionError
FAST = 2.0  # seconds within which a cut connection must be reported (it takes milliseconds)


async def expect_closed(
    pool: Pool[aioconn.Connection], request_id: str, directive: str = ""
) -> aioconn.ConnectionClosed:
    """Run one request that must fail with ConnectionClosed, fast; return the error."""
    started = time.monotonic()
    with pytest.raises(aioconn.ConnectionClosed) as caught:
        async with pool.acquire() as conn:
            await ask(conn, request_id, directive)
    assert time.monotonic() - started < FAST
    assert isinstance(caught.value, ConnectionError)
    return caught.value


async def expect_repaired(pool: Pool[aioconn.Connection], server: EchoServer, name: str) -> None:
    """The next request gets its own reply, from the newest server connection."""
    async with asyncio.timeout(FAST):
        async with pool.acquire() as conn:
            assert await ask(conn, name) == (name, server.opened)


def witness_pool(proxy: ChaosProxy, name: str) -> Pool[aioconn.Connection]:
    return Pool(
        TCPConnector(proxy.host, proxy.port, read_timeout=READ_TIMEOUT),
        max_size=1,
        acquire_timeout=FAST,
        name=name,
    )


@pytest.mark.parametrize("direction", ["downstream", "upstream"])
async def test_reset_instead_of_the_reply(direction: Direction) -> None:
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool = witness_pool(proxy, f"reset-{direction}")
        await pool.open()
        await expect_repaired(pool, server, "warm-up")
        toxic = proxy.add(reset_peer(direction=direction))  # the next chunk becomes an RST
        error = await expect_closed(pool, "doomed")
        assert "reset" in str(error).lower()
        toxic.remove()
        assert proxy.stats.downstream_bytes == len(b"warm-up 1\n")  # no byte of the reply
        await expect_repaired(pool, server, "after")
        stats = pool.stats()
        assert (stats.created, stats.discarded.error, stats.discarded.total) == (2, 1, 1)
        await assert_quiescent(pool, server, baseline, proxy=proxy)


async def test_reset_after_half_the_reply() -> None:
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool = witness_pool(proxy, "reset-mid-reply")
        await pool.open()
        async with pool.acquire() as conn:
            await conn.send(line("doomed", "partial"))
            half = len(b"doomed 1\n") // 2
            async with asyncio.timeout(FAST):
                await poll_until(lambda: conn.buffered == half, lambda: "half a reply")
            assert server.reset_all() == 1  # RST server -> proxy, which resets the client
            started = time.monotonic()
            with pytest.raises(aioconn.ConnectionClosed, match="reset"):
                await conn.readline()
            assert time.monotonic() - started < FAST
        stats = pool.stats()
        assert (stats.discarded.error, stats.idle) == (0, 0)
        assert stats.discarded.not_reusable == 1  # error swallowed in the block: still caught
        await expect_repaired(pool, server, "after")
        assert pool.stats().created == 2
        await assert_quiescent(pool, server, baseline, proxy=proxy)


async def test_reply_truncated_at_every_byte() -> None:
    reply_length = len(b"cut-0 1\n")
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool = witness_pool(proxy, "truncated-reply")
        await pool.open()
        await expect_repaired(pool, server, "warm-up")
        for n in range(reply_length):
            toxic = proxy.add(limit_data(n))
            error = await expect_closed(pool, f"cut-{n}")
            assert f"after {n} bytes without the separator" in str(error)
            toxic.remove()
            await expect_repaired(pool, server, f"after-{n}")
        stats = pool.stats()
        assert stats.discarded.error == stats.discarded.total == reply_length
        assert stats.created == reply_length + 1
        await assert_quiescent(pool, server, baseline, proxy=proxy)


async def test_request_truncated_at_every_byte() -> None:
    request = line("cut-0")
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool = witness_pool(proxy, "truncated-request")
        await pool.open()
        await expect_repaired(pool, server, "warm-up")
        for n in range(len(request)):
            toxic = proxy.add(limit_data(n, direction="upstream"))
            error = await expect_closed(pool, f"cut-{n}")
            assert "after 0 bytes without the separator" in str(error)
            toxic.remove()
            await expect_repaired(pool, server, f"after-{n}")
        assert server.requests == 1 + len(request)  # no truncated line was taken as a request
        stats = pool.stats()
        assert stats.discarded.error == stats.discarded.total == len(request)
        await assert_quiescent(pool, server, baseline, proxy=proxy)
