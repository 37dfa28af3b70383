"""The pool the demo compares against: a queue of connections, the way one is often written."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class NaivePool:
    """An ``asyncio.Queue`` of open connections; ``finally`` puts each one back.

    Nothing here is staged to fail: it is the common recipe, and it looks right. What it
    misses is what the storm shows — a connection given back after a cancelled or timed-out
    request still has that request's reply on its way, and one given back after a reset
    stays dead — so the next borrower reads a stranger's reply, or fails.
    """

    def __init__(self, host: str, port: int, size: int) -> None:
        self._host, self._port, self._size = host, port, size
        self._queue: asyncio.Queue[Streams] = asyncio.Queue()
        self._opened: list[Streams] = []

    async def open(self) -> None:
        for _ in range(self._size):
            streams = await asyncio.open_connection(self._host, self._port)
            self._opened.append(streams)
            self._queue.put_nowait(streams)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Streams]:
        conn = await self._queue.get()
        try:
            yield conn
        finally:
            self._queue.put_nowait(conn)

    async def exchange(self, conn: Streams, line: bytes) -> bytes:
        reader, writer = conn
        writer.write(line)
        await writer.drain()
        return await reader.readline()

    @property
    def stranded(self) -> int:
        """Connections opened but not back in the queue."""
        return self._size - self._queue.qsize()

    async def close(self) -> None:
        # The recipe's close drains the queue; the demo also closes any connection that never
        # came back, so that its own process leaks nothing.
        for _, writer in self._opened:
            writer.close()
        for _, writer in self._opened:
            with contextlib.suppress(OSError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
