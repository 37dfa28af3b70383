"""``AsyncpgConnector``: asyncpg connections for ``aioconn.Pool``."""

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
    from asyncpg import Connection as _Connection

    Connection = _Connection[Any]
else:
    Connection = Any

__all__ = ["AsyncpgConnector"]

logger = logging.getLogger("aioconn.drivers")


class AsyncpgConnector(DriverConnector["Connection"]):
    """Opens ``asyncpg`` connections; needs ``pip install 'aioconn[asyncpg]'``.

    Args:
        dsn: a libpq connection URI, e.g. ``"postgresql://app@127.0.0.1:5432/app"``; or
            pass ``host=``, ``port=``, ``user=``, ... as keywords.
        init: called with each new connection once it is open (``async`` or not): register
            codecs, ``SET`` session parameters, ``PREPARE`` statements.
        reset: what a return cleans. ``"transaction"`` (the default) rolls back a transaction
            the caller left open and costs nothing otherwise (no round trip on a clean
            return). ``"session"`` also runs asyncpg's own ``Connection.reset()`` on every
            return — ``pg_advisory_unlock_all()``, ``CLOSE ALL``, ``UNLISTEN *``,
            ``RESET ALL``, as asyncpg's pool does — one round trip per return.
        recover_timeout: how long ``recover`` may take before the connection is given up.
        close_timeout: how long a graceful close may take before the connection is aborted.
        connect_kwargs: passed to ``asyncpg.connect`` (``timeout``, ``command_timeout``,
            ``statement_cache_size``, ``server_settings``, ``ssl``, ...).

    Raises:
        TypeError, ValueError: a bad ``init``, ``reset`` or timeout, naming it.
        ImportError: at the first connect, asyncpg is not installed.

    Example::

        pool = aioconn.Pool(AsyncpgConnector("postgresql://app@127.0.0.1/app"), max_size=10)
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT 1")
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        init: InitHook[Connection] | None = None,
        reset: ResetMode = "transaction",
        recover_timeout: float = DEFAULT_RECOVER_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        **connect_kwargs: Any,
    ) -> None:
        if dsn is not None and not isinstance(dsn, str):
            raise TypeError(f"dsn must be a str or None, got {dsn!r}")
        super().__init__(
            init=init, reset=reset, recover_timeout=recover_timeout, close_timeout=close_timeout
        )
        self.dsn = dsn
        self.connect_kwargs = connect_kwargs

    async def connect(self) -> Connection:
        """Open a connection with ``asyncpg.connect``."""
        asyncpg = require("asyncpg", "asyncpg", "AsyncpgConnector")
        connection: Connection = await asyncpg.connect(self.dsn, **self.connect_kwargs)
        return connection

    async def close(self, conn: Connection) -> None:
        """Close gracefully within ``close_timeout`` (asyncpg aborts it if that fails)."""
        await conn.close(timeout=self.close_timeout)

    def abort(self, conn: Connection) -> None:
        """Close at once, without telling the server (``Connection.terminate()``)."""
        conn.terminate()

    def is_reusable(self, conn: Connection) -> bool:
        """Open, as far as asyncpg knows (no round trip)."""
        return not conn.is_closed()

    async def check(self, conn: Connection) -> bool:
        """A round trip: ``SELECT 1`` on a connection asyncpg still thinks open."""
        if conn.is_closed():
            return False
        return bool(await conn.fetchval("SELECT 1") == 1)

    async def reset(self, conn: Connection) -> None:
        """Roll back a transaction left open; with ``reset="session"``, also reset the session.

        A transaction left open is a block that did not finish its work: the whole session is
        reset then (asyncpg's ``reset()``, which also forgets a ``Transaction`` object that was
        started and never finished), whatever ``reset`` says.
        """
        if conn.is_in_transaction():
            # Roll back first: asyncpg's reset() would report a bare BEGIN to the loop's
            # exception handler as an error; after the rollback it only cleans up.
            await conn.execute("ROLLBACK")
            await conn.reset()
        elif self.reset_mode == "session":
            await conn.reset()

    async def recover(self, conn: Connection, exc: BaseException) -> bool:
        """Make a connection whose block was interrupted (``exc``) clean again, or say it cannot.

        When a query is cancelled (a timeout, a cancelled task), asyncpg sends the server a
        cancel request itself and makes the connection's next command wait until the server
        has ended the cancelled one. ``recover`` sends that next command: a ``ROLLBACK``,
        which waits out the cancel and ends whatever transaction the block left, aborted or
        not; then ``reset``. The server process (and its prepared statements) survives: no
        new connection, no new backend.

        Returns:
            True when the connection is idle and open again within ``recover_timeout``;
            False (discard it) otherwise.
        """
        if conn.is_closed():
            return False
        try:
            async with asyncio.timeout(self.recover_timeout):
                await conn.execute("ROLLBACK")  # outside a transaction: a harmless notice
                await self.reset(conn)
        except Exception as error:  # a failed recovery just means: discard it
            logger.debug("asyncpg connection not recovered after %r: %r", exc, error)
            return False
        return not conn.is_closed() and not conn.is_in_transaction()

    def __repr__(self) -> str:
        where = self.dsn or ", ".join(f"{k}={v!r}" for k, v in self.connect_kwargs.items())
        return f"<AsyncpgConnector {where} reset={self.reset_mode!r}>"
