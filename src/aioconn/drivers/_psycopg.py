"""``PsycopgConnector``: psycopg 3 ``AsyncConnection``s for ``aioconn.Pool``."""

from __future__ import annotations

import asyncio
import logging
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
    from psycopg import AsyncConnection

    Connection = AsyncConnection[Any]
else:
    Connection = Any

__all__ = ["PsycopgConnector"]

logger = logging.getLogger("aioconn.drivers")

# What asyncpg's Connection.reset() runs, for psycopg: give back advisory locks, close cursors,
# stop listening, put every setting back to its default.
SESSION_RESET = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL"

# libpq's PQtransactionStatus values (psycopg.pq.TransactionStatus), without importing psycopg.
_IDLE, _ACTIVE, _INTRANS, _INERROR, _UNKNOWN = range(5)


class PsycopgConnector(DriverConnector["Connection"]):
    """Opens ``psycopg.AsyncConnection``s; needs ``pip install 'aioconn[psycopg]'``.

    Args:
        conninfo: a libpq connection string or URI; keywords in ``connect_kwargs`` are merged.
        init: called with each new connection once it is open (``async`` or not), like
            psycopg_pool's ``configure``. If it leaves a transaction open, the pool's first
            ``reset`` rolls it back: commit what it must keep.
        reset: ``"transaction"`` (the default) rolls back a transaction left open (status
            ``INTRANS`` or ``INERROR``) and costs nothing on a clean return; ``"session"``
            also resets the session state on every return (advisory locks, cursors,
            ``LISTEN``, settings), one round trip.
        recover_timeout: how long ``recover`` may take before the connection is given up.
        close_timeout: how long a graceful close may take before the connection is aborted.
        connect_kwargs: passed to ``AsyncConnection.connect`` (``autocommit``,
            ``prepare_threshold``, ``row_factory``, connection parameters, ...).

    Liveness comes from psycopg: ``closed`` and ``broken``, and the transaction status; a
    connection returned ``ACTIVE`` (a query still running) or ``UNKNOWN`` is not reused.
    """

    def __init__(
        self,
        conninfo: str = "",
        *,
        init: InitHook[Connection] | None = None,
        reset: ResetMode = "transaction",
        recover_timeout: float = DEFAULT_RECOVER_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        **connect_kwargs: Any,
    ) -> None:
        if not isinstance(conninfo, str):
            raise TypeError(f"conninfo must be a str, got {conninfo!r}")
        super().__init__(
            init=init, reset=reset, recover_timeout=recover_timeout, close_timeout=close_timeout
        )
        self.conninfo = conninfo
        self.connect_kwargs = connect_kwargs

    async def connect(self) -> Connection:
        """Open a connection with ``psycopg.AsyncConnection.connect``."""
        psycopg = require("psycopg", "psycopg", "PsycopgConnector")
        connection: Connection = await psycopg.AsyncConnection.connect(
            self.conninfo, **self.connect_kwargs
        )
        return connection

    async def close(self, conn: Connection) -> None:
        """Close (psycopg closes the socket without waiting for the server)."""
        await conn.close()

    def abort(self, conn: Connection) -> None:
        """Close at once, synchronously (libpq's ``PQfinish``)."""
        conn.pgconn.finish()

    def is_reusable(self, conn: Connection) -> bool:
        """Open, not broken, and not running a query (``ACTIVE``) or in an unknown state."""
        if conn.closed or conn.broken:
            return False
        return int(conn.info.transaction_status) not in (_ACTIVE, _UNKNOWN)

    async def check(self, conn: Connection) -> bool:
        """A round trip (an empty query, in autocommit so that it opens no transaction)."""
        if not self.is_reusable(conn) or int(conn.info.transaction_status) != _IDLE:
            return False
        if conn.autocommit:
            await conn.execute("")
            return True
        await conn.set_autocommit(True)
        try:
            await conn.execute("")
        finally:
            await conn.set_autocommit(False)
        return True

    async def reset(self, conn: Connection) -> None:
        """Roll back a transaction left open; with ``reset="session"``, reset the session too.

        Raises:
            RuntimeError: the connection is running a query or in an unknown state (the pool
                then discards it).
        """
        status = int(conn.info.transaction_status)
        if status in (_ACTIVE, _UNKNOWN):
            raise RuntimeError(f"cannot reset a connection in transaction status {status}")
        if status in (_INTRANS, _INERROR):
            await conn.rollback()
        if self.reset_mode == "session":
            await conn.execute(SESSION_RESET)
            if not conn.autocommit:
                await conn.commit()  # RESET ALL in a rolled-back transaction would be undone

    async def recover(self, conn: Connection, exc: BaseException) -> bool:
        """Make a connection whose block was interrupted (``exc``) clean again, or say it cannot.

        psycopg already cancels a query whose task is cancelled (``cancel_safe``) and waits
        for the server to end it, which leaves the connection ``INERROR`` or ``IDLE``; if a
        query is somehow still running (``ACTIVE``), ``recover`` cancels it the same way.
        Then a rollback. The server process survives: no new connection, no new backend.

        Returns:
            True when the connection is idle and open again within ``recover_timeout``;
            False (discard it) otherwise: ``ACTIVE`` after the cancel, closed or broken.
        """
        if conn.closed or conn.broken:
            return False
        try:
            async with asyncio.timeout(self.recover_timeout):
                if int(conn.info.transaction_status) == _ACTIVE:
                    await conn.cancel_safe(timeout=self.recover_timeout)
                    return False  # no public way to read the cancelled query's end: discard
                await self.reset(conn)
        except Exception as error:  # a failed recovery just means: discard it
            logger.debug("psycopg connection not recovered after %r: %r", exc, error)
            return False
        return self.is_reusable(conn) and int(conn.info.transaction_status) == _IDLE

    def __repr__(self) -> str:
        return f"<PsycopgConnector {self.conninfo!r} reset={self.reset_mode!r}>"
