"""Use after release (issue #11): I/O on a pooled ``Connection`` after its block ended raises
``ConnectionReleased`` — nothing is sent, nothing is read, and the next holder finds the
connection as it was."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aioconn import (
    Connection,
    ConnectionClosed,
    ConnectionReleased,
    FactoryConnector,
    Pool,
    TCPConnector,
)
from aioconn.testing import EchoServer

Call = Callable[[Connection], Awaitable[Any]]

IO_CALLS: dict[str, Call] = {
    "send": lambda c: c.send(b"stale\n"),
    "recv": lambda c: c.recv(),
    "readexactly": lambda c: c.readexactly(1),
    "readline": lambda c: c.readline(),
    "readuntil": lambda c: c.readuntil(b"\n"),
    "send_frame": lambda c: c.send_frame(b"stale"),
    "read_frame": lambda c: c.read_frame(),
}


async def echo(conn: Connection, line: bytes) -> bytes:
    await conn.send(line)
    return await conn.readline()


@pytest.mark.parametrize("name", sorted(IO_CALLS))
async def test_io_after_the_block_ended_raises_and_changes_nothing(name: str) -> None:
    async with (
        EchoServer() as server,
        Pool(TCPConnector(server.host, server.port), max_size=1, name="guarded") as pool,
    ):
        async with pool.acquire() as conn:
            assert await echo(conn, b"mine\n") == b"mine\n"
        with pytest.raises(ConnectionReleased, match=r"given back to guarded") as caught:
            await IO_CALLS[name](conn)
        assert f"{name}()" in str(caught.value)
        async with pool.acquire() as again:
            assert again is conn  # the same connection, undisturbed: no stale bytes either way
            assert await echo(again, b"next\n") == b"next\n"
        assert pool.stats().discarded.total == 0


async def test_after_put_and_after_the_pool_closed_it_too() -> None:
    async with EchoServer() as server:
        pool = Pool(TCPConnector(server.host, server.port), max_size=1, name="guarded")
        async with pool:
            conn = await pool.get()
            assert await echo(conn, b"a\n") == b"a\n"
            await pool.put(conn)
            with pytest.raises(ConnectionReleased):
                await conn.send(b"after put\n")
        assert conn.closed
        with pytest.raises(ConnectionReleased, match="guarded"):
            await conn.send(b"after close\n")  # the pool's connection, not the caller's


async def test_the_connectors_own_hooks_may_use_it_while_it_is_given_back() -> None:
    async with EchoServer() as server:
        resets: list[bytes] = []

        async def reset(conn: Connection) -> None:
            resets.append(await echo(conn, b"reset\n"))  # runs after the block ended

        async def check(conn: Connection) -> bool:
            return await echo(conn, b"check\n") == b"check\n"

        async def open_one() -> Connection:
            return await Connection(server.host, server.port).connect()

        connector = FactoryConnector(open_one, close=lambda c: c.close(), reset=reset, check=check)
        async with Pool(connector, max_size=1, check_after_idle=None) as pool:
            async with pool.acquire() as conn:
                assert await echo(conn, b"x\n") == b"x\n"
            assert resets == [b"reset\n"]
            assert await pool.check() == 0  # the check ran on the idle connection: alive
            async with pool.acquire() as again:
                assert again is conn


async def test_a_connection_outside_any_pool_is_not_guarded() -> None:
    async with EchoServer() as server, Connection(server.host, server.port) as conn:
        assert await echo(conn, b"free\n") == b"free\n"


async def test_a_connection_close_aborted_in_its_holders_hands_is_closed_not_released() -> None:
    async with EchoServer() as server:
        pool = Pool(TCPConnector(server.host, server.port), max_size=1, name="guarded")
        await pool.open()
        conn = await pool.get()
        await pool.close(timeout=0.01)  # the holder never gave it back: aborted
        with pytest.raises(ConnectionClosed, match="is closed") as caught:
            await conn.send(b"late\n")
        assert not isinstance(caught.value, ConnectionReleased)
        await pool.put(conn)  # a no-op for a connection close() aborted
