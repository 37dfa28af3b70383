"""What the pools hold: trivial objects, or real loopback connections to the echo server.

Each kind counts what it creates and closes, so a scenario can check that no pool ever had
more than ``max_size`` resources alive at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aioconn

from .checks import CheckFailed


class Trivial:
    """A trivial resource: one ``object()`` from an async factory."""

    kind = "trivial"

    def __init__(self, premade: list[object] | None = None) -> None:
        self.created = 0
        self.closed = 0
        # S6 hands out objects allocated before it starts measuring the pool.
        self._premade = None if premade is None else iter(premade)

    async def create(self) -> object:
        self.created += 1
        return object() if self._premade is None else next(self._premade)

    async def close(self, resource: object) -> None:
        self.closed += 1

    def is_closed(self, resource: object) -> bool:
        return False

    @property
    def alive(self) -> int:
        return self.created - self.closed

    def check_alive(self, max_size: int, who: str) -> None:
        if self.alive > max_size:
            raise CheckFailed(f"{who}: {self.alive} resources alive, max_size={max_size}")


class StreamPair:
    """One ``asyncio.open_connection`` connection, as the non-aioconn pools hold it."""

    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer


class Echo(Trivial):
    """Loopback connections to the echo server: ``StreamPair``s, or aioconn ``Connection``s."""

    kind = "echo"

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host = host
        self.port = port

    async def create(self) -> StreamPair:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.created += 1
        return StreamPair(reader, writer)

    async def close(self, resource: Any) -> None:
        self.closed += 1
        resource.writer.close()
        with contextlib.suppress(OSError):  # the peer reset it: closed all the same
            await resource.writer.wait_closed()

    def is_closed(self, resource: Any) -> bool:
        return bool(resource.writer.is_closing())

    def connector(self) -> aioconn.TCPConnector:
        """aioconn's own connector to the same server, counting into the same counters."""
        return _CountingConnector(self)


class _CountingConnector(aioconn.TCPConnector):
    def __init__(self, echo: Echo) -> None:
        super().__init__(echo.host, echo.port)
        self._echo = echo

    async def connect(self) -> aioconn.Connection:
        connection = await super().connect()
        self._echo.created += 1
        return connection

    async def close(self, resource: aioconn.Connection) -> None:
        self._echo.closed += 1
        await super().close(resource)


async def exchange_streams(pair: StreamPair, line: bytes) -> bytes:
    """One request/reply on raw asyncio streams."""
    pair.writer.write(line)
    await pair.writer.drain()
    return await pair.reader.readline()


async def exchange_aioconn(connection: aioconn.Connection, line: bytes) -> bytes:
    """One request/reply on an aioconn ``Connection``."""
    await connection.send(line)
    return await connection.readline()
