"""A TLS witness server that never answers the client's close_notify.

TLS 1.3 peers may simply not send close_notify back (aiohttp #11091), so a client that waits for
it waits for asyncio's ``ssl_shutdown_timeout`` (30 s by default) unless it bounds the close
itself. This server speaks TLS through ``ssl.MemoryBIO`` so that it controls every byte: it
completes handshakes, answers witness requests (``<id>\\n`` -> ``<id> <server-id>\\n``), counts
the close_notify alerts it receives and ignores them, and closes its socket only once the client
closes the TCP connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Self

__all__ = ["SilentTLSServer"]


class SilentTLSServer:
    """Listens on 127.0.0.1; ``open_count``/``wait_until`` as ``EchoServer`` has them."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.opened = 0
        self.closed = 0
        self.close_notifies = 0
        self._context = context
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.Transport] = set()
        self._conditions: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    @property
    def open_count(self) -> int:
        return self.opened - self.closed

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Session(self), self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for transport in list(self._transports):
            transport.abort()
        await self.wait_until(lambda: self.open_count == 0)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; re-checked whenever a connection opens or closes."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._conditions.append(entry)
        try:
            await future
        finally:
            self._conditions.remove(entry)

    def _notify(self) -> None:
        for predicate, future in list(self._conditions):
            if not future.done() and predicate():
                future.set_result(None)


class _Session(asyncio.Protocol):
    def __init__(self, server: SilentTLSServer) -> None:
        self._server = server
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = server._context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._handshaken = False
        self._close_notified = False
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._id = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        server = self._server
        server.opened += 1
        self._id = server.opened
        server._transports.add(transport)
        server._notify()

    def data_received(self, data: bytes) -> None:
        self._incoming.write(data)
        try:
            if not self._handshaken:
                self._tls.do_handshake()
                self._handshaken = True
            while not self._close_notified:
                chunk = self._tls.read(65536)  # b"" once the client's close_notify came
                if not chunk:
                    self._close_notified = True
                    self._server.close_notifies += 1  # ... which we never answer
                self._buffer += chunk
                while b"\n" in self._buffer:
                    request, self._buffer = self._buffer.split(b"\n", 1)
                    self._tls.write(b"%s %d\n" % (request, self._id))
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            assert self._transport is not None
            self._transport.abort()
        self._flush()

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending and self._transport is not None and not self._transport.is_closing():
            self._transport.write(pending)

    def eof_received(self) -> bool:
        return False  # the client closed TCP: close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        server = self._server
        if self._transport is not None:
            server._transports.discard(self._transport)
        server.closed += 1
        server._notify()
