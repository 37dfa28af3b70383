"""The metrics mapping: Summary buckets, the table, ``samples()``, reading across threads."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib
import inspect
import re
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

import aioconn.metrics
import aioconn.metrics.otel
import aioconn.metrics.prometheus
from aioconn import Summary
from aioconn.metrics import (
    DEFAULT_BUCKETS,
    METRICS,
    HistogramValue,
    Kind,
    Sample,
    as_bounds,
    samples,
)
from aioconn.metrics._source import PoolReader
from aioconn.stats import PoolStats, SummaryRecorder
from metrics_helpers import (
    BUSY_SCALARS,
    ENDPOINT_SCALARS,
    FixedStats,
    busy_pool,
    endpoint_stats,
    summary_of,
)

# -- Summary: the histogram behind the percentiles ----------------------------------------------


def test_cumulative_counts_durations_under_each_bound() -> None:
    recorder = SummaryRecorder()
    for seconds in (0.0005, 0.003, 0.003, 0.2, 7.0, 100.0):
        recorder.add(seconds)
    summary = recorder.snapshot(zeros=2)  # two fast-path acquires: 0 s each
    assert summary.count == 8
    assert sum(summary.buckets) == 8
    assert summary.total == 0.0005 + 0.003 + 0.003 + 0.2 + 7.0 + 100.0
    assert summary.cumulative((0.001, 0.005, 0.1, 1.0, 10.0, 60.0)) == (3, 5, 5, 6, 7, 7)
    assert summary.cumulative(()) == ()


def test_cumulative_of_an_empty_summary_is_all_zeros() -> None:
    assert Summary().cumulative(DEFAULT_BUCKETS) == (0,) * len(DEFAULT_BUCKETS)
    assert SummaryRecorder().snapshot().cumulative((1.0,)) == (0,)


@pytest.mark.parametrize("bounds", [(0.0,), (-1.0,), (1.0, 1.0), (2.0, 1.0)])
def test_cumulative_wants_ascending_positive_bounds(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="bounds must be ascending positive seconds"):
        summary_of(1.0).cumulative(bounds)


def test_a_duration_is_never_more_than_5_percent_off_its_bucket() -> None:
    for seconds in (1e-5, 0.00099, 0.00101, 0.0049, 0.0051, 0.95, 1.05, 59.0, 61.0):
        below = summary_of(seconds).cumulative((seconds * 1.05,))
        above = summary_of(seconds).cumulative((seconds / 1.05,))
        assert (below, above) == ((1,), (0,)), seconds


def test_increase_lists_what_was_recorded_since_an_earlier_snapshot() -> None:
    recorder = SummaryRecorder()
    recorder.add(0.003)
    first = recorder.snapshot()
    recorder.add(0.003)
    recorder.add(0.2)
    second = recorder.snapshot(zeros=3)
    [(small, one)] = first.increase()
    assert one == 1
    assert abs(small - 0.003) <= 0.003 * 0.05
    assert [n for _, n in second.increase(first)] == [3, 1, 1]
    values = [seconds for seconds, _ in second.increase(first)]
    assert values[:2] == [0.0, small]
    assert abs(values[2] - 0.2) <= 0.2 * 0.05
    assert second.increase(second) == []
    # an "earlier" snapshot with more in a bucket comes from before a reset: start over
    assert first.increase(second) == first.increase()
    # each middle lands in its own bucket again: replaying reproduces the buckets exactly
    replayed = SummaryRecorder()
    for seconds, count in second.increase():
        for _ in range(count):
            replayed.add(seconds)
    assert replayed.snapshot().buckets == second.buckets


def test_the_buckets_stay_out_of_the_repr() -> None:
    assert repr(summary_of(1.0)) == (
        "Summary(count=1, mean=1.0, p50=1.0, p99=1.0, max=1.0, total=1.0)"
    )


# -- the table -----------------------------------------------------------------------------------


def test_metric_names_follow_each_systems_conventions() -> None:
    prometheus = [metric.prometheus for metric in METRICS]
    otel = [metric.otel for metric in METRICS]
    assert len(set(prometheus)) == len(prometheus)
    assert len(set(otel)) == len(otel)
    for metric in METRICS:
        assert re.fullmatch(r"aioconn_pool_[a-z_]+", metric.prometheus), metric
        assert re.fullmatch(r"aioconn\.pool\.[a-z_.]+", metric.otel), metric
        assert metric.prometheus.endswith("_total") == (metric.kind is Kind.COUNTER), metric
        # Seconds end in _seconds: histograms of durations, and a gauge of one.
        assert metric.prometheus.endswith("_seconds") == (metric.unit == "s"), metric
        assert metric.kind is not Kind.HISTOGRAM or metric.unit == "s", metric
        assert metric.labels[0].prometheus == "pool", metric
        assert metric.labels[0].otel == "pool.name", metric
        assert metric.description.endswith("."), metric
        labels = [label.prometheus for label in metric.labels]
        assert len(set(labels)) == len(labels), metric
        assert "le" not in labels, metric


def test_every_metric_has_samples_for_a_pool_with_endpoints() -> None:
    found = samples(endpoint_stats())
    assert {sample.metric for sample in found} == set(METRICS)
    # grouped by metric, in the table's order (exposition formats want families together)
    order = [METRICS.index(sample.metric) for sample in found]
    assert order == sorted(order)
    for sample in found:
        assert len(sample.labels) == len(sample.metric.labels), sample
        assert isinstance(sample.value, HistogramValue) == (sample.metric.kind is Kind.HISTOGRAM), (
            sample
        )


def scalars(found: list[Sample]) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (sample.metric.prometheus, sample.labels[1:]): sample.value
        for sample in found
        if not isinstance(sample.value, HistogramValue)
    }


def histograms(found: list[Sample]) -> dict[tuple[str, tuple[str, ...]], HistogramValue]:
    return {
        (sample.metric.prometheus, sample.labels[1:]): sample.value
        for sample in found
        if isinstance(sample.value, HistogramValue)
    }


async def test_samples_of_a_pool_are_its_stats() -> None:
    async with busy_pool() as busy:
        stats = busy.pool.stats()
        found = samples(busy.pool)
    assert {sample.labels[0] for sample in found} == {"busy"}
    assert scalars(found) == BUSY_SCALARS
    assert samples(stats) == found  # a pool or its stats: the same samples
    assert stats.connect_time is not None
    assert stats.connect_time.count == stats.created
    waits, holds, connects = histograms(found).values()
    assert list(histograms(found)) == [
        ("aioconn_pool_acquire_wait_seconds", ()),
        ("aioconn_pool_hold_seconds", ()),
        ("aioconn_pool_connect_seconds", ()),
    ]
    assert (connects.count, connects.summary) == (stats.created, stats.connect_time)
    assert waits == HistogramValue(
        DEFAULT_BUCKETS,
        stats.acquire_wait.cumulative(DEFAULT_BUCKETS),
        6,
        stats.acquire_wait.total,
        stats.acquire_wait,
    )
    assert (holds.count, holds.sum, holds.summary) == (4, stats.hold_time.total, stats.hold_time)
    assert waits.counts[0] >= 2  # the two fast-path acquires waited 0 s


def test_samples_of_a_pool_with_endpoints() -> None:
    found = samples(endpoint_stats(), buckets=(0.01, 0.1, 1.0))
    assert {k: v for k, v in scalars(found).items() if "endpoint" in k[0]} == ENDPOINT_SCALARS
    assert {key: (h.counts, h.count) for key, h in histograms(found).items()} == {
        ("aioconn_pool_acquire_wait_seconds", ()): ((10, 10, 10), 10),
        ("aioconn_pool_hold_seconds", ()): ((0, 8, 8), 8),
        ("aioconn_pool_connect_seconds", ()): ((1, 2, 3), 3),
        ("aioconn_pool_endpoint_connect_seconds", ("10.0.0.1:5432",)): ((1, 2, 3), 3),
        ("aioconn_pool_endpoint_connect_seconds", ("10.0.0.2:5432",)): ((0, 0, 0), 0),
    }


def test_a_summary_without_buckets_has_no_histogram() -> None:
    stats = endpoint_stats()
    handmade = Summary(count=3, mean=0.1, p50=0.1, p99=0.1, max=0.1)
    found = samples(dataclasses.replace(stats, hold_time=handmade))
    assert ("aioconn_pool_hold_seconds", ()) not in histograms(found)
    assert ("aioconn_pool_acquire_wait_seconds", ()) in histograms(found)


@pytest.mark.parametrize("buckets", [(), (0.0, 1.0), (1.0, 0.5), (float("inf"),)])
def test_buckets_must_be_ascending_positive_seconds(buckets: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="buckets must be ascending positive seconds"):
        as_bounds(buckets)
    with pytest.raises(ValueError, match="buckets must be ascending positive seconds"):
        samples(endpoint_stats(), buckets)


@pytest.mark.parametrize(
    "module", [aioconn.metrics, aioconn.metrics.prometheus, aioconn.metrics.otel]
)
def test_metrics_modules_export_documented_names(module: ModuleType) -> None:
    assert sorted(module.__all__) == sorted(set(module.__all__))
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{module.__name__}.{name} has no docstring"
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "") == module.__name__
    }
    assert public <= set(module.__all__), public - set(module.__all__)


# -- reading a pool from other threads -----------------------------------------------------------


class ThreadNoting(FixedStats):
    """Notes on which thread each ``stats()`` ran."""

    def __init__(self) -> None:
        super().__init__(endpoint_stats())
        self.threads: list[threading.Thread] = []

    def stats(self) -> PoolStats:
        self.threads.append(threading.current_thread())
        return super().stats()


async def test_a_reader_reads_on_the_pools_loop_from_any_thread() -> None:
    source = ThreadNoting()
    reader = PoolReader(source, timeout=5.0)
    assert reader.name == "balanced"
    assert reader.stats() is source.value  # from the loop's own thread: directly
    assert await asyncio.to_thread(reader.stats) is source.value  # from another: handed over
    loop_thread = threading.current_thread()
    assert source.threads == [loop_thread, loop_thread, loop_thread]  # the name, then two reads


async def test_a_blocked_loop_makes_the_reader_give_up(caplog: pytest.LogCaptureFixture) -> None:
    source = ThreadNoting()
    reader = PoolReader(source, timeout=0.05)
    answers: list[PoolStats | None] = []
    done = threading.Event()

    def scrape() -> None:
        answers.append(reader.stats())
        done.set()

    scraper = threading.Thread(target=scrape)
    scraper.start()
    assert done.wait(5.0)  # blocks the loop, on purpose, until the scraper gave up
    scraper.join()
    assert answers == [None]
    logged = [r for r in caplog.records if r.name == "aioconn.metrics"]
    assert [(r.name, r.levelname, r.getMessage()) for r in logged] == [
        (
            "aioconn.metrics",
            "WARNING",
            "balanced: no stats within 0.05 s (its event loop is busy or blocked); skipped",
        )
    ]
    await asyncio.sleep(0)  # the read handed to the loop runs now, and does nothing
    assert len(source.threads) == 1  # only the name, at registration


def test_a_reader_needs_the_pools_loop_running() -> None:
    with pytest.raises(RuntimeError, match="from the event loop it runs on"):
        PoolReader(FixedStats(endpoint_stats()), timeout=1.0)


async def test_a_reader_holds_its_pool_weakly() -> None:
    source = FixedStats(endpoint_stats())
    reader = PoolReader(source, timeout=1.0)
    assert reader.alive
    assert reader.is_for(source)
    del source
    gc.collect()
    assert not reader.alive
    assert reader.stats() is None


async def test_a_reader_whose_loop_is_closed_reads_directly() -> None:
    source = ThreadNoting()

    def register_on_a_loop_of_its_own() -> PoolReader:
        async def register() -> PoolReader:
            return PoolReader(source, timeout=1.0)

        return asyncio.run(register())

    reader = await asyncio.to_thread(register_on_a_loop_of_its_own)
    assert reader.stats() is source.value  # nothing runs on a closed loop: no race to avoid
    assert source.threads[-1] is threading.current_thread()


def test_the_documented_table_is_the_table() -> None:
    page = Path(__file__).resolve().parent.parent / "docs" / "observability.md"
    kinds = {"counter": Kind.COUNTER, "up-down": Kind.UP_DOWN, "gauge": Kind.GAUGE}
    kinds["histogram"] = Kind.HISTOGRAM
    rows = []
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `aioconn_pool_"):
            prometheus, otel, kind, unit, labels = (
                cell.strip().strip("`") for cell in line.strip("|").split("|")[:5]
            )
            names = () if labels == "—" else tuple(n.strip(" `") for n in labels.split(","))
            rows.append((prometheus, otel, kinds[kind], unit, names))
    assert rows == [
        (m.prometheus, m.otel, m.kind, m.unit, tuple(label.prometheus for label in m.labels[1:]))
        for m in METRICS
    ]


@pytest.mark.parametrize(
    ("module", "library", "extra"),
    [
        ("aioconn.metrics.prometheus", "prometheus_client.core", "aioconn[prometheus]"),
        ("aioconn.metrics.otel", "opentelemetry.metrics", "aioconn[otel]"),
    ],
)
def test_an_exporter_without_its_library_names_the_extra(
    module: str, library: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, library, None)  # as if not installed
    with pytest.raises(ImportError, match=re.escape(f"pip install '{extra}'")):
        importlib.import_module(module)
