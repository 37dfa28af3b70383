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

    Takes the options of ``Connection``. Example::

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
    """Open a Unix-socket connection; awaitable and an async context manager like ``connect``."""
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
