"""Connection I/O over real loopback TCP: round trips, EOF, limits, timeouts and state flags."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable

import pytest

import aioconn
from aioconn import Connection, ConnectionClosed, ProtocolError, ReadTimeout, WriteTimeout
from aioconn.testing import EchoServer

IoCall = Callable[[Connection], Awaitable[object]]


async def recv_exactly_by_recv(conn: Connection, n: int) -> bytes:
    """Collect ``n`` bytes with ``recv`` (which returns whatever is available)."""
    chunks = bytearray()
    while len(chunks) < n:
        chunk = await conn.recv(n - len(chunks), timeout=5)
        assert chunk, "EOF before all echoed bytes arrived"
        chunks += chunk
    return bytes(chunks)


# -- round trips ----------------------------------------------------------------------------------


async def test_send_recv_round_trip(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        await conn.send(b"hello")
        assert await recv_exactly_by_recv(conn, 5) == b"hello"
        await conn.send(bytearray(b"byte"))
        await conn.send(memoryview(b"-array-view")[1:])
        assert await recv_exactly_by_recv(conn, 14) == b"bytearray-view"
        assert echo_server.bytes_received == 19
        assert conn.buffered == 0
        assert conn.reusable is True


async def test_recv_respects_max_bytes(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        await conn.send(b"0123456789")
        assert await conn.readexactly(1) == b"0"
        # The rest arrived in the same segment; recv hands out at most max_bytes of it.
        assert await conn.recv(4) == b"1234"
        assert conn.buffered == 5
        assert await conn.recv(100) == b"56789"
        assert conn.buffered == 0


async def test_readexactly_large_payload(echo_server: EchoServer) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, larger than any single socket read
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        sender = asyncio.create_task(conn.send(payload))
        received = await conn.readexactly(len(payload), timeout=10)
        await sender
        assert received == payload
        assert await conn.readexactly(0) == b""
        assert echo_server.bytes_received == len(payload)


async def test_readline_and_readuntil(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        await conn.send(b"one\ntwo\r\nthree|four\n")
        assert await conn.readline() == b"one\n"
        assert await conn.readuntil(b"\r\n") == b"two\r\n"
        assert await conn.readuntil(b"|") == b"three|"
        assert await conn.readuntil() == b"four\n"
        assert conn.buffered == 0
        assert conn.reusable is True


async def test_frames_round_trip(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port, limit=1024) as conn:
        payloads = [b"", b"abc", b"\x00" * 1024]  # the last one is exactly at the limit
        for payload in payloads:
            await conn.send_frame(payload)
        for payload in payloads:
            assert await conn.read_frame() == payload
        assert echo_server.bytes_received == 3 * 4 + 3 + 1024
        # The wire format is a 4-byte big-endian length prefix.
        await conn.send(struct.pack("!I", 2) + b"hi")
        assert await conn.read_frame() == b"hi"
        await conn.send_frame(b"xyz")
        assert await conn.readexactly(7) == b"\x00\x00\x00\x03xyz"
        assert conn.reusable is True


async def test_ipv6_loopback_round_trip() -> None:
    async with (
        EchoServer(host="::1") as server,
        aioconn.connect("::1", server.port) as conn,
    ):
        assert conn.target == f"[::1]:{server.port}"
        assert conn.peername[:2] == ("::1", server.port)
        await conn.send(b"six\n")
        assert await conn.readline() == b"six\n"


# -- EOF and resets -------------------------------------------------------------------------------


async def test_recv_returns_empty_bytes_at_eof(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        await conn.send(b"ab")
        assert await conn.readexactly(2) == b"ab"  # the server has read everything we sent
        assert echo_server.close_all() == 1
        assert await conn.recv() == b""
        assert await conn.recv() == b""  # EOF is sticky
        assert conn.broken is False  # EOF via recv is a normal outcome, not a failure
        assert conn.reusable is False
        assert conn.closed is False


async def test_readexactly_at_eof_raises_connection_closed(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        await conn.send(b"abc")
        assert await conn.readexactly(1) == b"a"
        assert echo_server.close_all() == 1
        with pytest.raises(ConnectionClosed) as caught:
            await conn.readexactly(10)
        assert str(caught.value) == (
            f"connection closed by 127.0.0.1:{echo_server.port} after 2 of 10 expected bytes"
        )
        assert isinstance(caught.value.__cause__, asyncio.IncompleteReadError)
        assert conn.broken is True
        assert conn.reusable is False


async def test_readline_at_eof_raises_connection_closed(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        await conn.send(b"no newline")
        assert await conn.readexactly(3) == b"no "
        assert echo_server.close_all() == 1
        with pytest.raises(ConnectionClosed) as caught:
            await conn.readline()
        assert str(caught.value) == (
            f"connection closed by 127.0.0.1:{echo_server.port} after 7 bytes without the separator"
        )
        assert conn.broken is True
        assert conn.reusable is False
        # EOF with nothing buffered: the same error, with zero bytes.
        with pytest.raises(ConnectionClosed, match=r" after 0 bytes without the separator$"):
            await conn.readuntil(b"|")


async def test_peer_reset_raises_connection_closed(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        await conn.send(b"x")
        assert await conn.readexactly(1) == b"x"
        assert echo_server.reset_all() == 1
        with pytest.raises(ConnectionClosed) as caught:
            await conn.recv()
        assert str(caught.value).startswith(
            f"read on connection to 127.0.0.1:{echo_server.port} failed: ConnectionResetError("
        )
        assert isinstance(caught.value.__cause__, ConnectionResetError)
        assert conn.broken is True
        assert conn.reusable is False
        with pytest.raises(ConnectionClosed):
            await conn.send(b"more")


# -- limits ---------------------------------------------------------------------------------------


async def test_line_longer_than_limit_stays_unread(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port, limit=16) as conn:
        at_limit = b"a" * 16 + b"\n"
        await conn.send(at_limit)
        assert await conn.readline() == at_limit  # 16 bytes before the separator: accepted

        too_long = b"b" * 17 + b"\n"
        await conn.send(too_long)
        with pytest.raises(ProtocolError) as caught:
            await conn.readline()
        assert str(caught.value) == (
            f"line from 127.0.0.1:{echo_server.port} is longer than limit=16 bytes"
            " (the bytes stay unread)"
        )
        assert isinstance(caught.value.__cause__, asyncio.LimitOverrunError)
        assert conn.buffered == len(too_long)
        assert conn.broken is True
        assert conn.reusable is False
        assert await conn.readexactly(len(too_long)) == too_long
        assert conn.buffered == 0


async def test_readuntil_longer_than_limit(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port, limit=8) as conn:
        await conn.send(b"0123456789|")
        with pytest.raises(ProtocolError, match=r"longer than limit=8 bytes"):
            await conn.readuntil(b"|")
        assert conn.buffered == 11
        assert conn.broken is True


async def test_frame_longer_than_limit_rejected_on_read(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port, limit=16) as conn:
        await conn.send(struct.pack("!I", 17) + b"p" * 17)
        with pytest.raises(ProtocolError) as caught:
            await conn.read_frame()
        assert str(caught.value) == (
            f"frame of 17 bytes from 127.0.0.1:{echo_server.port} exceeds limit=16 bytes"
        )
        assert caught.value.__cause__ is not caught.value  # no self-referencing cause chain
        assert conn.buffered == 17  # the payload is left unread
        assert conn.broken is True
        assert conn.reusable is False


async def test_frame_longer_than_limit_rejected_on_send(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port, limit=16) as conn:
        with pytest.raises(ProtocolError, match=r"^frame of 17 bytes exceeds limit=16 bytes$"):
            await conn.send_frame(b"x" * 17)
        # Rejected before anything was written: the stream is still in sync.
        assert conn.broken is False
        await conn.send_frame(b"y" * 16)
        assert await conn.read_frame() == b"y" * 16
        assert echo_server.bytes_received == 20


# -- timeouts -------------------------------------------------------------------------------------

TIMEOUT_READS: list[tuple[str, IoCall]] = [
    ("recv", lambda c: c.recv(timeout=0.05)),
    ("readexactly", lambda c: c.readexactly(1, timeout=0.05)),
    ("readline", lambda c: c.readline(timeout=0.05)),
    ("readuntil", lambda c: c.readuntil(b"|", timeout=0.05)),
    ("read_frame", lambda c: c.read_frame(timeout=0.05)),
]


@pytest.mark.parametrize(("method", "call"), TIMEOUT_READS, ids=[m for m, _ in TIMEOUT_READS])
async def test_per_call_timeout(echo_server: EchoServer, method: str, call: IoCall) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        assert conn.reusable is True
        with pytest.raises(ReadTimeout) as caught:
            await call(conn)
        assert isinstance(caught.value, TimeoutError)
        assert str(caught.value) == f"read from 127.0.0.1:{echo_server.port} timed out after 0.05 s"
        assert conn.broken is True
        assert conn.reusable is False
        assert conn.closed is False
        assert repr(conn) == f"<aioconn.Connection 127.0.0.1:{echo_server.port} [open, broken]>"


async def test_read_timeout_default_applies_to_every_read(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port, read_timeout=0.05) as conn:
        for read in (conn.recv, conn.readline, conn.read_frame):
            with pytest.raises(ReadTimeout, match=r"timed out after 0\.05 s$"):
                await read()
        # A per-call timeout overrides the connection's default, both ways.
        with pytest.raises(ReadTimeout, match=r"timed out after 0\.02 s$"):
            await conn.recv(timeout=0.02)
        await conn.send(b"late\n")
        assert await conn.readline(timeout=30) == b"late\n"


async def test_write_timeout_when_peer_does_not_read(echo_server: EchoServer) -> None:
    # We never read the echo, so the server stops reading too and every buffer fills up.
    async with aioconn.connect("127.0.0.1", echo_server.port, close_timeout=0.1) as conn:
        with pytest.raises(WriteTimeout) as caught:
            await conn.send(b"x" * (32 << 20), timeout=0.2)
        assert isinstance(caught.value, TimeoutError)
        assert str(caught.value) == (f"write to 127.0.0.1:{echo_server.port} timed out after 0.2 s")
        assert conn.broken is True
        assert conn.reusable is False
    async with asyncio.timeout(5):
        await echo_server.wait_open_count(0)


# -- reusable / broken flags ----------------------------------------------------------------------


async def test_reusable_false_while_bytes_are_buffered(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        assert conn.reusable is True
        await conn.send(b"ab\ncd")
        assert await conn.readline() == b"ab\n"
        assert conn.buffered == 2
        assert conn.reusable is False
        assert conn.broken is False
        assert await conn.readexactly(2) == b"cd"
        assert conn.buffered == 0
        assert conn.reusable is True


async def test_mark_broken(echo_server: EchoServer) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        conn.mark_broken()
        assert conn.broken is True
        assert conn.reusable is False
        # Still open and usable for I/O: broken only means "do not hand it on".
        await conn.send(b"z\n")
        assert await conn.readline() == b"z\n"
    assert conn.reusable is False


# -- introspection --------------------------------------------------------------------------------


async def test_introspection(echo_server: EchoServer) -> None:
    port = echo_server.port
    fresh = Connection("127.0.0.1", port)
    assert repr(fresh) == f"<aioconn.Connection 127.0.0.1:{port} [new]>"
    assert fresh.target == f"127.0.0.1:{port}"
    assert fresh.peername is None
    assert fresh.sockname is None
    assert fresh.closed is False
    assert fresh.reusable is False
    assert fresh.buffered == 0

    before = time.time()
    conn = Connection("127.0.0.1", port)
    after = time.time()
    assert before <= conn.created_at <= after
    assert await conn.connect() is conn
    try:
        assert repr(conn) == f"<aioconn.Connection 127.0.0.1:{port} [open]>"
        assert conn.peername == ("127.0.0.1", port)
        local_host, local_port = conn.sockname
        assert local_host == "127.0.0.1"
        assert isinstance(local_port, int)
        assert 0 < local_port <= 65535
        assert local_port != port
        assert conn.tls_version is None
        assert conn.cipher is None
        assert conn.peer_certificate is None
        assert conn.created_at <= time.time()

        used = conn.last_used_at
        await conn.send(b"t\n")
        assert conn.last_used_at > used
        used = conn.last_used_at
        assert await conn.readline() == b"t\n"
        assert conn.last_used_at > used
        assert conn.last_used_at <= time.monotonic()
    finally:
        await conn.close()
    assert conn.closed is True
    assert repr(conn) == f"<aioconn.Connection 127.0.0.1:{port} [closed]>"
    assert conn.reusable is False
    assert conn.buffered == 0


# -- misuse ---------------------------------------------------------------------------------------

ALL_IO: list[tuple[str, IoCall]] = [
    ("send", lambda c: c.send(b"x")),
    ("recv", lambda c: c.recv()),
    ("readexactly", lambda c: c.readexactly(1)),
    ("readline", lambda c: c.readline()),
    ("readuntil", lambda c: c.readuntil(b"|")),
    ("send_frame", lambda c: c.send_frame(b"x")),
    ("read_frame", lambda c: c.read_frame()),
]


@pytest.mark.parametrize(("method", "call"), ALL_IO, ids=[m for m, _ in ALL_IO])
async def test_io_on_closed_connection(echo_server: EchoServer, method: str, call: IoCall) -> None:
    conn = await aioconn.connect("127.0.0.1", echo_server.port)
    await conn.close()
    with pytest.raises(ConnectionClosed) as caught:
        await call(conn)
    assert str(caught.value) == f"connection to 127.0.0.1:{echo_server.port} is closed"
    async with asyncio.timeout(5):
        await echo_server.wait_open_count(0)
    assert echo_server.bytes_received == 0


@pytest.mark.parametrize(("method", "call"), ALL_IO, ids=[m for m, _ in ALL_IO])
async def test_io_before_connect(method: str, call: IoCall) -> None:
    conn = Connection("127.0.0.1", 9)
    with pytest.raises(ConnectionClosed) as caught:
        await call(conn)
    assert str(caught.value) == "connection to 127.0.0.1:9 is not connected yet"


async def test_connect_twice_raises_runtime_error(echo_server: EchoServer) -> None:
    conn = await aioconn.connect("127.0.0.1", echo_server.port)
    try:
        with pytest.raises(RuntimeError, match=r"^connect\(\) was already called on <aioconn"):
            await conn.connect()
        assert conn.closed is False  # the misuse did not disturb the open connection
        await conn.send(b"still\n")
        assert await conn.readline() == b"still\n"
    finally:
        await conn.close()
    with pytest.raises(RuntimeError, match=r"already called"):
        await conn.connect()
    with pytest.raises(ConnectionClosed, match=r"is closed$"):
        async with conn:
            pass
    assert echo_server.opened == 1
