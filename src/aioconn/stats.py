"""Pool statistics: an immutable snapshot of state and counters, and O(1)-memory summaries."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

__all__ = ["Discards", "EndpointStats", "PoolStats", "Summary"]


@dataclass(frozen=True, slots=True)
class Summary:
    """A distribution of durations in seconds: count, mean, percentiles and maximum.

    Percentiles come from a log-bucketed histogram and are accurate to within 5 %.
    """

    count: int = 0
    mean: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    max: float = 0.0


_FLOOR = 1e-6  # durations below a microsecond share the first bucket
_GROWTH = math.log(1.05)  # each bucket is 5 % wider than the previous one
_BUCKETS = 512  # 1 µs * 1.05**511 ≈ 6.6e4 s: longer durations share the last bucket
_SCALE = 1 / _GROWTH
_OFFSET = 1 - math.log(_FLOOR) * _SCALE  # bucket = 1 + log(seconds / _FLOOR) / _GROWTH


class SummaryRecorder:
    """Records durations into a fixed-size histogram: memory does not grow with the count."""

    __slots__ = ("_buckets", "count", "max", "total")

    def __init__(self) -> None:
        self._buckets = [0] * _BUCKETS
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float, _log: Callable[[float], float] = math.log) -> None:
        """Record one duration (on every release: kept to plain arithmetic, no calls but log)."""
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds
        index = int(_log(seconds) * _SCALE + _OFFSET) if seconds > _FLOOR else 0
        self._buckets[index if index < _BUCKETS else _BUCKETS - 1] += 1

    def _quantile(self, q: float, zeros: int) -> float:
        rank = max(1, math.ceil(q * (self.count + zeros)))
        if rank <= zeros:
            return 0.0
        seen = zeros
        for index, n in enumerate(self._buckets):
            seen += n
            if seen >= rank:
                if index == 0:
                    return min(_FLOOR, self.max)
                # the geometric middle of the bucket, never above the true maximum
                return min(self.max, _FLOOR * math.exp((index - 0.5) * _GROWTH))
        return self.max

    def snapshot(self, zeros: int = 0) -> Summary:
        """The summary as it stands, with ``zeros`` more durations of exactly 0 counted in."""
        count = self.count + zeros
        if count == 0:
            return Summary()
        return Summary(
            count=count,
            mean=self.total / count,
            p50=self._quantile(0.5, zeros),
            p99=self._quantile(0.99, zeros),
            max=self.max,
        )


@dataclass(frozen=True, slots=True)
class Discards:
    """Connections the pool closed instead of reusing, by reason."""

    interrupted: int = 0
    """The block ended with cancellation (a timeout *around* the block cancels it) or another
    BaseException; a ``TimeoutError`` raised inside the block counts as ``error``."""
    error: int = 0
    """The block ended with an ``OSError`` or an ``aioconn.Error``."""
    not_reusable: int = 0
    """The connector's ``is_reusable`` said no (broken, unread bytes, EOF)."""
    check_failed: int = 0
    """``check`` said dead (on checkout or by the idle keepalive)."""
    reset_failed: int = 0
    """``reset`` raised or was interrupted."""
    max_lifetime: int = 0
    """Older than ``max_lifetime``."""
    max_idle: int = 0
    """Idle longer than ``max_idle`` above ``min_size``."""
    requested: int = 0
    """``put(resource, discard=True)``."""
    pool_closed: int = 0
    """Closed with the pool (idle or returned after close began)."""
    aborted: int = 0
    """Still in use when ``close(timeout=...)`` ran out; aborted."""
    resized: int = 0
    """Above a ``max_size`` lowered by ``resize``."""
    drained: int = 0
    """Its endpoint was drained or removed (``Pool.drain``, ``Pool.update_endpoints``)."""

    @property
    def total(self) -> int:
        """All discards together."""
        return sum(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """One endpoint of a multi-endpoint pool, as ``aioconn.Endpoints`` sees it."""

    endpoint: str
    state: str
    """``"healthy"``, ``"ejected"``, ``"half_open"`` or ``"draining"``."""
    weight: float
    open: int
    """Connections to it that exist (idle + in use)."""
    in_use: int
    idle: int
    failures: int
    """Connect failures since the pool opened."""
    consecutive_failures: int
    ejections: int
    last_error: str | None
    connect_time: Summary


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of a pool: current state first, then counters since ``open()``."""

    name: str
    size: int
    """Connections that exist: idle + in_use + opening + checking."""
    idle: int
    in_use: int
    opening: int
    checking: int
    """Idle connections taken aside by the keepalive check."""
    waiting: int
    min_size: int
    max_size: int
    acquired: int
    released: int
    created: int
    connect_failures: int
    timeouts: int
    """Acquires that failed with ``PoolTimeout``."""
    discarded: Discards
    acquire_wait: Summary
    hold_time: Summary
    endpoints: tuple[EndpointStats, ...] = ()
    """Per endpoint, with an ``aioconn.Endpoints`` connector; empty otherwise."""
