"""``AiosqliteConnector``: aiosqlite connections for ``aioconn.Pool``."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from ._base import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_RECOVER_TIMEOUT,
    DriverConnector,
    InitHook,
    ResetMode,
    require,
)

if TYPE_CHECKING:
    from aiosqlite import Connection
else:
    Connection = Any

__all__ = ["AiosqliteConnector"]

logger = logging.getLogger("aioconn.drivers")


class AiosqliteConnector(DriverConnector["Connection"]):
    """Opens ``aiosqlite`` connections to one database file; needs ``aioconn[sqlite]``.

    Args:
        database: the file (or ``":memory:"``, one private database per connection).
        init: called with each new connection once it is open (``PRAGMA journal_mode=WAL``,
            ``row_factory``, ...).
        reset: ``"transaction"`` (the default) rolls back a transaction left open.
            ``"session"`` is accepted for symmetry and does the same: SQLite has no
            session state to reset beyond the transaction.
        recover_timeout: how long ``recover`` may take before the connection is given up.
        close_timeout: how long a graceful close may take before the connection is aborted.
        connect_kwargs: passed to ``aiosqlite.connect`` (``timeout``, ``isolation_level``...).
    """

    def __init__(
        self,
        database: str | os.PathLike[str],
        *,
        init: InitHook[Connection] | None = None,
        reset: ResetMode = "transaction",
        recover_timeout: float = DEFAULT_RECOVER_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        **connect_kwargs: Any,
    ) -> None:
        if not isinstance(database, str | os.PathLike):
            raise TypeError(f"database must be a path or str, got {database!r}")
        super().__init__(
            init=init, reset=reset, recover_timeout=recover_timeout, close_timeout=close_timeout
        )
        self.database = database
        self.connect_kwargs = connect_kwargs

    async def connect(self) -> Connection:
        """Open a connection (and its worker thread) with ``aiosqlite.connect``."""
        aiosqlite = require("aiosqlite", "sqlite", "AiosqliteConnector")
        connection: Connection = await aiosqlite.connect(self.database, **self.connect_kwargs)
        return connection

    async def close(self, conn: Connection) -> None:
        """Close within ``close_timeout``; the worker thread stops after it."""
        async with asyncio.timeout(self.close_timeout):
            await conn.close()

    def is_reusable(self, conn: Connection) -> bool:
        """Open: aiosqlite raises ``ValueError`` on any use of a closed connection."""
        try:
            conn.in_transaction  # noqa: B018  # the look is the check
        except ValueError:
            return False
        return True

    async def check(self, conn: Connection) -> bool:
        """A round trip through the worker thread: ``SELECT 1``."""
        if not self.is_reusable(conn):
            return False
        async with conn.execute("SELECT 1") as cursor:
            row = await cursor.fetchone()
        return row is not None and row[0] == 1

    async def reset(self, conn: Connection) -> None:
        """Roll back a transaction left open."""
        if conn.in_transaction:
            await conn.rollback()

    async def recover(self, conn: Connection, exc: BaseException) -> bool:
        """After an interrupted block: interrupt what still runs in the worker thread (a
        cancelled ``await`` does not stop the SQLite call), then roll back.

        Returns:
            True when the connection is open and outside a transaction again.
        """
        if not self.is_reusable(conn):
            return False
        try:
            async with asyncio.timeout(self.recover_timeout):
                await conn.interrupt()  # sqlite3's interrupt(): safe from another thread
                await self.reset(conn)  # queued behind the interrupted statement
        except Exception as error:  # a failed recovery just means: discard it
            logger.debug("aiosqlite connection not recovered after %r: %r", exc, error)
            return False
        return self.is_reusable(conn) and not conn.in_transaction

    def __repr__(self) -> str:
        return f"<AiosqliteConnector {os.fspath(self.database)!r} reset={self.reset_mode!r}>"
