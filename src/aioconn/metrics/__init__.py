"""What a pool's statistics look like as metrics: one table and one mapping, for every exporter.

``METRICS`` names each metric once, for Prometheus and for OpenTelemetry, with its kind, unit,
description and labels; ``samples(stats)`` turns a ``PoolStats`` into values for that table. The
exporters (``aioconn.metrics.prometheus``, ``aioconn.metrics.otel``) only translate these samples
into their library's types, so the two cannot drift apart. This module needs nothing but the
standard library; use it directly to feed another monitoring system::

    for sample in samples(pool.stats()):
        names = [label.prometheus for label in sample.metric.labels]
        send(sample.metric.prometheus, dict(zip(names, sample.labels)), sample.value)
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol

from ..stats import Discards, EndpointStats, PoolStats, Summary

__all__ = [
    "DEFAULT_BUCKETS",
    "ENDPOINT_STATES",
    "METRICS",
    "HistogramValue",
    "Kind",
    "Label",
    "Metric",
    "Sample",
    "StatsSource",
    "as_bounds",
    "samples",
]

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Upper bounds (seconds) of the histogram buckets: waits and connects are short, holds vary."""

ENDPOINT_STATES: tuple[str, ...] = ("healthy", "ejected", "half_open", "draining")
"""The values of ``EndpointStats.state``: ``aioconn_pool_endpoint_state`` has one series each."""


class StatsSource(Protocol):
    """What the exporters read: an ``aioconn.Pool``, or anything with a ``stats()`` like it."""

    def stats(self) -> PoolStats:
        """A snapshot of the pool."""
        ...


class Kind(enum.Enum):
    """How a metric behaves, which decides its type in each exporter."""

    COUNTER = "counter"
    """Only goes up (since the pool opened): Prometheus counter, OTel (observable) Counter."""
    UP_DOWN = "up_down"
    """A current amount that adds up across pools: Prometheus gauge, OTel UpDownCounter."""
    GAUGE = "gauge"
    """A current value that does not add up (a weight, a 0/1 state): gauge in both."""
    HISTOGRAM = "histogram"
    """A distribution of durations in seconds: histogram in both."""


@dataclass(frozen=True, slots=True)
class Label:
    """One label (Prometheus) or attribute (OpenTelemetry) of a metric."""

    prometheus: str
    """The label's name in Prometheus."""
    otel: str
    """The attribute's name in OpenTelemetry."""


POOL = Label("pool", "pool.name")
ENDPOINT = Label("endpoint", "pool.endpoint")
STATE = Label("state", "connection.state")
ENDPOINT_STATE = Label("state", "endpoint.state")
REASON = Label("reason", "discard.reason")


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric: its names in both exporters, kind, unit, description and labels.

    ``prometheus`` is the full name as scraped (counters end in ``_total``, durations in
    ``_seconds``); ``unit`` is the OpenTelemetry (UCUM) unit.
    """

    prometheus: str
    """The full Prometheus name, as scraped."""
    otel: str
    """The OpenTelemetry instrument name."""
    kind: Kind
    """Counter, gauge or histogram."""
    unit: str
    """The OpenTelemetry (UCUM) unit, such as ``"s"`` or ``"{connection}"``."""
    description: str
    """One line saying what it measures."""
    labels: tuple[Label, ...]
    """The labels of each series, in the order of ``Sample.labels``."""


def _metric(
    prometheus: str, otel: str, kind: Kind, unit: str, description: str, *labels: Label
) -> Metric:
    return Metric(prometheus, otel, kind, unit, description, (POOL, *labels))


CONNECTIONS = _metric(
    "aioconn_pool_connections",
    "aioconn.pool.connection.count",
    Kind.UP_DOWN,
    "{connection}",
    "Connections that exist, by state: idle, in_use, opening or checking.",
    STATE,
)
MAX = _metric(
    "aioconn_pool_max_connections",
    "aioconn.pool.connection.max",
    Kind.UP_DOWN,
    "{connection}",
    "The pool's max_size: the most connections that may exist at once.",
)
MIN = _metric(
    "aioconn_pool_min_connections",
    "aioconn.pool.connection.min",
    Kind.UP_DOWN,
    "{connection}",
    "The pool's min_size: connections kept open even when idle.",
)
WAITING = _metric(
    "aioconn_pool_waiting",
    "aioconn.pool.pending_requests",
    Kind.UP_DOWN,
    "{request}",
    "Callers queued in acquire, waiting for a connection.",
)
ACQUIRED = _metric(
    "aioconn_pool_acquired_total",
    "aioconn.pool.acquires",
    Kind.COUNTER,
    "{acquire}",
    "Successful acquires.",
)
RELEASED = _metric(
    "aioconn_pool_released_total",
    "aioconn.pool.releases",
    Kind.COUNTER,
    "{release}",
    "Connections given back, kept or discarded.",
)
CREATED = _metric(
    "aioconn_pool_connections_created_total",
    "aioconn.pool.connection.created",
    Kind.COUNTER,
    "{connection}",
    "Connections opened successfully.",
)
CONNECT_FAILURES = _metric(
    "aioconn_pool_connect_failures_total",
    "aioconn.pool.connect_failures",
    Kind.COUNTER,
    "{failure}",
    "Connects that failed (after connect_retry, if any).",
)
TIMEOUTS = _metric(
    "aioconn_pool_timeouts_total",
    "aioconn.pool.connection.timeouts",
    Kind.COUNTER,
    "{timeout}",
    "Acquires that failed with PoolTimeout.",
)
UNREACHABLE = _metric(
    "aioconn_pool_unreachable_seconds",
    "aioconn.pool.unreachable.duration",
    Kind.GAUGE,
    "s",
    "Seconds since connects began failing while the pool backs off; 0 while they succeed.",
)
DISCARDED = _metric(
    "aioconn_pool_discarded_total",
    "aioconn.pool.connection.discarded",
    Kind.COUNTER,
    "{connection}",
    "Connections closed instead of reused, by reason (a field of aioconn.Discards).",
    REASON,
)
ACQUIRE_WAIT = _metric(
    "aioconn_pool_acquire_wait_seconds",
    "aioconn.pool.connection.wait_time",
    Kind.HISTOGRAM,
    "s",
    "How long acquires waited for a connection (0 when one was idle).",
)
HOLD = _metric(
    "aioconn_pool_hold_seconds",
    "aioconn.pool.connection.use_time",
    Kind.HISTOGRAM,
    "s",
    "How long connections were held between acquire and release.",
)
CONNECT_TIME = _metric(
    "aioconn_pool_connect_seconds",
    "aioconn.pool.connection.create_time",
    Kind.HISTOGRAM,
    "s",
    "How long successful connects took (where the pool records it).",
)
ENDPOINT_CONNECTIONS = _metric(
    "aioconn_pool_endpoint_connections",
    "aioconn.pool.endpoint.connection.count",
    Kind.UP_DOWN,
    "{connection}",
    "Connections to one endpoint, by state: idle or in_use.",
    ENDPOINT,
    STATE,
)
ENDPOINT_STATUS = _metric(
    "aioconn_pool_endpoint_state",
    "aioconn.pool.endpoint.state",
    Kind.GAUGE,
    "1",
    "1 for the endpoint's current state (healthy, ejected, half_open, draining), else 0.",
    ENDPOINT,
    ENDPOINT_STATE,
)
ENDPOINT_WEIGHT = _metric(
    "aioconn_pool_endpoint_weight",
    "aioconn.pool.endpoint.weight",
    Kind.GAUGE,
    "1",
    "The endpoint's balancing weight.",
    ENDPOINT,
)
ENDPOINT_CONSECUTIVE_FAILURES = _metric(
    "aioconn_pool_endpoint_consecutive_failures",
    "aioconn.pool.endpoint.consecutive_failures",
    Kind.GAUGE,
    "{failure}",
    "Connect failures to the endpoint since its last success.",
    ENDPOINT,
)
ENDPOINT_CONNECT_FAILURES = _metric(
    "aioconn_pool_endpoint_connect_failures_total",
    "aioconn.pool.endpoint.connect_failures",
    Kind.COUNTER,
    "{failure}",
    "Connects to the endpoint that failed.",
    ENDPOINT,
)
ENDPOINT_EJECTIONS = _metric(
    "aioconn_pool_endpoint_ejections_total",
    "aioconn.pool.endpoint.ejections",
    Kind.COUNTER,
    "{ejection}",
    "Times the endpoint was taken out of rotation.",
    ENDPOINT,
)
ENDPOINT_CONNECT_TIME = _metric(
    "aioconn_pool_endpoint_connect_seconds",
    "aioconn.pool.endpoint.create_time",
    Kind.HISTOGRAM,
    "s",
    "How long successful connects to the endpoint took.",
    ENDPOINT,
)

METRICS: tuple[Metric, ...] = (
    CONNECTIONS,
    MAX,
    MIN,
    WAITING,
    ACQUIRED,
    RELEASED,
    CREATED,
    CONNECT_FAILURES,
    TIMEOUTS,
    UNREACHABLE,
    DISCARDED,
    ACQUIRE_WAIT,
    HOLD,
    CONNECT_TIME,
    ENDPOINT_CONNECTIONS,
    ENDPOINT_STATUS,
    ENDPOINT_WEIGHT,
    ENDPOINT_CONSECUTIVE_FAILURES,
    ENDPOINT_CONNECT_FAILURES,
    ENDPOINT_EJECTIONS,
    ENDPOINT_CONNECT_TIME,
)
"""Every metric the exporters produce, in the order ``samples`` yields them."""


@dataclass(frozen=True, slots=True)
class HistogramValue:
    """A histogram's value: cumulative bucket counts (``counts[i]``: durations ``<= bounds[i]``).

    ``summary`` is the ``Summary`` it was made from (for exporters that record durations).
    """

    bounds: tuple[float, ...]
    """Upper bounds of the buckets, in seconds, ascending."""
    counts: tuple[int, ...]
    """Cumulative counts: ``counts[i]`` durations were at most ``bounds[i]``."""
    count: int
    """All durations recorded."""
    sum: float
    """Their sum, in seconds."""
    summary: Summary
    """The ``aioconn.Summary`` the histogram was made from."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One series' value: ``labels`` holds the values of ``metric.labels``, in that order."""

    metric: Metric
    """Which metric this is a series of."""
    labels: tuple[str, ...]
    """The label values, in the order of ``metric.labels``."""
    value: float | HistogramValue
    """A number for counters and gauges, a ``HistogramValue`` for histograms."""


def samples(
    source: PoolStats | StatsSource, buckets: Sequence[float] = DEFAULT_BUCKETS
) -> list[Sample]:
    """The metrics of one pool, from a ``PoolStats`` snapshot (or a pool: its ``stats()``).

    Every metric of ``METRICS`` appears, in that order, except: the per-endpoint metrics only
    for a pool with endpoints, and a histogram only for a ``Summary`` that carries bucket counts
    (``connect_time`` is ``None`` where the pool does not record it). Every discard reason and
    every endpoint state is listed, at 0 when it never happened, so series exist from the start.

    A pool must be read from the thread that runs its event loop; the exporters see to that.

    Args:
        source: a ``PoolStats`` snapshot, or anything with a ``stats()`` method returning one.
        buckets: upper bounds, in seconds, of the histograms' buckets.

    Raises:
        ValueError: ``buckets`` are not ascending positive seconds.
    """
    bounds = as_bounds(buckets)
    stats = source if isinstance(source, PoolStats) else source.stats()
    name = stats.name
    out = [
        Sample(CONNECTIONS, (name, "idle"), stats.idle),
        Sample(CONNECTIONS, (name, "in_use"), stats.in_use),
        Sample(CONNECTIONS, (name, "opening"), stats.opening),
        Sample(CONNECTIONS, (name, "checking"), stats.checking),
        Sample(MAX, (name,), stats.max_size),
        Sample(MIN, (name,), stats.min_size),
        Sample(WAITING, (name,), stats.waiting),
        Sample(ACQUIRED, (name,), stats.acquired),
        Sample(RELEASED, (name,), stats.released),
        Sample(CREATED, (name,), stats.created),
        Sample(CONNECT_FAILURES, (name,), stats.connect_failures),
        Sample(TIMEOUTS, (name,), stats.timeouts),
        Sample(UNREACHABLE, (name,), stats.unreachable_for or 0.0),
    ]
    out += [
        Sample(DISCARDED, (name, reason.name), getattr(stats.discarded, reason.name))
        for reason in fields(Discards)
    ]
    for metric, summary in (
        (ACQUIRE_WAIT, stats.acquire_wait),
        (HOLD, stats.hold_time),
        (CONNECT_TIME, stats.connect_time),
    ):
        out += _histogram(metric, (name,), summary, bounds)
    out += _endpoint_samples(name, stats.endpoints, bounds)
    return out


def as_bounds(buckets: Sequence[float]) -> tuple[float, ...]:
    """``buckets`` as a tuple of floats, checked: ascending positive seconds, at least one.

    Args:
        buckets: upper bounds in seconds.

    Raises:
        ValueError: they are not.
    """
    bounds = tuple(float(b) for b in buckets)
    if (
        not bounds
        or not all(math.isfinite(b) and b > 0 for b in bounds)
        or any(a >= b for a, b in itertools.pairwise(bounds))
    ):
        raise ValueError(f"buckets must be ascending positive seconds, got {buckets!r}")
    return bounds


def _endpoint_samples(
    name: str, endpoints: tuple[EndpointStats, ...], bounds: tuple[float, ...]
) -> list[Sample]:
    by_metric: dict[Metric, list[Sample]] = {}
    for entry in endpoints:
        labels = (name, entry.endpoint)
        for sample in (
            Sample(ENDPOINT_CONNECTIONS, (*labels, "idle"), entry.idle),
            Sample(ENDPOINT_CONNECTIONS, (*labels, "in_use"), entry.in_use),
            *(
                Sample(ENDPOINT_STATUS, (*labels, state), float(entry.state == state))
                for state in ENDPOINT_STATES
            ),
            Sample(ENDPOINT_WEIGHT, labels, entry.weight),
            Sample(ENDPOINT_CONSECUTIVE_FAILURES, labels, entry.consecutive_failures),
            Sample(ENDPOINT_CONNECT_FAILURES, labels, entry.failures),
            Sample(ENDPOINT_EJECTIONS, labels, entry.ejections),
            *_histogram(ENDPOINT_CONNECT_TIME, labels, entry.connect_time, bounds),
        ):
            by_metric.setdefault(sample.metric, []).append(sample)
    # Grouped by metric, in the table's order: exposition formats want a family's series together.
    return [sample for metric in METRICS for sample in by_metric.get(metric, ())]


def _histogram(
    metric: Metric, labels: tuple[str, ...], summary: Summary | None, bounds: tuple[float, ...]
) -> list[Sample]:
    if summary is None or (summary.count and not summary.buckets):
        return []  # not recorded, or a hand-made Summary without bucket counts
    value = HistogramValue(
        bounds, summary.cumulative(bounds), summary.count, summary.total, summary
    )
    return [Sample(metric, labels, value)]
