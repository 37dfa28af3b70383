"""An in-process echo server on loopback that counts the connections it sees."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl as _ssl
import struct
from collections.abc import Callable
from types import TracebackType
from typing import Self

__all__ = ["EchoServer", "parse_witness_reply"]

logger = logging.getLogger("aioconn.testing")


class EchoServer:
    """A TCP (or TLS, or Unix-socket) server that writes back every byte it receives.

    Use as ``async with EchoServer() as server:``; it binds ``127.0.0.1`` on a free port by
    default (``server.port``). It counts connections — ``opened``, ``closed`` and ``open_count``
    — so a test can see from the server's side whether a client really closed, and it can
    ``close_all()`` (FIN) or ``reset_all()`` (RST) the connections it holds.

    With ``witness=True`` the server is a witness for cross-talk tests instead: each request is
    one line ``<request-id>[ <directive>]`` (a line cut off by EOF is ignored, never answered;
    ``requests`` counts whole lines) and each reply is ``<request-id> <server-id>\\n``,
    where ``server-id`` numbers the server-side connection. A caller that ever reads an id that
    is not its own has seen cross-talk. Directives make the server misbehave on purpose:

    * ``delay <seconds>``: wait before replying;
    * ``twice``: reply twice (a stale reply is left on the connection);
    * ``partial``: send the first half of the reply, then stall (as ``stall``);
    * ``stall``: never reply: read and ignore whatever else arrives, and close the connection
      when the client closes it (so the connection counts see the client go);
    * ``close``: reply, then close the connection.

    Args:
        host: the address to listen on (TCP).
        port: the port to listen on; 0 picks a free one (read it from ``port`` once started).
        path: listen on this Unix socket path instead of TCP.
        ssl: a server-side ``ssl.SSLContext`` to speak TLS.
        witness: speak the request-id protocol above instead of echoing bytes.

    Attributes:
        host: the address it listens on (TCP).
        port: the port it listens on; the bound one once started.
        path: the Unix socket path, or ``None`` for TCP.
        witness: whether it speaks the witness protocol.
        opened: connections accepted, ever.
        closed: connections closed, ever.
        requests: whole request lines answered or ignored on purpose (witness mode).
        bytes_received: bytes read from clients, ever.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str | os.PathLike[str] | None = None,
        ssl: _ssl.SSLContext | None = None,
        witness: bool = False,
    ) -> None:
        self.host = host
        self.witness = witness
        self._stopping = False
        self.requests = 0
        self.port = port
        self.path = None if path is None else os.fspath(path)
        self._ssl = ssl
        self._socket_file: tuple[int, int] | None = None  # (device, inode) of our Unix socket
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._conditions: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self.opened = 0
        self.closed = 0
        self.bytes_received = 0

    @property
    def open_count(self) -> int:
        """Connections accepted and not yet closed, as the server sees them."""
        return self.opened - self.closed

    async def start(self) -> Self:
        """Start listening; returns self."""
        if self.path is not None:
            self._server = await asyncio.start_unix_server(self._handle, self.path, ssl=self._ssl)
            self._socket_file = _identity(self.path)
        else:
            self._server = await asyncio.start_server(
                self._handle, self.host, self.port, ssl=self._ssl
            )
            self.port = self._server.sockets[0].getsockname()[1]
        logger.debug("echo server listening on %s", self.address)
        return self

    @property
    def address(self) -> str:
        """``host:port`` or ``unix:/path``."""
        return f"unix:{self.path}" if self.path is not None else f"{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening, close every connection and wait for the handlers to finish."""
        server, self._server = self._server, None
        self._stopping = True
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers))
        if server is not None:
            await server.wait_closed()
        self._remove_socket_file()

    def _remove_socket_file(self) -> None:
        # asyncio (before 3.13) leaves a Unix server's socket file behind; remove it, but only
        # if it is still the one this server created, not a newer one at the same path.
        created, self._socket_file = self._socket_file, None
        if created is not None and self.path is not None and _identity(self.path) == created:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def close_all(self) -> int:
        """Close every open connection gracefully (FIN); returns how many."""
        writers = list(self._writers)
        for writer in writers:
            writer.close()
        return len(writers)

    def reset_all(self) -> int:
        """Reset every open connection (RST, via ``SO_LINGER`` 0); returns how many."""
        writers = list(self._writers)
        for writer in writers:
            sock: socket.socket | None = writer.get_extra_info("socket")
            if sock is not None:
                # Already closed (close_all() ran, the handler has not finished yet): then
                # abort() below is all that is left to do.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        return len(writers)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; re-checked whenever a connection opens or closes.

        Only opens and closes wake the check: for other counters (``requests``,
        ``bytes_received``) wait on an event of your own, or on a ``ChaosProxy``'s ``wait_for``.
        Bound the wait with ``asyncio.timeout``.

        Args:
            predicate: a function of no arguments, true when the wait is over.
        """
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._conditions.append(entry)
        try:
            await future
        finally:
            if entry in self._conditions:
                self._conditions.remove(entry)

    async def wait_open_count(self, n: int) -> None:
        """Wait until exactly ``n`` connections are open on the server side.

        Args:
            n: the number of open connections to wait for.
        """
        await self.wait_until(lambda: self.open_count == n)

    def _notify(self) -> None:
        for predicate, future in list(self._conditions):
            if not future.done() and predicate():
                future.set_result(None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.opened += 1
        self._notify()
        try:
            if self.witness:
                await self._witness(reader, writer, server_id=self.opened)
            else:
                while data := await reader.read(65536):
                    self.bytes_received += len(data)
                    writer.write(data)
                    await writer.drain()
        except OSError:
            pass  # the client reset the connection: that ends it like EOF does
        except asyncio.CancelledError:
            # stop() cancels handlers stuck on purpose (stall, partial). asyncio 3.11's
            # start_server reports a cancelled handler to the loop as an error, so end it quietly
            # when the cancellation is stop()'s own; anyone else's propagates.
            if not self._stopping:
                raise
        finally:
            self._writers.discard(writer)
            writer.close()
            self.closed += 1
            self._handlers.discard(task)
            self._notify()

    async def _witness(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server_id: int
    ) -> None:
        while line := await reader.readline():
            self.bytes_received += len(line)
            if not line.endswith(b"\n"):
                return  # cut off by EOF: not a request, and the client is gone
            self.requests += 1
            request_id, _, directive = line.decode().strip().partition(" ")
            reply = f"{request_id} {server_id}\n".encode()
            command, _, argument = directive.partition(" ")
            if command == "partial":
                writer.write(reply[: len(reply) // 2])
                await writer.drain()
            if command in ("stall", "partial"):
                while data := await reader.read(65536):  # until the client closes
                    self.bytes_received += len(data)
                return
            if command == "delay":
                await asyncio.sleep(float(argument))
            writer.write(reply * 2 if command == "twice" else reply)
            await writer.drain()
            if command == "close":
                return


def parse_witness_reply(reply: bytes) -> tuple[str, int]:
    """Split a witness reply line into ``(request_id, server_id)``."""
    request_id, server_id = reply.decode().split()
    return request_id, int(server_id)


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the socket file at ``path``, or None if there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino)
