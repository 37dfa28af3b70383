"""The echo server as a witness: request ids, server ids, and its deliberate misbehaviours."""

from __future__ import annotations

import asyncio

import pytest

import aioconn
from aioconn.testing import EchoServer
from aioconn.testing._echo import parse_witness_reply

HOST = "127.0.0.1"


async def test_replies_carry_request_and_connection_ids() -> None:
    async with EchoServer(witness=True) as server:
        async with aioconn.connect("127.0.0.1", server.port) as a:
            async with aioconn.connect("127.0.0.1", server.port) as b:
                await a.send(b"r1\n")
                await b.send(b"r2\n")
                assert parse_witness_reply(await a.readline()) == ("r1", 1)
                assert parse_witness_reply(await b.readline()) == ("r2", 2)
                await a.send(b"r3\n")
                assert parse_witness_reply(await a.readline()) == ("r3", 1)
        assert server.requests == 3


async def test_twice_leaves_a_stale_reply_that_makes_the_connection_dirty() -> None:
    async with (
        EchoServer(witness=True) as server,
        aioconn.connect("127.0.0.1", server.port) as conn,
    ):
        await conn.send(b"r1 twice\n")
        assert await conn.readline() == b"r1 1\n"
        await conn.readexactly(1)  # wait until the second copy started arriving
        assert not conn.reusable
        assert conn.buffered == len(b"r1 1\n") - 1


async def test_partial_reply_then_stall_times_out() -> None:
    async with (
        EchoServer(witness=True) as server,
        aioconn.connect("127.0.0.1", server.port) as conn,
    ):
        await conn.send(b"r1 partial\n")
        with pytest.raises(aioconn.ReadTimeout):
            await conn.readline(timeout=0.05)
        assert conn.broken


async def test_close_after_reply_and_delay() -> None:
    async with (
        EchoServer(witness=True) as server,
        aioconn.connect("127.0.0.1", server.port) as conn,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        await conn.send(b"slow delay 0.05\n")
        assert await conn.readline() == b"slow 1\n"
        assert loop.time() - started >= 0.05
        await conn.send(b"last close\n")
        assert await conn.readline() == b"last 1\n"
        with pytest.raises(aioconn.ConnectionClosed):
            await conn.readline()
        await server.wait_open_count(0)
