"""``Lease``: the async context manager ``pool.acquire()`` returns."""

from __future__ import annotations

from threading import get_ident
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

from ._leak import watch_for_leak
from ._tasks import current_task
from .connection import CallTimeout
from .errors import Error

if TYPE_CHECKING:
    from ._slot import Slot
    from .pool import Pool

R = TypeVar("R")


class Lease(Generic[R]):
    """``async with pool.acquire() as resource:`` — gets on entry, returns or discards on exit."""

    __slots__ = ("_pool", "_slot", "_timeout")
    # No __init__: Pool.acquire() sets the fields (a Python __init__ cost ~50 ns of a ~1 µs
    # acquire + release: S1 in docs/benchmarks.md).
    _pool: Pool[R]
    _timeout: CallTimeout
    _slot: Slot[R]

    async def __aenter__(self) -> R:
        pool = self._pool
        # The fast path, inlined (a call cost ~30 ns of a ~0.9 µs acquire + release): a fresh
        # idle slot while nobody queues, leased without awaiting. It runs only in the thread
        # that opened the pool, inside a task of the pool's loop: the current task of that
        # loop is then ours. (get_running_loop() would say so too, at ~120 ns on 3.11;
        # get_ident() costs ~25.) Anything else takes the slow path, which checks exactly.
        idle = pool._idle
        loop = pool._loop
        if (
            idle
            and not pool._waiting
            and get_ident() == pool._thread
            and (owner := current_task(loop)) is not None
        ):
            slot = idle.pop()
            now = monotonic()
            if (
                slot.expires_at > now
                and now - slot.idle_since <= pool._fresh_window
                and (pool._is_reusable is None or pool._is_reusable(slot.resource))
            ):
                pool._instant_acquires += 1
                slot.lease = self
                slot.leased_at = now
                slot.owner = owner
                if pool._leak_timeout is not None:
                    watch_for_leak(pool, slot, pool._leak_timeout)
                self._slot = slot
                return slot.resource
            idle.append(slot)  # not fresh: the slow path checks or retires it
        if (
            (idle and not pool._waiting)
            or get_ident() != pool._thread
            or (owner := current_task(loop)) is None
        ):
            # idle but not fresh, a balancer to ask, or misuse (the slow path says which)
            slot = await pool._get_slow(self._timeout, self)
        else:  # queue: inlined here, as another coroutine cost ~0.3 µs per contended acquire
            started = monotonic()
            waiter = pool._enqueue(self._timeout, started)
            try:
                slot = await waiter
            except BaseException:
                pool._abandon(waiter)
                raise
            pool._lease_to(slot, self, started, owner)
        self._slot = slot
        return slot.resource

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool = self._pool
        slot = self._slot
        if slot.lease is not self:
            pool._release_lost(slot)  # close() aborted it (or this is a second exit)
            return
        if exc is None:
            if pool._reset is not None:
                await pool._give_back(slot, None)
                return
            closer = pool._release(slot, None)
        elif not isinstance(exc, Exception):
            closer = pool._release(slot, "interrupted")  # cancelled mid-use
        elif isinstance(exc, OSError | Error):
            closer = pool._release(slot, "error")  # timeouts are OSErrors too
        else:
            await pool._give_back(slot, None)
            return
        if closer is not None:
            await pool._finish_release(closer)
