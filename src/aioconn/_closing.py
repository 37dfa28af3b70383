"""Closing a pool: refuse new work, fail waiters, close idle, wait for leases, then abort.

``Pool.close`` is the API; these functions are its steps. Each synchronous step leaves the
books consistent, so a cancelled close can be resumed by a later one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from . import _registry, _validate
from ._leak import describe_holder
from ._pool_config import CLOSED, CLOSING, NEW, OPEN
from ._slot import Slot
from ._tasks import current_task
from .errors import PoolClosed

if TYPE_CHECKING:
    from .pool import Pool

__all__ = ["begin_close", "close_pool"]

logger = logging.getLogger("aioconn.pool")


async def close_pool(pool: Pool[Any], timeout: float | None) -> None:
    """``Pool.close``: see its docstring."""
    deadline = _validate.timeout("timeout", timeout)
    if pool._state == NEW:
        pool._state = CLOSED
        return
    if pool._state == CLOSED:
        return
    if pool._state == OPEN:
        begin_close(pool)
    loop = asyncio.get_running_loop()
    ends = None if deadline is None else loop.time() + deadline
    # Another task's close() is running: wait for it to end. If it ends without closing
    # (cancelled), take over with the time left.
    while pool._attempt_ended is not None and not pool._attempt_ended.is_set():
        try:
            async with asyncio.timeout_at(ends):
                await pool._attempt_ended.wait()
        except TimeoutError:
            return
        if pool._state == CLOSED:
            return
    me = current_task(loop)
    attempt_ended = pool._attempt_ended = asyncio.Event()
    assert pool._released_event is not None
    assert pool._closed_event is not None
    try:
        try:
            async with asyncio.timeout_at(ends):
                while any(slot.owner is not me for slot in leased_slots(pool)):
                    pool._released_event.clear()
                    await pool._released_event.wait()
        except TimeoutError:
            abort_leases(pool, me)
        # Cancelled before this point, the pool stays "closing": a later close() finishes it.
        await drain_tasks(pool)
        pool._state = CLOSED
        pool._closed_event.set()
        _registry.open_pools.discard(pool)
        logger.debug("closed %r", pool)
    finally:
        attempt_ended.set()


def begin_close(pool: Pool[Any]) -> None:
    """The synchronous half of close(): no new work, waiters failed, idle closed."""
    pool._state = CLOSING
    pool._closed_event = asyncio.Event()
    pool._released_event = asyncio.Event()
    closed = PoolClosed(f"{pool.name} is closed")
    while pool._waiters:
        waiter = pool._waiters.popleft()
        if not waiter.done():
            waiter.set_exception(closed)
    pool._waiting = 0
    pool._timed.clear()
    if pool._timeout_timer is not None:
        pool._timeout_timer.cancel()
        pool._timeout_timer = None
    while pool._idle:
        pool._discard(pool._idle.pop(), "pool_closed")
    for task in (pool._maintenance, *pool._openers):
        if task is not None:
            task.cancel()


def leased_slots(pool: Pool[Any]) -> list[Slot[Any]]:
    """The slots in use (handed-off ones included)."""
    return [slot for slot in pool._slots.values() if slot.lease is not None]


def abort_leases(pool: Pool[Any], me: asyncio.Task[Any] | None) -> None:
    """close() ran out of time: abort every lease but the caller's own, and say who held it."""
    for slot in leased_slots(pool):
        if slot.owner is me:
            continue
        logger.warning(
            "%s: closing aborted a connection still in use: %s",
            pool.name,
            describe_holder(slot),
        )
        pool._unlease(slot)
        pool._aborted.add(id(slot.resource))
        if pool._on_release is not None:
            pool._on_release(slot.resource)
        pool._discard(slot, "aborted", abort=True)


async def drain_tasks(pool: Pool[Any]) -> None:
    """Wait for the pool's own tasks (closers, openers, maintenance) to finish."""
    while pool._tasks:
        await asyncio.wait(list(pool._tasks))
    if pool._maintenance is not None and not pool._maintenance.done():
        await asyncio.wait([pool._maintenance])  # cancelled by close(); let it finish
