"""Pool statistics: an immutable snapshot of state and counters, and O(1)-memory summaries."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

__all__ = ["Discards", "EndpointStats", "PoolStats", "Summary"]


@dataclass(frozen=True, slots=True)
class Summary:
    """A distribution of durations in seconds: count, mean, percentiles and maximum.

    Percentiles come from a log-bucketed histogram and are accurate to within 5 %.
    """

    count: int = 0
    """How many durations were recorded."""
    mean: float = 0.0
    """Their average, in seconds (0 when there are none)."""
    p50: float = 0.0
    """The median, in seconds (within 5 %)."""
    p99: float = 0.0
    """The 99th percentile, in seconds (within 5 %)."""
    max: float = 0.0
    """The longest, in seconds (exact)."""
    total: float = 0.0
    """The sum of all durations."""
    buckets: tuple[int, ...] = field(default=(), repr=False)
    """How many durations fell in each bucket of the log-scale histogram (durations of 0 in
    the first); empty for a ``Summary()`` built by hand. Read it with ``cumulative`` or
    ``increase``."""

    def cumulative(self, bounds: Sequence[float]) -> tuple[int, ...]:
        """How many durations were at most each of ``bounds`` (ascending, positive seconds).

        This is what a Prometheus histogram's ``le`` buckets need. A log-scale bucket counts
        under a bound when its middle does, so a duration within 5 % of a bound may be counted
        on the other side of it; durations of 0 (and below 1 µs) count under every bound.

        Args:
            bounds: the upper bounds, ascending positive seconds.

        Raises:
            ValueError: ``bounds`` are not ascending positive numbers.
        """
        if any(b <= 0 for b in bounds) or any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"bounds must be ascending positive seconds, got {bounds!r}")
        running = (0, *itertools.accumulate(self.buckets))
        last = len(self.buckets)
        return tuple(running[min(last, bisect.bisect_right(_MIDDLES, b))] for b in bounds)

    def increase(self, since: Summary | None = None) -> list[tuple[float, int]]:
        """The durations recorded after ``since``, as ``(seconds, count)`` per bucket.

        ``since`` is an earlier snapshot of the same recorder (``None``: from the start; a
        snapshot from before a reset counts as ``None``). ``seconds`` is the middle of the
        bucket, the value ``cumulative`` places: recording each pair ``count`` times into
        another histogram reproduces this one's bucket counts exactly (its sum to within 5 %).

        Args:
            since: an earlier snapshot of the same recorder, or ``None``.
        """
        before = since.buckets if since is not None else ()
        if len(before) != len(self.buckets) or any(
            a < b for a, b in zip(self.buckets, before, strict=True)
        ):
            before = (0,) * len(self.buckets)
        return [
            (_MIDDLES[index], now - then)
            for index, (now, then) in enumerate(zip(self.buckets, before, strict=True))
            if now > then
        ]


_FLOOR = 1e-6  # durations up to a microsecond share the first bucket
_GROWTH = math.log(1.05)  # each bucket is 5 % wider than the previous one
_BUCKETS = 512  # 1 µs * 1.05**510 ≈ 6.4e4 s: longer durations share the last bucket
# Bucket i (1 <= i < _BUCKETS - 1) holds the durations in (_EDGES[i - 1], _EDGES[i]]; bucket 0
# those up to _FLOOR (zeros included), the last those above _EDGES[-1].
_EDGES = tuple(_FLOOR * math.exp(i * _GROWTH) for i in range(_BUCKETS - 1))
# The value that stands for each bucket (its geometric middle; 0 for the first, which holds the
# zeros of the fast path). ``add(_MIDDLES[i])`` lands in bucket ``i``; ascending, for bisect.
_MIDDLES = (0.0, *(_FLOOR * math.exp((i - 0.5) * _GROWTH) for i in range(1, _BUCKETS)))
BATCH = 1024
"""Durations a recorder holds unbucketed at most (before ``fold``); see ``SummaryRecorder``."""


class SummaryRecorder:
    """Records durations into a fixed-size histogram: memory does not grow with the count.

    A duration is first appended to ``pending`` (the pool's hot paths do that inline: one list
    append instead of the bucket arithmetic, ~50 ns less per duration); ``fold`` buckets them
    all at once (sorted, one bisect per bucket they touch), when ``BATCH`` are pending and
    before anything reads the histogram. Whoever appends inline also makes sure ``fold`` runs
    once ``BATCH`` are pending (the pool: ``PoolCore.fold_times`` on its returns).
    """

    __slots__ = ("buckets", "max", "pending", "total")

    def __init__(self) -> None:
        self.buckets = [0] * _BUCKETS
        self.total = 0.0
        self.max = 0.0
        self.pending: list[float] = []

    def add(self, seconds: float) -> None:
        """Record one duration (in seconds, >= 0)."""
        pending = self.pending
        pending.append(seconds)
        if len(pending) >= BATCH:
            self.fold()

    def fold(self) -> None:
        """Move the pending durations into the histogram, the total and the maximum."""
        pending = self.pending
        if not pending:
            return
        pending.sort()
        self.total += sum(pending)
        if pending[-1] > self.max:
            self.max = pending[-1]
        buckets = self.buckets
        start, end = 0, len(pending)
        last = _BUCKETS - 1
        while start < end:  # one round per bucket the durations fall in
            index = bisect.bisect_left(_EDGES, pending[start])
            stop = bisect.bisect_right(pending, _EDGES[index], start) if index < last else end
            buckets[index] += stop - start
            start = stop
        pending.clear()

    @property
    def count(self) -> int:
        """How many durations were recorded (the buckets' sum: one counter less per add)."""
        return sum(self.buckets) + len(self.pending)

    def _quantile(self, q: float, count: int, zeros: int) -> float:
        rank = max(1, math.ceil(q * count))
        if rank <= zeros:
            return 0.0
        seen = zeros
        for index, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                if index == 0:
                    return min(_FLOOR, self.max)
                # the geometric middle of the bucket, never above the true maximum
                return min(self.max, _FLOOR * math.exp((index - 0.5) * _GROWTH))
        return self.max

    def snapshot(self, zeros: int = 0) -> Summary:
        """The summary as it stands, with ``zeros`` more durations of exactly 0 counted in."""
        self.fold()
        count = sum(self.buckets) + zeros
        if count == 0:
            return Summary()
        buckets = self.buckets.copy()
        buckets[0] += zeros
        return Summary(
            count=count,
            mean=self.total / count,
            p50=self._quantile(0.5, count, zeros),
            p99=self._quantile(0.99, count, zeros),
            max=self.max,
            total=self.total,
            buckets=tuple(buckets),
        )


@dataclass(frozen=True, slots=True)
class Discards:
    """Connections the pool closed instead of reusing, by reason."""

    interrupted: int = 0
    """The block ended with cancellation (a timeout *around* the block cancels it) or another
    BaseException; a ``TimeoutError`` raised inside the block counts as ``error``."""
    error: int = 0
    """The block ended with an exception (any ``Exception``: an ``OSError``, a driver's error,
    a ``ValueError`` of the caller's own) and the connector has no ``recover``."""
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
    recover_failed: int = 0
    """The block ended by an exception and the connector's ``recover`` said no, raised or
    took longer than ``recover_timeout``."""
    max_uses: int = 0
    """Given back for the ``max_uses``-th time."""
    expired: int = 0
    """Retired by ``Pool.expire()`` (idle ones at once, the others when given back)."""
    rebalanced: int = 0
    """Given back while callers queued, and retired so that an ``aioconn.Endpoints`` could
    open one to an endpoint below its share (one restored after an ejection, or added)."""

    @property
    def total(self) -> int:
        """All discards together."""
        return sum(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """One endpoint of a multi-endpoint pool, as ``aioconn.Endpoints`` sees it."""

    endpoint: str
    """The endpoint as ``host:port`` (or its Unix path)."""
    state: str
    """``"healthy"``, ``"ejected"``, ``"half_open"`` or ``"draining"``."""
    weight: float
    """Its share of traffic for the weighted strategies."""
    open: int
    """Connections to it that exist (idle + in use)."""
    in_use: int
    """Connections to it lent out now."""
    idle: int
    """Connections to it idle in the pool now."""
    failures: int
    """Connect failures since the pool opened."""
    consecutive_failures: int
    """Connect failures since its last success; ejection counts these."""
    ejections: int
    """How many times it was ejected since the pool opened."""
    last_error: str | None
    """The last connect failure, as text; ``None`` if it never failed."""
    connect_time: Summary
    """How long successful connects to it took."""


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of a pool: current state first, then counters since ``open()``."""

    name: str
    """The pool's ``name`` (shown in logs and errors)."""
    size: int
    """Connections that exist: idle + in_use + opening + checking + returning."""
    idle: int
    """Connections open and waiting to be lent."""
    in_use: int
    """Connections lent out (inside ``acquire`` blocks or taken with ``get``)."""
    opening: int
    """Connects in flight."""
    checking: int
    """Idle connections taken aside by the keepalive check."""
    waiting: int
    """Acquires queued for a connection now."""
    min_size: int
    """The pool's ``min_size`` now (``resize`` changes it)."""
    max_size: int
    """The pool's ``max_size`` now (``resize`` changes it)."""
    acquired: int
    """Acquires that got a connection."""
    released: int
    """Connections given back (returned to idle or discarded)."""
    created: int
    """Connections opened successfully."""
    connect_failures: int
    """Connects that failed (after ``connect_retry``, if any)."""
    timeouts: int
    """Acquires that failed with ``PoolTimeout``."""
    discarded: Discards
    """Connections closed instead of reused, by reason."""
    acquire_wait: Summary
    """How long acquires waited for a connection (0 on the fast path)."""
    hold_time: Summary
    """How long connections stayed lent out."""
    endpoints: tuple[EndpointStats, ...] = ()
    """Per endpoint, with an ``aioconn.Endpoints`` connector; empty otherwise."""
    connect_time: Summary | None = None
    """How long successful connects took; ``None`` where the pool does not record it."""
    returning: int = 0
    """Connections given back and being ``reset`` or ``recover``-ed (counted in ``size``)."""
    unreachable_for: float | None = None
    """Seconds since connects began failing while the pool backs off (``connect_backoff``);
    ``None`` while connects succeed."""
