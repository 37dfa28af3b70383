"""Prometheus exporter (``aioconn[prometheus]``): a ``prometheus_client`` collector for pools.

Register one ``PoolCollector`` and add pools to it::

    collector = PoolCollector()
    prometheus_client.REGISTRY.register(collector)
    async with Pool(...) as pool:
        collector.add(pool)  # from the pool's event loop
        ...

Each scrape reads ``pool.stats()`` on the pool's event loop (waiting for it when the scrape runs
on another thread, as with ``prometheus_client.start_http_server``) and turns it into the
metrics of ``aioconn.metrics.METRICS``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError as exc:
    raise ImportError(
        "aioconn.metrics.prometheus needs prometheus-client: pip install 'aioconn[prometheus]'"
    ) from exc

from . import (
    DEFAULT_BUCKETS,
    METRICS,
    HistogramValue,
    Kind,
    Sample,
    StatsSource,
    as_bounds,
    samples,
)
from . import Metric as MetricDef
from ._source import PoolReader

__all__ = ["PoolCollector"]


class PoolCollector:
    """A ``prometheus_client`` collector exporting the stats of the pools added to it.

    Pools are held weakly: one garbage-collected disappears from the scrape. A closed pool
    still exports its final counters until ``remove``\\ d.

    Args:
        pools: pools to add at once (as ``add`` would; so from their event loop).
        buckets: upper bounds, in seconds, of the histograms' buckets.
        timeout: how long a scrape waits for a busy event loop before it skips that pool.

    Raises:
        ValueError: ``buckets`` are not ascending positive seconds.

    Example::

        registry = prometheus_client.CollectorRegistry()
        registry.register(PoolCollector(pool))
        text = prometheus_client.generate_latest(registry)
    """

    def __init__(
        self,
        *pools: StatsSource,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        timeout: float = 1.0,
    ) -> None:
        self._buckets = as_bounds(buckets)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._readers: list[PoolReader] = []
        for pool in pools:
            self.add(pool)

    def add(self, pool: StatsSource) -> None:
        """Export ``pool``'s stats; call it from the event loop the pool runs on.

        Args:
            pool: an ``aioconn.Pool``, or anything with a ``stats()`` method and a ``name``.

        Raises:
            RuntimeError: called outside a running event loop.
            ValueError: a pool of the same name is exported already (its series would clash).
        """
        reader = PoolReader(pool, self._timeout)
        with self._lock:
            self._readers = [r for r in self._readers if r.alive]
            if any(r.is_for(pool) for r in self._readers):
                return
            if any(r.name == reader.name for r in self._readers):
                raise ValueError(f"a pool named {reader.name!r} is exported already")
            self._readers.append(reader)

    def remove(self, pool: StatsSource) -> None:
        """Stop exporting ``pool`` (no error if it was not exported).

        Args:
            pool: a pool given to ``add`` before.
        """
        with self._lock:
            self._readers = [r for r in self._readers if r.alive and not r.is_for(pool)]

    def describe(self) -> Iterator[Metric]:
        """Every family this collector may produce, without reading a pool (for name checks)."""
        for metric in METRICS:
            yield _family(metric)

    def collect(self) -> Iterator[Metric]:
        """Read every pool and yield one family per metric that has series."""
        with self._lock:
            readers = list(self._readers)
        by_metric: dict[MetricDef, list[Sample]] = {}
        for reader in readers:
            stats = reader.stats()
            if stats is None:
                continue
            for sample in samples(stats, self._buckets):
                by_metric.setdefault(sample.metric, []).append(sample)
        for metric in METRICS:
            found = by_metric.get(metric)
            if not found:
                continue
            family = _family(metric)
            for sample in found:
                _add(family, sample)
            yield family


def _family(metric: MetricDef) -> Metric:
    labels = [label.prometheus for label in metric.labels]
    if metric.kind is Kind.COUNTER:
        return CounterMetricFamily(metric.prometheus, metric.description, labels=labels)
    if metric.kind is Kind.HISTOGRAM:
        return HistogramMetricFamily(
            metric.prometheus, metric.description, labels=labels, unit="seconds"
        )
    return GaugeMetricFamily(metric.prometheus, metric.description, labels=labels)


def _add(family: Metric, sample: Sample) -> None:
    labels = list(sample.labels)
    value = sample.value
    if isinstance(value, HistogramValue):
        assert isinstance(family, HistogramMetricFamily)
        buckets = [
            (repr(bound), float(count))  # 0.005 -> "0.005", as clients write `le`
            for bound, count in zip(value.bounds, value.counts, strict=True)
        ]
        buckets.append(("+Inf", float(value.count)))
        family.add_metric(labels, buckets, value.sum)
    else:
        assert isinstance(family, CounterMetricFamily | GaugeMetricFamily)
        family.add_metric(labels, float(value))
