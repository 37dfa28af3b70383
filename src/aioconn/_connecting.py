"""``connect()`` and ``connect_unix()``: open a Connection with ``await`` or ``async with``."""

from __future__ import annotations

import os
import ssl as _ssl
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._options import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HAPPY_EYEBALLS_DELAY,
    DEFAULT_LIMIT,
    KeepAlive,
)
from .connection import Connection
from .retry import Retry

__all__ = ["connect", "connect_unix"]


class _Connecting:
    """What ``connect()`` returns: ``await`` it for a connection, or use it with ``async with``."""

    __slots__ = ("_connection", "_opener")

    def __init__(self, connection: Connection, opener: str) -> None:
        self._connection = connection
        self._opener = opener

    if not TYPE_CHECKING:  # hidden from type checkers, which already catch the missing await

        def __getattr__(self, name: str) -> Any:
            # Only reached for names _Connecting lacks: most likely `conn.send` on a result
            # that was never awaited. Say so, instead of "'_Connecting' object has no ...".
            raise AttributeError(
                f"{self._opener}() returns an awaitable, not a Connection, so it has no"
                f" attribute {name!r}: write `conn = await aioconn.{self._opener}(...)` or"
                f" `async with aioconn.{self._opener}(...) as conn:`",
                name=name,
                obj=self,
            )

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._connection.connect().__await__()

    async def __aenter__(self) -> Connection:
        return await self._connection.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._connection.close()


def connect(
    host: str,
    port: int,
    *,
    ssl: bool | _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    read_timeout: float | None = None,
    write_timeout: float | None = None,
    local_addr: tuple[str, int] | None = None,
    happy_eyeballs_delay: float | None = DEFAULT_HAPPY_EYEBALLS_DELAY,
    nodelay: bool = True,
    keepalive: bool | KeepAlive = False,
    limit: int = DEFAULT_LIMIT,
    retry: Retry | None = None,
) -> _Connecting:
    """Open a TCP or TLS connection: ``conn = await connect(...)`` or ``async with connect(...)``.

    Args:
        host: the name or address to connect to.
        port: the TCP port, 0..65535.
        ssl: ``True`` for a default, verifying TLS context; an ``ssl.SSLContext`` to use as
            given; ``None``/``False`` for plain TCP. Verification is never turned off for you.
        server_hostname: the name to verify the certificate against (default: ``host``).
        connect_timeout: seconds to resolve, connect and handshake (default 10.0);
            ``None``: no limit.
        close_timeout: seconds a graceful close may take before the socket is aborted
            (default 2.0).
        read_timeout: default deadline of each read call in seconds, or ``None``.
        write_timeout: default deadline of each send call in seconds, or ``None``.
        local_addr: ``(host, port)`` to bind the local end to.
        happy_eyeballs_delay: seconds before racing the next address (RFC 8305; default 0.25), or
            ``None`` to try addresses one after another.
        nodelay: keep ``TCP_NODELAY`` on (asyncio's default).
        keepalive: ``True`` or an ``aioconn.KeepAlive`` to enable TCP keepalive probes.
        limit: the longest line or frame accepted, in bytes (default 65536).
        retry: an ``aioconn.Retry`` policy for connect failures.

    Raises:
        TypeError, ValueError: for an invalid argument, naming it (at once, before awaiting).
        ConnectError: opening failed; ``attempts`` says which addresses were tried and why.
        ConnectTimeout: opening took longer than ``connect_timeout``.

    Example::

        async with aioconn.connect("127.0.0.1", 8000, read_timeout=5) as conn:
            await conn.send(b"ping\\n")
            reply = await conn.readline()
    """
    return _Connecting(
        Connection(
            host,
            port,
            ssl=ssl,
            server_hostname=server_hostname,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            local_addr=local_addr,
            happy_eyeballs_delay=happy_eyeballs_delay,
            nodelay=nodelay,
            keepalive=keepalive,
            limit=limit,
            retry=retry,
        ),
        "connect",
    )


def connect_unix(
    path: str | os.PathLike[str],
    *,
    ssl: bool | _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    read_timeout: float | None = None,
    write_timeout: float | None = None,
    limit: int = DEFAULT_LIMIT,
    retry: Retry | None = None,
) -> _Connecting:
    """Open a Unix-socket connection; awaitable and an async context manager like ``connect``.

    Args:
        path: the socket's file system path.
        ssl: TLS over the socket, as for TCP (rarely needed on a Unix socket).
        server_hostname: the name to verify the certificate against; required with ``ssl``.
        connect_timeout: seconds for the connect and any handshake (default 10.0);
            ``None``: no limit.
        close_timeout: seconds a graceful close may take before the socket is aborted
            (default 2.0).
        read_timeout: default deadline of each read call in seconds, or ``None``.
        write_timeout: default deadline of each send call in seconds, or ``None``.
        limit: the longest line or frame accepted, in bytes (default 65536).
        retry: an ``aioconn.Retry`` policy for connect failures.

    Raises:
        TypeError, ValueError: for an invalid argument, naming it (at once, before awaiting).
        ConnectError: opening failed; ``attempts`` says which addresses were tried and why.
        ConnectTimeout: opening took longer than ``connect_timeout``.
    """
    return _Connecting(
        Connection.unix(
            path,
            ssl=ssl,
            server_hostname=server_hostname,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            limit=limit,
            retry=retry,
        ),
        "connect_unix",
    )
