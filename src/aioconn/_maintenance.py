"""The pool's background task: idle expiry, keepalive checks and refill to ``min_size``.

It holds only a weak reference to the pool between rounds, so a pool that is forgotten
without ``close()`` can still be garbage-collected (and warn about it).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any, Protocol

logger = logging.getLogger("aioconn.pool")


class _Maintained(Protocol):
    def _maintain(self) -> None: ...


async def run_maintenance(pool_ref: weakref.ref[Any], period: float) -> None:
    """Call ``pool._maintain()`` every ``period`` seconds while the pool exists."""
    while True:
        await asyncio.sleep(period)
        pool: _Maintained | None = pool_ref()
        if pool is None:
            return
        try:
            pool._maintain()
        except Exception:  # a bug here must not stop maintenance for good; report it
            logger.exception("pool maintenance failed")
        del pool
