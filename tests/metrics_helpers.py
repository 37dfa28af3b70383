"""Shared by the metrics tests: a pool driven into a known state, and fixed stats with endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from aioconn import ConnectError, Discards, EndpointStats, Pool, PoolStats, PoolTimeout, Summary
from aioconn.stats import SummaryRecorder
from gated import FakeResource, GatedConnector
from pool_helpers import until_waiting

BUSY_SCALARS: dict[tuple[str, tuple[str, ...]], float] = {
    ("aioconn_pool_connections", ("idle",)): 0,
    ("aioconn_pool_connections", ("in_use",)): 2,
    ("aioconn_pool_connections", ("opening",)): 0,
    ("aioconn_pool_connections", ("checking",)): 0,
    ("aioconn_pool_max_connections", ()): 2,
    ("aioconn_pool_min_connections", ()): 0,
    ("aioconn_pool_waiting", ()): 1,
    ("aioconn_pool_acquired_total", ()): 6,
    ("aioconn_pool_released_total", ()): 4,
    ("aioconn_pool_connections_created_total", ()): 3,
    ("aioconn_pool_connect_failures_total", ()): 1,
    ("aioconn_pool_timeouts_total", ()): 1,
    ("aioconn_pool_unreachable_seconds", ()): 0,  # one failed connect is no outage
    **{
        ("aioconn_pool_discarded_total", (reason,)): float(reason == "error")
        for reason in Discards.__dataclass_fields__
    },
}
"""What ``busy_pool`` leaves, by Prometheus name and the labels after ``pool``."""


@dataclass
class Busy:
    pool: Pool[FakeResource]
    connector: GatedConnector
    held: list[FakeResource]
    waiter: asyncio.Task[FakeResource]


@contextlib.asynccontextmanager
async def busy_pool(name: str = "busy") -> AsyncIterator[Busy]:
    """A pool (max_size=2) with exactly the state and counters of ``BUSY_SCALARS``.

    Six acquires (the 2nd and 3rd on the fast path), four releases (one discarded by an
    ``OSError``), three connections opened and one connect failed, one acquire timed out; two
    connections are held and one caller waits. Everything is given back and closed on exit.
    """
    connector = GatedConnector()
    async with Pool(connector, max_size=2, name=name) as pool:
        for _ in range(3):
            async with pool.acquire():
                pass
        with pytest.raises(OSError, match="dropped"):
            async with pool.acquire():
                raise OSError("dropped")
        connector.connect_phase.fail_next()
        with pytest.raises(ConnectError):
            await pool.get()
        held = [await pool.get(), await pool.get()]
        with pytest.raises(PoolTimeout):
            await pool.get(timeout=0.01)
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        try:
            yield Busy(pool, connector, held, waiter)
        finally:
            await pool.put(held[0])
            await pool.put(await waiter)
            await pool.put(held[1])


def summary_of(*durations: float) -> Summary:
    """The summary of a recorder fed ``durations``."""
    recorder = SummaryRecorder()
    for seconds in durations:
        recorder.add(seconds)
    return recorder.snapshot()


class FixedStats:
    """A ``StatsSource`` that returns the stats it is given (a pool with endpoints, say)."""

    def __init__(self, stats: PoolStats) -> None:
        self.value = stats

    def stats(self) -> PoolStats:
        return self.value


def endpoint_stats(name: str = "balanced") -> PoolStats:
    """A pool over two endpoints, one healthy and one ejected, that records connect times."""
    return PoolStats(
        name=name,
        size=3,
        idle=1,
        in_use=2,
        opening=0,
        checking=0,
        waiting=0,
        min_size=1,
        max_size=4,
        acquired=10,
        released=8,
        created=3,
        connect_failures=5,
        timeouts=0,
        discarded=Discards(),
        acquire_wait=summary_of(*[0.0] * 10),
        hold_time=summary_of(*[0.03] * 8),
        endpoints=(
            EndpointStats(
                endpoint="10.0.0.1:5432",
                state="healthy",
                weight=1.0,
                open=3,
                in_use=2,
                idle=1,
                failures=1,
                consecutive_failures=0,
                ejections=0,
                last_error=None,
                connect_time=summary_of(0.003, 0.02, 0.2),
            ),
            EndpointStats(
                endpoint="10.0.0.2:5432",
                state="ejected",
                weight=0.5,
                open=0,
                in_use=0,
                idle=0,
                failures=4,
                consecutive_failures=4,
                ejections=1,
                last_error="ConnectionRefusedError(111, 'Connection refused')",
                connect_time=Summary(),
            ),
        ),
        connect_time=summary_of(0.003, 0.02, 0.2),
    )


ENDPOINT_SCALARS: dict[tuple[str, tuple[str, ...]], float] = {
    ("aioconn_pool_endpoint_connections", ("10.0.0.1:5432", "idle")): 1,
    ("aioconn_pool_endpoint_connections", ("10.0.0.1:5432", "in_use")): 2,
    ("aioconn_pool_endpoint_connections", ("10.0.0.2:5432", "idle")): 0,
    ("aioconn_pool_endpoint_connections", ("10.0.0.2:5432", "in_use")): 0,
    **{
        ("aioconn_pool_endpoint_state", (endpoint, state)): float(state == current)
        for endpoint, current in (("10.0.0.1:5432", "healthy"), ("10.0.0.2:5432", "ejected"))
        for state in ("healthy", "ejected", "half_open", "draining")
    },
    ("aioconn_pool_endpoint_weight", ("10.0.0.1:5432",)): 1.0,
    ("aioconn_pool_endpoint_weight", ("10.0.0.2:5432",)): 0.5,
    ("aioconn_pool_endpoint_consecutive_failures", ("10.0.0.1:5432",)): 0,
    ("aioconn_pool_endpoint_consecutive_failures", ("10.0.0.2:5432",)): 4,
    ("aioconn_pool_endpoint_connect_failures_total", ("10.0.0.1:5432",)): 1,
    ("aioconn_pool_endpoint_connect_failures_total", ("10.0.0.2:5432",)): 4,
    ("aioconn_pool_endpoint_ejections_total", ("10.0.0.1:5432",)): 0,
    ("aioconn_pool_endpoint_ejections_total", ("10.0.0.2:5432",)): 1,
}
"""The per-endpoint series of ``endpoint_stats()``, by Prometheus name and labels after ``pool``."""
