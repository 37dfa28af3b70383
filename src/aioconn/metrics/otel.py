"""OpenTelemetry exporter (``aioconn[otel]``): a pool's stats as instruments of a ``Meter``.

``instrument(pool)`` reports the metrics of ``aioconn.metrics.METRICS`` under their ``otel``
names (``aioconn.pool.connection.count``, ``aioconn.pool.connection.wait_time``, ...), with the
attribute ``pool.name``. Counts and counters are observable instruments, read when the SDK
collects. Durations are ``Histogram`` instruments; the OpenTelemetry API has no observable
histogram and the pool reports no per-acquire event, so at each collection the durations recorded
since the previous one are recorded into them from the pool's own histogram (one ``record`` per
acquire, release or connect, at the middle of its 5 %-wide log bucket): counts exact, sums to
within 5 %.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Self

try:
    from opentelemetry.metrics import (
        CallbackOptions,
        Histogram,
        Meter,
        MeterProvider,
        Observation,
        get_meter_provider,
    )
except ImportError as exc:
    raise ImportError(
        "aioconn.metrics.otel needs opentelemetry-api: pip install 'aioconn[otel]'"
    ) from exc

from .. import __version__
from . import (
    DEFAULT_BUCKETS,
    METRICS,
    HistogramValue,
    Kind,
    Metric,
    Sample,
    StatsSource,
    samples,
)
from ._source import PoolReader

__all__ = ["PoolInstrumentation", "instrument"]


def instrument(
    pool: StatsSource, meter_provider: MeterProvider | None = None, *, timeout: float = 1.0
) -> PoolInstrumentation:
    """Report ``pool``'s stats through ``meter_provider`` (default: the global one).

    Call it from the event loop the pool runs on. The instruments are created once per meter
    provider (meter ``aioconn``) and shared by every pool instrumented through it; each pool's
    series carry its ``pool.name``. Histograms advise ``DEFAULT_BUCKETS`` as bucket boundaries
    (an SDK ``View`` can choose others).

    Args:
        pool: an ``aioconn.Pool`` (held weakly: a garbage-collected pool stops reporting).
        meter_provider: where to create the instruments.
        timeout: how long a collection on another thread waits for the pool's busy event loop
            before it skips the pool.

    Returns:
        A handle whose ``close()`` stops reporting this pool.

    Raises:
        RuntimeError: called outside a running event loop.
        ValueError: a pool of the same name reports through this provider already.

    Example::

        with instrument(pool, meter_provider):
            ...  # collections see the pool's metrics
    """
    provider = meter_provider if meter_provider is not None else get_meter_provider()
    reader = PoolReader(pool, timeout)
    with _instruments_lock:
        instruments = _instruments.get(provider)
        if instruments is None:
            instruments = _Instruments(provider.get_meter("aioconn", __version__))
            _instruments[provider] = instruments
    instruments.add(reader)
    return PoolInstrumentation(instruments, reader)


class PoolInstrumentation:
    """The handle ``instrument`` returns: ``close()`` (idempotent) stops reporting the pool.

    OpenTelemetry cannot delete instruments: after ``close()`` they stay, without this pool's
    series (an SDK reader with cumulative temporality keeps the histograms' last points).
    Usable as a context manager that closes it.

    Args:
        instruments: the meter provider's shared instruments (``instrument`` passes them).
        reader: reads the pool's stats from its event loop (``instrument`` makes it).
    """

    __slots__ = ("_instruments", "_reader")

    def __init__(self, instruments: _Instruments, reader: PoolReader) -> None:
        self._instruments: _Instruments | None = instruments
        self._reader = reader

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._instruments is None

    def close(self) -> None:
        """Stop reporting the pool (its later collections omit it)."""
        if self._instruments is not None:
            self._instruments.remove(self._reader)
            self._instruments = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "reporting"
        return f"<aioconn.metrics.otel.PoolInstrumentation {self._reader.name!r} {state}>"


class _Instruments:
    """The instruments of one meter, and the pools that report through them.

    An SDK collection runs every observable instrument's callback once. The first callback of a
    collection (one whose instrument already saw the current snapshot) reads every pool once, and
    records the durations since the last read into the histograms; the other callbacks report
    from that same snapshot, so one collection is consistent across metrics.
    """

    def __init__(self, meter: Meter) -> None:
        # Two locks: a collection holds _collecting while it waits for pools' event loops, and
        # those loops may call add()/remove() meanwhile, which only need the short-lived _lock.
        self._collecting = threading.Lock()
        self._lock = threading.Lock()
        self._readers: list[PoolReader] = []
        self._histograms: dict[Metric, Histogram] = {}
        self._snapshot: dict[PoolReader, dict[Metric, list[Sample]]] = {}
        self._seen = {metric for metric in METRICS if metric.kind is not Kind.HISTOGRAM}
        # Per histogram series, the last value recorded and whose it was: the next read records
        # only the rest. Kept after remove(), so that instrumenting the same pool again does not
        # record its past twice (the SDK keeps the series).
        self._recorded: dict[tuple[Metric, tuple[str, ...]], tuple[PoolReader, HistogramValue]] = {}
        for metric in METRICS:
            if metric.kind is Kind.HISTOGRAM:
                self._histograms[metric] = meter.create_histogram(
                    metric.otel,
                    unit=metric.unit,
                    description=metric.description,
                    explicit_bucket_boundaries_advisory=DEFAULT_BUCKETS,
                )
                continue
            create = {
                Kind.COUNTER: meter.create_observable_counter,
                Kind.UP_DOWN: meter.create_observable_up_down_counter,
                Kind.GAUGE: meter.create_observable_gauge,
            }[metric.kind]
            create(
                metric.otel,
                callbacks=[self._callback(metric)],
                unit=metric.unit,
                description=metric.description,
            )

    def add(self, reader: PoolReader) -> None:
        with self._lock:
            self._readers = [r for r in self._readers if r.alive]
            if any(r.name == reader.name for r in self._readers):
                raise ValueError(f"a pool named {reader.name!r} reports through this provider")
            self._readers.append(reader)

    def remove(self, reader: PoolReader) -> None:
        with self._lock:
            self._readers = [r for r in self._readers if r is not reader]

    def _callback(self, metric: Metric) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return self._observe(metric)

        return observe

    def _observe(self, metric: Metric) -> list[Observation]:
        with self._collecting:
            if metric in self._seen:
                self._read()
            self._seen.add(metric)
            with self._lock:
                current = [r for r in self._readers if r in self._snapshot]
            return [
                Observation(sample.value, _attributes(sample))
                for reader in current
                for sample in self._snapshot[reader].get(metric, ())
                if not isinstance(sample.value, HistogramValue)  # those were recorded
            ]

    def _read(self) -> None:
        """Read every pool; record the durations each histogram gained since the last read."""
        with self._lock:
            self._readers = readers = [r for r in self._readers if r.alive]
        self._snapshot = {}
        self._seen = set()
        for reader in readers:
            stats = reader.stats()  # may wait for the pool's event loop
            if stats is None:  # gone, or its loop did not answer: no series this time
                continue
            series = self._snapshot[reader] = {}
            for sample in samples(stats):
                if isinstance(sample.value, HistogramValue):
                    self._record(reader, sample, sample.value)
                else:
                    series.setdefault(sample.metric, []).append(sample)

    def _record(self, reader: PoolReader, sample: Sample, value: HistogramValue) -> None:
        key = (sample.metric, sample.labels)
        previous = self._recorded.get(key)
        since = None
        if previous is not None and previous[0].same_pool(reader):
            since = previous[1].summary
        attributes = _attributes(sample)
        histogram = self._histograms[sample.metric]
        for seconds, count in value.summary.increase(since):
            for _ in range(count):
                histogram.record(seconds, attributes)
        self._recorded[key] = (reader, value)


def _attributes(sample: Sample) -> dict[str, str]:
    names = [label.otel for label in sample.metric.labels]
    return dict(zip(names, sample.labels, strict=True))


_instruments: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = weakref.WeakKeyDictionary()
_instruments_lock = threading.Lock()
