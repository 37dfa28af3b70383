"""Opening connections for a pool: growth for waiters, refill to ``min_size``, one connect.

Connects run in tasks of their own, detached from the callers that need them, and at most
``max_connecting`` at once.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ._pool_config import OPEN, as_connect_error
from ._slot import Slot
from .events import ConnectFailed, ConnectionOpened

if TYPE_CHECKING:
    from .pool import Pool

__all__ = ["connect_counted", "fill", "grow", "open_one"]

logger = logging.getLogger("aioconn.pool")
_monotonic = time.monotonic
_LIFETIME_JITTER = 0.1  # retire up to 10 % early so connections opened together expire apart


def grow(pool: Pool[Any]) -> None:
    """Start opening connections for waiters nobody is opening for yet, within max_size.

    Openers run detached from the waiter: a waiter that gives up does not cancel the
    connect, whose connection then serves the next waiter or goes idle (no connect storms).
    """
    while (
        pool._state == OPEN
        and pool._waiting > pool._opening
        and pool._size() < pool._max_size
        and (pool._has_room is None or pool._has_room())
    ):
        pool._opening += 1
        pool._spawn(open_one(pool), "open")


def fill(pool: Pool[Any]) -> None:
    """Start opening connections up to ``min_size``."""
    while pool._state == OPEN and pool._size() < pool._min_size:
        pool._opening += 1
        pool._spawn(open_one(pool), "open")


async def connect_counted(pool: Pool[Any]) -> Slot[Any]:
    """Open one resource; the caller already counted it in ``_opening``.

    At most ``max_connecting`` connects run at once; the others wait their turn here (and
    count as opening meanwhile). The connect time starts when the turn comes.
    """
    started = _monotonic()
    try:
        if pool._connect_gate is None:
            resource = await connect_with_retry(pool)
        else:
            async with pool._connect_gate:
                started = _monotonic()
                resource = await connect_with_retry(pool)
    except BaseException as exc:
        pool._opening -= 1
        if isinstance(exc, Exception):
            pool._connect_failures += 1
            pool._emit(ConnectFailed(pool.name, exc, None))
        raise
    pool._opening -= 1
    if id(resource) in pool._slots:
        raise RuntimeError(
            f"{pool.name}: the connector returned {resource!r}, which the pool already"
            " holds; connect() must return a new resource each time"
        )
    pool._created += 1
    now = _monotonic()
    pool._connect_times.add(now - started)
    if pool._on_event is not None or logger.isEnabledFor(logging.DEBUG):
        endpoint = None if pool._endpoint_of is None else pool._endpoint_of(resource)
        pool._emit(ConnectionOpened(pool.name, resource, endpoint, now - started))
    expires = float("inf")
    if pool._max_lifetime is not None:
        expires = now + pool._max_lifetime * (1 - _LIFETIME_JITTER * pool._rng.random())
    slot = Slot(resource, now, expires)
    pool._slots[id(resource)] = slot
    return slot


async def connect_with_retry(pool: Pool[Any]) -> Any:
    """One ``connector.connect()``, through ``connect_retry`` when the pool has one."""
    if pool._connect_retry is None:
        return await pool._connector.connect()
    return await pool._connect_retry.call(
        pool._connector.connect, retry_on=(Exception,), description=f"{pool.name} connect"
    )


async def open_one(pool: Pool[Any], *, report: bool = True) -> None:
    """Open a connection and give it to the first waiter (or make it idle).

    A failure goes to the first waiter (``report``) or to whoever awaits this task.
    """
    try:
        slot = await connect_counted(pool)
    except Exception as exc:
        if not report:
            raise
        error = as_connect_error(exc, pool.name)
        logger.warning("%s: opening a connection failed: %s", pool.name, error)
        fail_first_waiter(pool, error)
        grow(pool)
        return
    pool._hand_or_idle(slot, _monotonic())


def fail_first_waiter(pool: Pool[Any], error: BaseException) -> None:
    """A connect for the queue failed: the longest waiter gets the error."""
    while pool._waiters:
        waiter = pool._waiters.popleft()
        if not waiter.done():
            pool._waiting -= 1
            waiter.set_exception(error)
            return
