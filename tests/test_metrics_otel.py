"""The OpenTelemetry exporter, read through the SDK's ``InMemoryMetricReader``."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
    Sum,
)

from aioconn import Pool
from aioconn.metrics import DEFAULT_BUCKETS, METRICS, Kind
from aioconn.metrics.otel import PoolInstrumentation, instrument
from aioconn.stats import PoolStats, Summary
from gated import GatedConnector
from metrics_helpers import (
    BUSY_SCALARS,
    ENDPOINT_SCALARS,
    FixedStats,
    busy_pool,
    endpoint_stats,
)

Attributes = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Point:
    """One histogram data point, as compared in these tests."""

    count: int
    sum: float
    bucket_counts: tuple[int, ...]
    bounds: tuple[float, ...]


@dataclass
class Collected:
    """One collection: number points and histogram points by (metric, attributes), and kinds."""

    numbers: dict[tuple[str, Attributes], float]
    histograms: dict[tuple[str, Attributes], Point]
    kinds: dict[str, str]
    units: dict[str, str | None]


@dataclass
class SDK:
    provider: MeterProvider
    reader: InMemoryMetricReader

    def collect(self) -> Collected:
        return collect(self.reader)


@pytest.fixture
def sdk() -> Iterator[SDK]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        yield SDK(provider, reader)
    finally:
        provider.shutdown()


def collect(reader: InMemoryMetricReader) -> Collected:
    """One collection by ``reader``, flattened."""
    data = reader.get_metrics_data()
    out = Collected({}, {}, {}, {})
    if data is None:
        return out
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "aioconn"
            for metric in scope.metrics:
                out.units[metric.name] = metric.unit
                if isinstance(metric.data, Sum):
                    monotonic = metric.data.is_monotonic
                    out.kinds[metric.name] = "counter" if monotonic else "up_down_counter"
                elif isinstance(metric.data, Gauge):
                    out.kinds[metric.name] = "gauge"
                elif isinstance(metric.data, Histogram):
                    out.kinds[metric.name] = "histogram"
                for point in metric.data.data_points:
                    attributes = point.attributes or {}
                    key = (metric.name, tuple(sorted((k, str(v)) for k, v in attributes.items())))
                    if isinstance(point, NumberDataPoint):
                        out.numbers[key] = point.value
                    elif isinstance(point, HistogramDataPoint):
                        out.histograms[key] = Point(
                            point.count,
                            point.sum,
                            tuple(point.bucket_counts),
                            tuple(point.explicit_bounds),
                        )
    return out


def otel_numbers(
    scalars: dict[tuple[str, tuple[str, ...]], float], pool: str
) -> dict[tuple[str, Attributes], float]:
    """Expected series, given by Prometheus name and label values, under their OTel names."""
    out: dict[tuple[str, Attributes], float] = {}
    for (name, values), value in scalars.items():
        [metric] = [m for m in METRICS if m.prometheus == name]
        attributes = dict(
            zip((label.otel for label in metric.labels), (pool, *values), strict=True)
        )
        out[(metric.otel, tuple(sorted(attributes.items())))] = value
    return out


def replayed(summary: Summary, since: Summary | None = None) -> Point:
    """The point a histogram shows after the durations of ``summary`` were recorded into it."""
    cumulative = summary.cumulative(DEFAULT_BUCKETS)
    per_bucket = [b - a for a, b in zip((0, *cumulative), cumulative, strict=False)]
    total = 0.0
    for seconds, count in summary.increase(since):
        for _ in range(count):
            total += seconds
    return Point(
        summary.count,
        total,
        (*per_bucket, summary.count - cumulative[-1]),
        DEFAULT_BUCKETS,
    )


KIND_NAMES = {
    Kind.COUNTER: "counter",
    Kind.UP_DOWN: "up_down_counter",
    Kind.GAUGE: "gauge",
    Kind.HISTOGRAM: "histogram",
}
POOL_METRICS = [m for m in METRICS if "endpoint" not in m.otel]


async def test_a_collection_shows_exactly_what_the_pool_did(sdk: SDK) -> None:
    async with busy_pool("orders") as busy:
        with instrument(busy.pool, sdk.provider):
            # from another thread, as a PeriodicExportingMetricReader collects
            collected = await asyncio.to_thread(sdk.collect)
            stats = busy.pool.stats()
    assert stats.connect_time is not None
    assert collected.numbers == otel_numbers(BUSY_SCALARS, "orders")
    pool = (("pool.name", "orders"),)
    assert collected.histograms == {
        ("aioconn.pool.connection.wait_time", pool): replayed(stats.acquire_wait),
        ("aioconn.pool.connection.use_time", pool): replayed(stats.hold_time),
        ("aioconn.pool.connection.create_time", pool): replayed(stats.connect_time),
    }
    assert collected.kinds == {m.otel: KIND_NAMES[m.kind] for m in POOL_METRICS}
    assert collected.units == {m.otel: m.unit for m in POOL_METRICS}
    # a duration is recorded at the middle of its 5 %-wide bucket: the sum is that close
    hold = collected.histograms[("aioconn.pool.connection.use_time", pool)]
    assert abs(hold.sum - stats.hold_time.total) <= 0.05 * stats.hold_time.total
    assert collected.histograms[("aioconn.pool.connection.wait_time", pool)].count == 6


async def test_each_collection_records_only_the_new_durations(sdk: SDK) -> None:
    async with Pool(GatedConnector(), name="steady") as pool:
        with instrument(pool, sdk.provider):
            for _ in range(2):
                async with pool.acquire():
                    pass
            first = sdk.collect()
            before = pool.stats()
            for _ in range(3):
                async with pool.acquire():
                    pass
            second = sdk.collect()
            after = pool.stats()
    key = ("aioconn.pool.connection.use_time", (("pool.name", "steady"),))
    assert first.histograms[key] == replayed(before.hold_time)
    then, now = second.histograms[key], replayed(after.hold_time)
    assert (then.count, then.bucket_counts) == (5, now.bucket_counts)
    assert then.sum == pytest.approx(now.sum, rel=1e-12)  # added in two parts, not in one
    acquires = ("aioconn.pool.acquires", (("pool.name", "steady"),))
    assert (first.numbers[acquires], second.numbers[acquires]) == (2, 5)


async def test_two_readers_each_see_every_duration_once() -> None:
    one, two = InMemoryMetricReader(), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[one, two])
    try:
        async with Pool(GatedConnector(), name="shared") as pool:
            with instrument(pool, provider):
                for _ in range(4):
                    async with pool.acquire():
                        pass
                seen = [collect(one), collect(two), collect(one)]
                expected = replayed(pool.stats().hold_time)
    finally:
        provider.shutdown()
    key = ("aioconn.pool.connection.use_time", (("pool.name", "shared"),))
    assert [collected.histograms[key] for collected in seen] == [expected] * 3


async def test_closing_the_handle_stops_reporting_the_pool(sdk: SDK) -> None:
    async with Pool(GatedConnector(), name="brief") as pool:
        handle = instrument(pool, sdk.provider)
        assert repr(handle) == "<aioconn.metrics.otel.PoolInstrumentation 'brief' reporting>"
        with pytest.raises(ValueError, match="a pool named 'brief' reports through this provider"):
            instrument(pool, sdk.provider)
        assert pool_names(sdk.collect()) == {"brief"}
        handle.close()
        handle.close()  # again: nothing
        assert handle.closed
        assert repr(handle) == "<aioconn.metrics.otel.PoolInstrumentation 'brief' closed>"
        assert pool_names(sdk.collect()) == set()
        with instrument(pool, sdk.provider) as again:  # the name is free again
            assert pool_names(sdk.collect()) == {"brief"}
        assert again.closed


async def test_instrumenting_the_same_pool_again_records_nothing_twice(sdk: SDK) -> None:
    key = ("aioconn.pool.connection.use_time", (("pool.name", "again"),))
    async with Pool(GatedConnector(), name="again") as pool:
        with instrument(pool, sdk.provider):
            for _ in range(2):
                async with pool.acquire():
                    pass
            assert sdk.collect().histograms[key].count == 2
        async with pool.acquire():
            pass
        with instrument(pool, sdk.provider):
            assert sdk.collect().histograms[key].count == 3
    # a new pool of the same name starts from nothing: its durations are all new
    async with Pool(GatedConnector(), name="again") as successor:
        with instrument(successor, sdk.provider):
            async with successor.acquire():
                pass
            assert sdk.collect().histograms[key].count == 4


class Instrumenting(FixedStats):
    """Instruments another pool from inside its own ``stats()``, which runs on the event loop."""

    def __init__(self, provider: MeterProvider) -> None:
        super().__init__(endpoint_stats("first"))
        self.provider = provider
        self.other = FixedStats(endpoint_stats("second"))
        self.handles: list[PoolInstrumentation] = []
        self.armed = False

    def stats(self) -> PoolStats:
        if self.armed and not self.handles:
            self.handles.append(instrument(self.other, self.provider))
        return super().stats()


async def test_the_loop_may_instrument_pools_while_a_collection_waits_for_it(sdk: SDK) -> None:
    source = Instrumenting(sdk.provider)
    with instrument(source, sdk.provider, timeout=30.0):
        source.armed = True
        # the collection (on another thread) waits for this loop to read `source`; the read
        # instruments another pool, which must not wait for the collection in turn
        collected = await asyncio.to_thread(sdk.collect)
        assert pool_names(collected) == {"first"}
        assert pool_names(sdk.collect()) == {"first", "second"}
        [handle] = source.handles
        handle.close()


def pool_names(collected: Collected) -> set[str]:
    """The pools with observable series in a collection."""
    return {
        value
        for _, attributes in collected.numbers
        for key, value in attributes
        if key == "pool.name"
    }


async def test_a_garbage_collected_pool_stops_reporting(sdk: SDK) -> None:
    source = FixedStats(endpoint_stats("fleeting"))
    handle = instrument(source, sdk.provider)
    assert pool_names(sdk.collect()) == {"fleeting"}
    del source
    gc.collect()
    assert pool_names(sdk.collect()) == set()
    handle.close()


async def test_per_endpoint_series_carry_the_endpoint(sdk: SDK) -> None:
    source = FixedStats(endpoint_stats("balanced"))
    with instrument(source, sdk.provider):
        collected = sdk.collect()
    endpoint_numbers = {k: v for k, v in collected.numbers.items() if ".endpoint." in k[0]}
    assert endpoint_numbers == otel_numbers(ENDPOINT_SCALARS, "balanced")
    stats = source.value
    connects = replayed(stats.endpoints[0].connect_time)
    assert connects.bucket_counts == (0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)
    assert {k: v for k, v in collected.histograms.items() if "create_time" in k[0]} == {
        ("aioconn.pool.connection.create_time", (("pool.name", "balanced"),)): connects,
        (
            "aioconn.pool.endpoint.create_time",
            (("pool.endpoint", "10.0.0.1:5432"), ("pool.name", "balanced")),
        ): connects,
        # the other endpoint never connected: nothing recorded, no point
    }


def test_instrumenting_needs_the_pools_event_loop(sdk: SDK) -> None:
    with pytest.raises(RuntimeError, match="from the event loop it runs on"):
        instrument(FixedStats(endpoint_stats()), sdk.provider)


async def test_the_global_meter_provider_is_the_default() -> None:
    source = FixedStats(endpoint_stats("global-default"))
    with instrument(source) as handle:
        assert not handle.closed
