"""Every way out of ``async with aioconn.connect(...)`` closes the socket, on both ends.

Each test counts open connections twice: from the server's side (``wait_open_count(0)``) and
from this process's side (``open_socket_count()`` back to the baseline taken before connecting).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, Self

import pytest
import trustme

import aioconn
from aioconn import Connection, ConnectionClosed, WriteTimeout
from aioconn.testing import EchoServer
from conftest import open_socket_count

BIG = 32 << 20  # more than loopback socket buffers on both sides plus the echo server hold
SLACK = 2.0  # seconds of scheduling delay tolerated on a loaded machine (debug mode is slow)


class Counted(Protocol):
    @property
    def open_count(self) -> int: ...

    async def wait_open_count(self, n: int) -> None: ...


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class CountingServer:
    """A loopback server that runs ``behaviour`` for each connection and counts them."""

    def __init__(self, behaviour: Behaviour, *, tls: ssl.SSLContext | None = None) -> None:
        self._behaviour = behaviour
        self._ssl = tls
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._stopping = False
        self.port = 0
        self.opened = 0
        self.closed = 0

    @property
    def open_count(self) -> int:
        return self.opened - self.closed

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._stopping = True
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers))
        await self._server.wait_closed()

    async def wait_open_count(self, n: int) -> None:
        while self.open_count != n:
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.opened += 1
        self._notify()
        try:
            await self._behaviour(reader, writer)
        except OSError:
            pass
        except asyncio.CancelledError:
            # asyncio 3.11's start_server reports a cancelled handler to the loop as an error:
            # end quietly when the cancel is our own teardown's.
            if not self._stopping:
                raise
        finally:
            writer.transport.abort()
            self.closed += 1
            self._handlers.discard(task)
            self._notify()


async def read_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Never answer (not even a TLS ClientHello); end when the client goes away."""
    while await reader.read(65536):
        pass


async def all_closed(server: Counted, baseline: int) -> None:
    """Both ends agree that nothing is left open."""
    async with asyncio.timeout(5):
        await server.wait_open_count(0)
    assert server.open_count == 0
    assert open_socket_count() == baseline


class BlockError(Exception):
    pass


def drop_and_collect(holder: list[Connection]) -> None:
    """Drop the only reference to the connections in ``holder`` and run the garbage collector."""
    holder.clear()
    gc.collect()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def logged_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aioconn.connection" and r.levelno == logging.WARNING
    ]


@pytest.fixture
async def silent_server() -> AsyncIterator[CountingServer]:
    async with CountingServer(read_until_eof) as server:
        yield server


# -- ordinary exits -------------------------------------------------------------------------------


async def test_normal_exit_closes(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        await conn.send(b"hi\n")
        assert await conn.readline() == b"hi\n"
        assert open_socket_count() == baseline + 2  # our end and the server's end
    assert conn.closed is True
    await all_closed(echo_server, baseline)
    assert echo_server.opened == 1
    assert echo_server.closed == 1


async def test_exception_in_block_propagates_unchanged(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    error = BlockError("boom")
    holder: list[Connection] = []

    async def block() -> None:
        async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
            holder.append(conn)
            await conn.send(b"x")
            raise error

    with pytest.raises(BlockError) as caught:
        await block()
    assert caught.value is error
    assert caught.value.__context__ is None  # close() raised nothing that got chained
    (conn,) = holder
    assert conn.closed is True
    await all_closed(echo_server, baseline)


async def test_peer_reset_then_exit_closes_quietly(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        await conn.send(b"x")
        assert await conn.readexactly(1) == b"x"
        assert echo_server.reset_all() == 1
        with pytest.raises(ConnectionClosed):
            await conn.recv()
    assert conn.closed is True
    await all_closed(echo_server, baseline)


async def test_peer_eof_then_exit_closes(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        assert echo_server.close_all() == 1
        assert await conn.recv() == b""
    assert conn.closed is True
    await all_closed(echo_server, baseline)


# -- cancellation at each await point -------------------------------------------------------------


async def test_cancel_while_resolving(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    # A name, not an address: an address skips the resolver (and so this await point).
    conn = Connection("localhost", echo_server.port)
    started = asyncio.Event()

    async def body() -> None:
        started.set()
        async with conn:
            pytest.fail("connected although cancelled")

    task = asyncio.create_task(body())
    await started.wait()
    assert repr(conn).endswith("[connecting]>")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert conn.closed is True
    assert echo_server.opened == 0
    await all_closed(echo_server, baseline)


async def test_cancel_during_tls_handshake(silent_server: CountingServer) -> None:
    baseline = open_socket_count()
    conn = Connection("127.0.0.1", silent_server.port, ssl=True)

    async def body() -> None:
        async with conn:
            pytest.fail("connected although the server never answered the ClientHello")

    task = asyncio.create_task(body())
    async with asyncio.timeout(5):
        await silent_server.wait_open_count(1)
    assert repr(conn).endswith("[connecting]>")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert conn.closed is True
    assert conn.peername is None
    await all_closed(silent_server, baseline)
    assert silent_server.opened == 1


async def test_cancel_while_blocked_in_readline(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    reading = asyncio.Event()
    holder: list[Connection] = []

    async def body() -> None:
        async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
            holder.append(conn)
            reading.set()
            await conn.readline()

    task = asyncio.create_task(body())
    await reading.wait()
    assert task.done() is False
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (conn,) = holder
    assert conn.closed is True
    assert conn.broken is True
    await all_closed(echo_server, baseline)


async def test_cancel_while_sending_with_full_buffer(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    sending = asyncio.Event()
    holder: list[Connection] = []

    async def body() -> None:
        # The echo is never read, so the echo server stalls and the send cannot drain.
        async with aioconn.connect("127.0.0.1", echo_server.port, close_timeout=0.2) as conn:
            holder.append(conn)
            sending.set()
            await conn.send(b"x" * BIG)

    task = asyncio.create_task(body())
    await sending.wait()
    assert task.done() is False
    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The write buffer could not be flushed: close waited close_timeout, then aborted.
    assert time.monotonic() - started < 0.2 + SLACK
    (conn,) = holder
    assert conn.closed is True
    assert conn.broken is True
    await all_closed(echo_server, baseline)
    assert echo_server.bytes_received < BIG


async def test_cancel_while_closing(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    closing = asyncio.Event()

    async def body() -> None:
        async with aioconn.connect("127.0.0.1", echo_server.port, close_timeout=30) as conn:
            with pytest.raises(WriteTimeout):
                await conn.send(b"x" * BIG, timeout=0.1)
            closing.set()
        pytest.fail("close finished although the peer never drained the buffer")

    task = asyncio.create_task(body())
    await closing.wait()  # `body` is now suspended in close(), waiting for the flush
    assert task.done() is False
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < SLACK  # the cancel aborted; it did not wait 30 s
    await all_closed(echo_server, baseline)


async def test_asyncio_timeout_expiring_inside_block(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    holder: list[Connection] = []

    async def block() -> None:
        async with asyncio.timeout(None) as deadline:
            async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
                holder.append(conn)
                # Armed only now, so it expires inside the block, not while connecting.
                deadline.reschedule(asyncio.get_running_loop().time() + 0.05)
                await conn.readline()

    with pytest.raises(TimeoutError) as caught:
        await block()
    assert type(caught.value) is TimeoutError  # asyncio's, not a ReadTimeout
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the timeout's own cancel was fully consumed
    (conn,) = holder
    assert conn.closed is True
    await all_closed(echo_server, baseline)


async def test_asyncio_timeout_expiring_during_close(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    holder: list[Connection] = []

    armed: list[float] = []

    async def block() -> None:
        async with asyncio.timeout(None) as deadline:
            async with aioconn.connect("127.0.0.1", echo_server.port, close_timeout=30) as conn:
                holder.append(conn)
                with pytest.raises(WriteTimeout):
                    await conn.send(b"x" * BIG, timeout=0.1)
                # Nothing yields between here and close() waiting for the flush, so the
                # deadline can only expire during close().
                deadline.reschedule(asyncio.get_running_loop().time() + 0.2)
                armed.append(time.monotonic())
            pytest.fail("close finished although the peer never drained the buffer")

    with pytest.raises(TimeoutError):
        await block()
    assert time.monotonic() - armed[0] < 0.2 + SLACK  # not the 30 s close_timeout
    (conn,) = holder
    assert conn.closed is True
    await all_closed(echo_server, baseline)


# -- close under a peer that never answers --------------------------------------------------------


async def test_close_aborts_after_close_timeout_when_peer_never_reads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        baseline = open_socket_count()
        conn = await aioconn.connect("127.0.0.1", port, close_timeout=0.3)
        peer, _ = await loop.sock_accept(listener)
        with peer:
            sent = 16 << 20
            with pytest.raises(WriteTimeout):
                await conn.send(b"x" * sent, timeout=0.2)
            started = time.monotonic()
            await conn.close()
            elapsed = time.monotonic() - started
            assert 0.3 - 0.05 <= elapsed < 0.3 + SLACK
            assert conn.closed is True
            assert logged_warnings(caplog) == [
                f"connection to 127.0.0.1:{port} did not close within close_timeout=0.3 s; aborted"
            ]
            # The abort discarded what was still queued: the peer gets less than was sent.
            received = 0
            async with asyncio.timeout(5):
                try:
                    while chunk := await loop.sock_recv(peer, 1 << 16):
                        received += len(chunk)
                except ConnectionResetError:
                    pass
            assert 0 < received < sent
            assert open_socket_count() == baseline + 1  # only the peer's end is left
        assert open_socket_count() == baseline


async def test_close_aborts_when_tls_peer_never_sends_close_notify(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    ready = asyncio.Event()
    release = asyncio.Event()

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # our close_notify is never read, so never answered
        ready.set()
        await release.wait()

    async with CountingServer(deaf, tls=server_ctx) as server:
        baseline = open_socket_count()
        conn = await aioconn.connect(
            "127.0.0.1", server.port, ssl=client_ctx, server_hostname="localhost", close_timeout=0.3
        )
        await ready.wait()
        assert conn.tls_version is not None
        started = time.monotonic()
        await conn.close()
        elapsed = time.monotonic() - started
        assert 0.3 - 0.05 <= elapsed < 0.3 + SLACK
        assert conn.closed is True
        assert logged_warnings(caplog) == [
            f"connection to 127.0.0.1:{server.port} did not close within close_timeout=0.3 s;"
            " aborted"
        ]
        release.set()
        await all_closed(server, baseline)


async def test_close_cancelled_still_releases_socket(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    ready = asyncio.Event()
    release = asyncio.Event()

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()
        ready.set()
        await release.wait()

    async with CountingServer(deaf, tls=server_ctx) as server:
        baseline = open_socket_count()
        conn = await aioconn.connect(
            "127.0.0.1", server.port, ssl=client_ctx, server_hostname="localhost", close_timeout=30
        )
        await ready.wait()
        close_started = asyncio.Event()

        async def close() -> None:
            close_started.set()
            await conn.close()

        closing = asyncio.create_task(close())
        await close_started.wait()  # close() now waits for the peer's close_notify
        assert closing.done() is False
        assert conn.closed is True
        started = time.monotonic()
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        assert time.monotonic() - started < SLACK
        await conn.close()  # idempotent, and returns at once now
        release.set()
        await all_closed(server, baseline)


# -- idempotence, concurrency, garbage collection -------------------------------------------------


async def test_close_is_idempotent(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    conn = await aioconn.connect("127.0.0.1", echo_server.port)
    await conn.close()
    await conn.close()
    conn.abort()
    await conn.close()
    assert conn.closed is True
    assert repr(conn) == f"<aioconn.Connection 127.0.0.1:{echo_server.port} [closed]>"
    await all_closed(echo_server, baseline)
    assert echo_server.opened == 1
    assert echo_server.closed == 1


async def test_abort_closes_at_once(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    conn = await aioconn.connect("127.0.0.1", echo_server.port)
    async with asyncio.timeout(5):
        await echo_server.wait_open_count(1)
    conn.abort()
    assert conn.closed is True
    conn.abort()
    await conn.close()
    await all_closed(echo_server, baseline)


async def test_close_wakes_a_blocked_reader(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    conn = await aioconn.connect("127.0.0.1", echo_server.port)
    reading = asyncio.Event()

    async def reader() -> bytes:
        reading.set()
        return await conn.readline()

    task = asyncio.create_task(reader())
    await reading.wait()
    await conn.close()
    with pytest.raises(ConnectionClosed):
        await task
    await all_closed(echo_server, baseline)


async def test_close_while_connect_in_progress(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    conn = Connection("127.0.0.1", echo_server.port)
    started = asyncio.Event()

    async def connecting() -> Connection:
        started.set()
        return await conn.connect()

    task = asyncio.create_task(connecting())
    await started.wait()
    assert repr(conn).endswith("[connecting]>")
    await conn.close()
    assert conn.closed is True
    # connect() must not bring a closed connection back to life.
    with pytest.raises(ConnectionClosed):
        await task
    assert conn.closed is True
    await all_closed(echo_server, baseline)


async def test_unclosed_connection_warns_where_it_was_created(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    line = sys._getframe().f_lineno + 1
    holder = [await aioconn.connect("127.0.0.1", echo_server.port)]
    async with asyncio.timeout(5):
        await echo_server.wait_open_count(1)
    expected = (
        f"unclosed <aioconn.Connection 127.0.0.1:{echo_server.port} [open]>,"
        f" created at {__file__}:{line}"
    )
    with pytest.warns(ResourceWarning) as record:
        drop_and_collect(holder)
    assert [str(w.message) for w in record] == [expected]
    # The finalizer also aborted the socket.
    await all_closed(echo_server, baseline)
