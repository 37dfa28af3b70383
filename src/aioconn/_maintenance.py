"""The pool's background task: idle expiry, keepalive checks and refill to ``min_size``.

It holds only a weak reference to the pool between rounds, so a pool that is forgotten
without ``close()`` can still be garbage-collected (and warn about it).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, TypeVar

from ._opening import fill
from ._pool_config import OPEN
from ._slot import Slot

if TYPE_CHECKING:
    from .pool import Pool

R = TypeVar("R")
logger = logging.getLogger("aioconn.pool")
_monotonic = time.monotonic


async def run_maintenance(pool_ref: weakref.ref[Pool[Any]], period: float) -> None:
    """Run ``maintain_once`` every ``period`` seconds while the pool exists."""
    while True:
        await asyncio.sleep(period)
        pool = pool_ref()
        if pool is None:
            return
        try:
            maintain_once(pool)
        except Exception:  # a bug here must not stop maintenance for good; report it
            logger.exception("pool maintenance failed")
        del pool


def maintenance_period(pool: Pool[Any]) -> float:
    """How often the maintenance task runs: half the shortest interval it enforces."""
    intervals = [
        t for t in (pool._max_idle, pool._max_lifetime, pool._keepalive_interval) if t is not None
    ]
    return min(5.0, max(0.01, min(intervals, default=10.0) / 2))


def maintain_once(pool: Pool[R]) -> None:
    """One round: retire expired or dead idle slots, start keepalive checks, refill."""
    if pool._state != OPEN:
        return
    now = _monotonic()
    keep: deque[Slot[R]] = deque()
    to_check: list[Slot[R]] = []
    # The left end holds the longest idle (slots are reused from the right).
    excess = pool._size() - pool._min_size
    while pool._idle:
        slot = pool._idle.popleft()
        reason = pool._checkout_verdict(slot, now)
        if (
            reason is None
            and excess > 0
            and pool._max_idle is not None
            and now - slot.idle_since > pool._max_idle
        ):
            reason = "max_idle"
        if reason is not None:
            excess -= 1
            pool._discard(slot, reason)
        elif (
            pool._keepalive_interval is not None
            and pool._check is not None
            and now - max(slot.idle_since, slot.checked_at) >= pool._keepalive_interval
        ):
            to_check.append(slot)
        else:
            keep.append(slot)
    pool._idle.extend(keep)
    for slot in to_check:
        pool._checking += 1
        pool._spawn(keepalive(pool, slot), "check")
    fill(pool)


async def keepalive(pool: Pool[R], slot: Slot[R]) -> None:
    """Check an idle slot taken aside; return it to the pool, or discard it if dead."""
    assert pool._check is not None
    try:
        alive = bool(await pool._check(slot.resource))
    except Exception as exc:
        logger.info("%s: keepalive check of %r failed: %r", pool.name, slot.resource, exc)
        alive = False
    except BaseException:
        pool._checking -= 1
        pool._discard(slot, "check_failed")
        raise
    pool._checking -= 1
    if alive and pool._state == OPEN:
        slot.checked_at = _monotonic()
        pool._hand_or_idle(slot, slot.checked_at, idle_since=slot.idle_since)
    else:
        pool._discard(slot, "check_failed" if not alive else "pool_closed")
