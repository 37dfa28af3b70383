"""The Prometheus exporter, scraped over HTTP from a real ``prometheus_client`` server."""

from __future__ import annotations

import asyncio
import gc
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import DuplicateTimeseries

from aioconn.metrics import DEFAULT_BUCKETS, METRICS, Kind
from aioconn.metrics.prometheus import PoolCollector
from aioconn.stats import Summary
from metrics_helpers import (
    BUSY_SCALARS,
    ENDPOINT_SCALARS,
    FixedStats,
    busy_pool,
    endpoint_stats,
    summary_of,
)

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class MetricsServer:
    """``prometheus_client.start_http_server`` on 127.0.0.1 and a free port, over one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._server, self._thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.url = f"http://127.0.0.1:{self._server.server_port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    async def scrape(self) -> tuple[Series, dict[str, str]]:
        """The series of one scrape, and each family's type (from a thread, like Prometheus)."""
        text = await asyncio.to_thread(self._get)
        return parse(text)

    def _get(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body: bytes = response.read()
        return body.decode()


def parse(text: str) -> tuple[Series, dict[str, str]]:
    series: Series = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in series, f"duplicate series {key}"
            series[key] = sample.value
    return series, types


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    metrics_server = MetricsServer()
    try:
        yield metrics_server
    finally:
        metrics_server.close()


def expected_scalars(pool: str) -> Series:
    out: Series = {}
    for (name, values), value in BUSY_SCALARS.items():
        [metric] = [m for m in METRICS if m.prometheus == name]
        labels = {"pool": pool} | dict(
            zip((label.prometheus for label in metric.labels[1:]), values, strict=True)
        )
        out[(name, tuple(sorted(labels.items())))] = value
    return out


def histogram_series(
    name: str, labels: dict[str, str], summary: Summary, bounds: tuple[float, ...]
) -> Series:
    """The ``_bucket``/``_count``/``_sum`` series a histogram of ``summary`` must show."""
    out: Series = {}
    for bound, count in zip(bounds, summary.cumulative(bounds), strict=True):
        out[(f"{name}_bucket", tuple(sorted((labels | {"le": repr(bound)}).items())))] = count
    out[(f"{name}_bucket", tuple(sorted((labels | {"le": "+Inf"}).items())))] = summary.count
    out[(f"{name}_count", tuple(sorted(labels.items())))] = summary.count
    out[(f"{name}_sum", tuple(sorted(labels.items())))] = summary.total
    return out


async def test_a_scrape_shows_exactly_what_the_pool_did(server: MetricsServer) -> None:
    collector = PoolCollector()
    server.registry.register(collector)
    async with busy_pool("orders") as busy:
        collector.add(busy.pool)
        series, types = await server.scrape()
        stats = busy.pool.stats()  # nothing ran on the pool during the scrape
    assert (stats.acquired, stats.released, stats.acquire_wait.count) == (6, 4, 6)
    pool = {"pool": "orders"}
    expected = expected_scalars("orders")
    expected |= histogram_series(
        "aioconn_pool_acquire_wait_seconds", pool, stats.acquire_wait, DEFAULT_BUCKETS
    )
    expected |= histogram_series(
        "aioconn_pool_hold_seconds", pool, stats.hold_time, DEFAULT_BUCKETS
    )
    assert stats.connect_time is not None
    expected |= histogram_series(
        "aioconn_pool_connect_seconds", pool, stats.connect_time, DEFAULT_BUCKETS
    )
    assert series == expected
    assert types == {
        metric.prometheus.removesuffix("_total"): {
            Kind.COUNTER: "counter",
            Kind.UP_DOWN: "gauge",
            Kind.GAUGE: "gauge",
            Kind.HISTOGRAM: "histogram",
        }[metric.kind]
        for metric in METRICS
        if "endpoint" not in metric.prometheus
    }
    # the two fast-path acquires waited 0 s: counted in the smallest bucket
    assert (
        series[("aioconn_pool_acquire_wait_seconds_bucket", (("le", "0.001"), *pool.items()))] >= 2
    )


async def test_per_endpoint_series_and_connect_times(server: MetricsServer) -> None:
    source = FixedStats(endpoint_stats("balanced"))
    server.registry.register(PoolCollector(source, buckets=(0.01, 0.1, 1.0)))
    series, _ = await server.scrape()
    endpoint_series = {key: value for key, value in series.items() if "endpoint" in key[0]}
    expected: Series = {}
    for (name, values), value in ENDPOINT_SCALARS.items():
        [metric] = [m for m in METRICS if m.prometheus == name]
        labels = {"pool": "balanced"} | dict(
            zip((label.prometheus for label in metric.labels[1:]), values, strict=True)
        )
        expected[(name, tuple(sorted(labels.items())))] = value
    for endpoint, counts, total in (
        ("10.0.0.1:5432", (1, 2, 3, 3), 0.003 + 0.02 + 0.2),
        ("10.0.0.2:5432", (0, 0, 0, 0), 0.0),
    ):
        labels = {"pool": "balanced", "endpoint": endpoint}
        for le, count in zip(("0.01", "0.1", "1.0", "+Inf"), counts, strict=True):
            bucket = tuple(sorted((labels | {"le": le}).items()))
            expected[("aioconn_pool_endpoint_connect_seconds_bucket", bucket)] = count
        expected[("aioconn_pool_endpoint_connect_seconds_count", tuple(sorted(labels.items())))] = (
            counts[-1]
        )
        expected[("aioconn_pool_endpoint_connect_seconds_sum", tuple(sorted(labels.items())))] = (
            total
        )
    assert endpoint_series == expected
    pool = (("pool", "balanced"),)
    assert [
        series[("aioconn_pool_connect_seconds_bucket", (("le", le), *pool))]
        for le in ("0.01", "0.1", "1.0", "+Inf")
    ] == [1, 2, 3, 3]
    assert series[("aioconn_pool_connect_seconds_sum", pool)] == 0.003 + 0.02 + 0.2


async def test_pools_come_and_go(server: MetricsServer) -> None:
    collector = PoolCollector()
    server.registry.register(collector)
    first = FixedStats(endpoint_stats("first"))
    second = FixedStats(endpoint_stats("second"))
    collector.add(first)
    collector.add(second)
    collector.add(first)  # again: no effect
    assert await pools_scraped(server) == {"first", "second"}
    collector.remove(first)
    collector.remove(first)  # again: no error
    assert await pools_scraped(server) == {"second"}
    with pytest.raises(ValueError, match="a pool named 'second' is exported already"):
        collector.add(FixedStats(endpoint_stats("second")))
    del second
    gc.collect()  # a pool that is gone drops out of the scrape
    assert await pools_scraped(server) == set()
    series, types = await server.scrape()
    assert (series, types) == ({}, {})  # no pool, no families (not even empty ones)


async def pools_scraped(server: MetricsServer) -> set[str]:
    series, _ = await server.scrape()
    return {value for _, labels in series for key, value in labels if key == "pool"}


def test_describe_names_every_family_so_clashes_are_caught() -> None:
    registry = CollectorRegistry()
    registry.register(PoolCollector())
    with pytest.raises(DuplicateTimeseries):
        registry.register(PoolCollector())
    assert generate_latest(registry) == b""  # describing read no pool and produced nothing


def test_adding_a_pool_needs_its_event_loop() -> None:
    with pytest.raises(RuntimeError, match="from the event loop it runs on"):
        PoolCollector(FixedStats(endpoint_stats()))


def test_buckets_are_checked() -> None:
    with pytest.raises(ValueError, match="buckets must be ascending positive seconds"):
        PoolCollector(buckets=(1.0, 0.5))


async def test_generate_latest_from_the_loop_thread_reads_directly() -> None:
    registry = CollectorRegistry()
    source = FixedStats(endpoint_stats("inline"))  # held here: the collector holds it weakly
    registry.register(PoolCollector(source, buckets=(1.0,)))
    series, _ = parse(generate_latest(registry).decode())
    assert series[("aioconn_pool_hold_seconds_bucket", (("le", "1.0"), ("pool", "inline")))] == 8
    assert (
        series[("aioconn_pool_hold_seconds_sum", (("pool", "inline"),))]
        == summary_of(*[0.03] * 8).total
    )
