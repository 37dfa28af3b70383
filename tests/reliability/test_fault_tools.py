"""The fault-injection tools behave as the reliability suite relies on (regression tests).

Each of these was a bug in ``aioconn.testing`` that made a reliability test impossible or
flaky: a black-holed EOF lost for good, a stalled witness connection that never noticed its
client leave, a truncated request line answered as if whole, ``reset_all()`` crashing on a
connection that was already closing.
"""

from __future__ import annotations

import asyncio
import random

from quiescence import open_socket_count

from aioconn.testing import ChaosProxy, EchoServer, limit_data, timeout
from aioconn.testing._toxic_base import Chunk, ToxicContext

BOUND = 5.0


class _NoLink:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def abort(self, *, rst: bool) -> None:
        self.closed = True


async def test_a_black_hole_drops_data_but_holds_an_eof_until_it_is_removed() -> None:
    """Otherwise an EOF that reached the toxic is lost for good: the far side never learns of
    the close and the link (which closes once both directions ended) stays open forever."""
    hole = timeout(0)
    link = _NoLink()
    ctx: ToxicContext[None] = ToxicContext(link, None, random.Random(0), draw=0.0)
    sent: list[Chunk] = []

    async def send(chunk: Chunk) -> None:
        sent.append(chunk)

    await hole.pipe(Chunk(b"data", 1.0), send, ctx)
    assert sent == []  # dropped
    eof = asyncio.create_task(hole.pipe(Chunk(b"", 2.0), send, ctx))
    await asyncio.sleep(0)
    assert (eof.done(), sent) == (False, [])  # held
    ctx.mark_removed()
    async with asyncio.timeout(BOUND):
        await eof
    assert sent == [Chunk(b"", 2.0)]
    assert not link.closed


async def test_a_stalled_witness_connection_closes_when_its_client_does() -> None:
    async with EchoServer(witness=True) as server:
        for directive in (b"stall", b"partial"):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"r " + directive + b"\n")
            if directive == b"partial":
                assert await reader.readexactly(2) == b"r "  # half of b"r 2\n"
            writer.close()
            await writer.wait_closed()
            async with asyncio.timeout(BOUND):
                await server.wait_open_count(0)
        assert server.requests == 2


async def test_a_request_line_cut_off_by_eof_is_not_answered() -> None:
    async with EchoServer(witness=True) as server, ChaosProxy(server.host, server.port) as proxy:
        proxy.add(limit_data(5, direction="upstream"))
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        writer.write(b"truncated\n")
        async with asyncio.timeout(BOUND):
            assert await reader.read() == b""  # cut after 5 bytes, no reply
        writer.close()
        await writer.wait_closed()
        async with asyncio.timeout(BOUND):
            await server.wait_until(lambda: server.closed == 1)
        assert (server.requests, server.bytes_received) == (0, 5)


async def test_reset_all_skips_sockets_already_closed() -> None:
    async with EchoServer() as server:
        baseline = open_socket_count()
        reader, writer = await asyncio.open_connection(server.host, server.port)
        async with asyncio.timeout(BOUND):
            await server.wait_open_count(1)
        assert server.close_all() == 1
        await asyncio.sleep(0)  # its socket is closed now, but its handler has not finished
        assert server.reset_all() == 1  # used to raise OSError (EBADF)
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        async with asyncio.timeout(BOUND):
            await server.wait_open_count(0)
        assert open_socket_count() == baseline
