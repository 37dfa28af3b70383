"""The pool's background task: a maintenance tick every period (idle expiry, keepalive, refill).

It holds only a weak reference to the pool's runner between rounds, so a pool that is
forgotten without ``close()`` can still be garbage-collected (and warn about it).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from ._runner import PoolRunner

logger = logging.getLogger("aioconn.pool")


async def run_maintenance(runner_ref: weakref.ref[PoolRunner[Any]], period: float) -> None:
    """Send the core a maintenance tick every ``period`` seconds while the pool exists."""
    while True:
        await asyncio.sleep(period)
        runner = runner_ref()
        if runner is None:
            return
        try:
            runner.core.tick(time.monotonic(), runner.check is not None)
            runner.flush()
        except Exception:  # a bug here must not stop maintenance for good; report it
            logger.exception("pool maintenance failed")
        del runner


def maintenance_period(*intervals: float | None) -> float:
    """How often the maintenance task runs: half the shortest interval it enforces."""
    given = [t for t in intervals if t is not None]
    return min(5.0, max(0.01, min(given, default=10.0) / 2))
