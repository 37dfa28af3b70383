"""The CVE-2023-28858/28859 scenario, cancelled at each phase of a request.

A caller is cancelled while it holds a pooled connection, at one precisely reached phase of its
request; the proxy's events and hold/release put it there, no sleeps. Whatever the phase, the
cancelled connection must be closed and never pooled (``discarded.interrupted == 1``, the server
sees it close), and the next request on the pool must get its own reply, from a new server
connection.
"""

from __future__ import annotations

import asyncio

import pytest
from quiescence import assert_quiescent, poll_until, take_baseline
from witness import ask, line

from aioconn import Connection, Pool, TCPConnector
from aioconn.testing import ChaosProxy, EchoServer, slicer

SEED = 28858
BOUND = 5.0  # seconds any single wait in these tests may take before it fails
BIG = 32 * 1024 * 1024  # more than loopback socket buffers and the proxy's read-ahead hold
PARTIAL = 8  # request bytes that reach the server in the "request_partly_delivered" phase

PHASES = [
    "before_write",  # acquired, nothing sent yet
    "inside_send",  # blocked in send(): the peer does not take the bytes (upstream held)
    "request_partly_delivered",  # the server got the first PARTIAL bytes of the request line
    "request_served_reply_held",  # the server answered; the reply is held at the proxy
    "partial_reply",  # the client received half of the reply (witness `partial`)
]


@pytest.mark.parametrize("phase", PHASES)
async def test_cancelled_request_is_closed_and_the_next_gets_its_own_reply(phase: str) -> None:
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        baseline = take_baseline()
        pool = Pool(
            TCPConnector(proxy.host, proxy.port, read_timeout=BOUND, close_timeout=0.5),
            max_size=1,
            name=f"cve-{phase}",
        )
        await pool.open()
        victim_conn: list[Connection] = []
        reached = asyncio.Event()
        # An unknown directive is ignored: the padding only makes the line longer than PARTIAL.
        request = line("victim", "partial" if phase == "partial_reply" else "pad" * 10)
        slow = None
        if phase == "inside_send":
            proxy.hold("upstream")
        if phase == "request_partly_delivered":
            # The first PARTIAL bytes go through, the rest waits a minute inside the toxic.
            slow = proxy.add(slicer(PARTIAL, 0, 60.0, direction="upstream"))
        if phase == "request_served_reply_held":
            proxy.hold("downstream")

        at: list[str] = []  # the await the victim is in

        async def victim() -> None:
            async with pool.acquire() as conn:
                victim_conn.append(conn)
                if phase == "before_write":
                    reached.set()
                    at.append("idle")
                    await asyncio.Event().wait()
                if phase == "inside_send":
                    reached.set()  # send() runs on at once and blocks in drain()
                    at.append("send")
                    await conn.send(request + b"x" * BIG)
                at.append("send")
                await conn.send(request)
                reached.set()
                at.append("readline")
                await conn.readline()
                raise AssertionError("the victim got a reply although it was cut off")

        task = asyncio.create_task(victim())
        async with asyncio.timeout(BOUND):
            await reached.wait()
            if phase == "inside_send":
                await proxy.wait_for(upstream_read=1)  # bytes are flowing, and held
            if phase == "request_partly_delivered":
                await proxy.wait_for(upstream_bytes=PARTIAL)
            if phase == "request_served_reply_held":
                await proxy.wait_for(downstream_read=len(b"victim 1\n"))
            if phase == "partial_reply":
                half = len(b"victim 1\n") // 2
                await proxy.wait_for(downstream_bytes=half)
                await poll_until(lambda: victim_conn[0].buffered == half, lambda: "half a reply")
        assert not task.done()
        assert task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        expected = {"before_write": ["idle"], "inside_send": ["send"]}
        assert at == expected.get(phase, ["send", "readline"])  # cut off where we wanted it

        (conn,) = victim_conn
        assert conn.broken or phase == "before_write"
        stats = pool.stats()
        assert (stats.in_use, stats.idle, stats.discarded.interrupted) == (0, 0, 1)
        assert stats.discarded.total == 1
        await poll_until(lambda: conn.closed, lambda: f"{conn!r} not closed")
        if phase in ("inside_send", "request_partly_delivered"):
            # The proxy still sits on request bytes the client gave up on; drop the link the
            # way a dying network would. The server must not act on a truncated request.
            proxy.disable()
            async with asyncio.timeout(BOUND):
                await proxy.wait_for(open=0)
            proxy.enable()
            proxy.release("upstream")
        async with asyncio.timeout(BOUND):
            await server.wait_until(lambda: server.closed == 1)
        proxy.release("downstream")
        if slow is not None:
            slow.remove()
        served = 1 if phase in ("request_served_reply_held", "partial_reply") else 0
        assert server.requests == served
        assert (
            proxy.stats.upstream_bytes
            == {
                "before_write": 0,
                "inside_send": 0,
                "request_partly_delivered": PARTIAL,
                "request_served_reply_held": len(request),
                "partial_reply": len(request),
            }[phase]
        )

        async with asyncio.timeout(BOUND):
            async with pool.acquire() as fresh:
                assert fresh is not conn
                assert await ask(fresh, "next") == ("next", 2)  # its own reply, a new link
        stats = pool.stats()
        assert (stats.created, stats.acquired, stats.released, stats.idle) == (2, 2, 2, 1)
        assert stats.discarded.total == stats.discarded.interrupted == 1
        assert server.requests == served + 1
        await assert_quiescent(pool, server, baseline, proxy=proxy)
