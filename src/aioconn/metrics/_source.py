"""Reading a pool's stats from any thread, by handing the read to the pool's event loop.

Exporters collect on threads of their own (an HTTP server's, an SDK's export thread), and a pool
is not thread-safe: ``pool.stats()`` must run on the loop that runs the pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import weakref

from .._validate import timeout as _timeout
from ..stats import PoolStats
from . import StatsSource

logger = logging.getLogger("aioconn.metrics")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class PoolReader:
    """A weak reference to a pool and the event loop it runs on, captured at registration.

    ``stats()`` runs ``pool.stats()`` on that loop: directly when called from the loop's own
    thread (or when the loop is not running, so nothing can change the pool meanwhile), else
    through ``call_soon_threadsafe``, waiting at most ``timeout`` seconds.
    """

    __slots__ = ("_loop", "_ref", "name", "timeout")

    def __init__(self, pool: StatsSource, timeout: float) -> None:
        loop = _running_loop()
        if loop is None:
            raise RuntimeError(
                f"register {pool!r} from the event loop it runs on (inside `async def`):"
                " its stats are read on that loop"
            )
        self._loop = loop
        self._ref: weakref.ref[StatsSource] = weakref.ref(pool)
        self.name: str = pool.stats().name
        checked = _timeout("timeout", timeout, allow_none=False)
        assert checked is not None
        self.timeout = checked

    def is_for(self, pool: StatsSource) -> bool:
        """True if this reader reads ``pool``."""
        return self._ref() is pool

    def same_pool(self, other: PoolReader) -> bool:
        """True if both read the same pool, and it still exists."""
        pool = self._ref()
        return pool is not None and pool is other._ref()

    @property
    def alive(self) -> bool:
        """False once the pool has been garbage-collected."""
        return self._ref() is not None

    def stats(self) -> PoolStats | None:
        """The pool's stats, or None: the pool is gone, or its loop did not answer in time."""
        pool = self._ref()
        if pool is None:
            return None
        loop = self._loop
        if loop.is_closed() or not loop.is_running() or _running_loop() is loop:
            return pool.stats()
        answer: concurrent.futures.Future[PoolStats] = concurrent.futures.Future()

        def read() -> None:
            if answer.set_running_or_notify_cancel():
                try:
                    answer.set_result(pool.stats())
                except BaseException as exc:  # handed over to the thread that waits for it
                    answer.set_exception(exc)

        try:
            loop.call_soon_threadsafe(read)
        except RuntimeError:  # the loop closed meanwhile: nothing runs on it any more
            return pool.stats()
        try:
            return answer.result(self.timeout)
        except TimeoutError:
            answer.cancel()
            logger.warning(
                "%s: no stats within %s s (its event loop is busy or blocked); skipped",
                self.name,
                self.timeout,
            )
            return None
