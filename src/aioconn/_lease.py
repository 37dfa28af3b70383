"""``Lease``: the async context manager ``pool.acquire()`` returns."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

from .connection import CallTimeout
from .errors import Error

if TYPE_CHECKING:
    from .pool import Pool

R = TypeVar("R")


class Lease(Generic[R]):
    """``async with pool.acquire() as resource:`` — gets on entry, returns or discards on exit."""

    __slots__ = ("_pool", "_resource", "_timeout")

    def __init__(self, pool: Pool[R], timeout: CallTimeout) -> None:
        self._pool = pool
        self._timeout = timeout

    async def __aenter__(self) -> R:
        pool = self._pool
        slot = pool._take_idle_now()
        resource = slot.resource if slot is not None else await pool._get_slow(self._timeout)
        self._resource = resource
        return resource

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool = self._pool
        if exc is None and pool._reset is None:
            closer = pool._release(self._resource, None)
        elif exc is None:
            await pool.put(self._resource)
            return
        elif not isinstance(exc, Exception):
            closer = pool._release(self._resource, "interrupted")  # cancelled mid-use
        elif isinstance(exc, OSError | Error):
            closer = pool._release(self._resource, "error")  # timeouts are OSErrors too
        else:
            await pool.put(self._resource)
            return
        if closer is not None:
            await pool._finish_release(closer)
