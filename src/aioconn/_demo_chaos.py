"""The demo's second act: the same storm through aioconn's Pool and through a naive pool."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from ._demo_naive import NaivePool
from ._demo_plan import JITTER, LATENCY, POOL_SIZE, RESET_SHARE, Plan, Tally
from ._demo_storm import run_storm
from .connection import Connection
from .connector import TCPConnector
from .pool import Pool
from .stats import Discards
from .testing import ChaosProxy, EchoServer, latency, reset_peer, slicer

STORM_LIMIT = 20.0  # seconds per storm: one still running by then is a hang, a broken promise
CLOSE_TIMEOUT = 0.5  # what close() may wait for the stuck holders before aborting them
CLOSE_SLACK = 1.0  # how much longer than CLOSE_TIMEOUT close() may take and still be bounded
STUCK = 2  # holders whose request the server never answers, when close() runs
SETTLE = 5.0  # how long to wait for the server to see every connection closed


@dataclass(slots=True)
class ActTwo:
    """What the second act measured, for the summary."""

    plan: Plan
    pooled: Tally
    naive: Tally
    discarded: dict[str, int] = field(default_factory=dict)
    """``pool.stats().discarded`` right after the storm, reasons with a count only."""
    discarded_total: int = 0
    acquired: int = 0
    released: int = 0
    wait_max: float = 0.0
    """``pool.stats().acquire_wait.max``: the longest any acquire waited."""
    close_seconds: float = 0.0
    close_discarded: dict[str, int] = field(default_factory=dict)
    stuck_ended: int = 0
    size_after_close: int = -1
    server_open_after: dict[str, int] = field(default_factory=dict)
    stranded: dict[str, int] = field(default_factory=dict)
    """Connections still out of the pool once every request of the storm had ended."""
    answered: dict[str, int] = field(default_factory=dict)
    """Requests the server answered during each storm, by its own count."""

    def promises(self) -> dict[str, tuple[str, bool]]:
        """What aioconn promises, by key: the promise in words, and whether this run kept it."""
        t = self.pooled
        return {
            "crosstalk": ("every reply matched its request (zero cross-talk)", t.mismatched == 0),
            "reuse": ("no connection handed out again after a failed request", t.dead_reused == 0),
            "accounted": (
                "every request completed, was cut off as planned, or met a reset",
                t.unexpected == 0 and t.finished == len(self.plan.requests),
            ),
            "fifo": ("waiters served in order (zero overtakes)", t.overtakes == 0),
            "discards": (
                "discarded exactly the connections whose request was cut off or failed",
                self.discarded_total == t.cut_inside + t.failed_inside
                and self.acquired == self.released,
            ),
            "close": (
                f"close() bounded: {STUCK} stuck holders aborted after {CLOSE_TIMEOUT} s",
                self.close_seconds <= CLOSE_TIMEOUT + CLOSE_SLACK and self.stuck_ended == STUCK,
            ),
            "leaks": (
                "nothing leaked: none stranded, and the pool and the server count 0 open",
                self.stranded.get("pooled") == 0
                and self.size_after_close == 0
                and self.server_open_after.get("pooled") == 0,
            ),
        }


def _nonzero(discarded: Discards) -> dict[str, int]:
    """The reasons with a count, by field name (whatever reasons this version of the pool has)."""
    return {
        f.name: value
        for f in dataclasses.fields(discarded)
        if isinstance(value := getattr(discarded, f.name), int) and value
    }


@contextlib.asynccontextmanager
async def _chaos(server: EchoServer, seed: int) -> AsyncIterator[ChaosProxy]:
    """A proxy to ``server`` that delays, fragments and resets, its dice seeded by ``seed``."""
    async with ChaosProxy(server.host, server.port, seed=seed) as proxy:
        proxy.add(latency(LATENCY / 2, JITTER / 2, direction="upstream"))
        proxy.add(latency(LATENCY, JITTER))
        proxy.add(slicer(4, 2))  # replies arrive in pieces: a cut can fall mid-line
        proxy.add(reset_peer(0.0, toxicity=RESET_SHARE))
        yield proxy


async def _settled(server: EchoServer) -> int:
    """Connections the server still counts open once closes had time to arrive."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SETTLE):
            await server.wait_open_count(0)
    return server.open_count


class _PooledClient:
    def __init__(self, pool: Pool[Connection]) -> None:
        self.acquire = pool.acquire

    async def exchange(self, conn: Connection, line: bytes) -> bytes:
        await conn.send(line)
        return await conn.readline()


def _stuck_line(tag: int) -> bytes:
    return b"stuck-%d stall\n" % tag  # the server reads it and never answers


async def _stuck_request(pool: Pool[Connection], tag: int) -> None:
    async with pool.acquire() as conn:
        await conn.send(_stuck_line(tag))
        await conn.readline()


async def _close_with_stuck_holders(pool: Pool[Connection], proxy: ChaosProxy, act: ActTwo) -> None:
    loop = asyncio.get_running_loop()
    forwarded = proxy.stats.upstream_bytes + sum(len(_stuck_line(n)) for n in range(STUCK))
    holders = [asyncio.create_task(_stuck_request(pool, n)) for n in range(STUCK)]
    try:
        async with asyncio.timeout(SETTLE):  # until the server has every stuck request
            await proxy.wait_for(upstream_bytes=forwarded)
        before = _nonzero(pool.stats().discarded)
        started = loop.time()
        await pool.close(timeout=CLOSE_TIMEOUT)
        act.close_seconds = loop.time() - started
        after = _nonzero(pool.stats().discarded)
        act.close_discarded = {
            k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k)
        }
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE):
                await asyncio.wait(holders)
        act.stuck_ended = sum(1 for task in holders if task.done())
        act.size_after_close = pool.stats().size
    finally:
        for task in holders:
            task.cancel()
        # An aborted connection raises in its holder: expected, and retrieved here.
        await asyncio.gather(*holders, return_exceptions=True)


@contextlib.contextmanager
def _quiet_asyncio_warnings() -> Iterator[None]:
    # The naive pool keeps writing to reset sockets, and asyncio warns "socket.send() raised
    # exception." each time; the summary counts those failures instead.
    log = logging.getLogger("asyncio")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


async def run_act_two(
    plan: Plan,
    progress: Callable[[str, int], contextlib.AbstractContextManager[Callable[[Tally], None]]],
) -> ActTwo:
    """Run both storms; ``progress(label, total)`` gives the callback for each finished request."""
    total = len(plan.requests)
    act = ActTwo(plan, Tally("aioconn Pool", total), Tally("naive asyncio.Queue pool", total))
    async with EchoServer(witness=True) as server:
        async with _chaos(server, plan.seed) as proxy:
            pool = Pool(
                TCPConnector(proxy.host, proxy.port, read_timeout=10.0),
                min_size=POOL_SIZE,
                max_size=POOL_SIZE,
                acquire_timeout=STORM_LIMIT,
                name="demo",
            )
            async with pool:
                answered = server.requests
                with progress(act.pooled.label, total) as on_finished:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(STORM_LIMIT):
                            await run_storm(plan, _PooledClient(pool), act.pooled, on_finished)
                act.answered["pooled"] = server.requests - answered
                stats = pool.stats()
                act.stranded["pooled"] = stats.in_use
                act.discarded = _nonzero(stats.discarded)
                act.discarded_total = stats.discarded.total
                act.acquired, act.released = stats.acquired, stats.released
                act.wait_max = stats.acquire_wait.max
                await _close_with_stuck_holders(pool, proxy, act)
        act.server_open_after["pooled"] = await _settled(server)

        async with _chaos(server, plan.seed) as proxy:
            naive = NaivePool(proxy.host, proxy.port, POOL_SIZE)
            await naive.open()
            answered = server.requests
            try:
                with progress(act.naive.label, total) as on_finished, _quiet_asyncio_warnings():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(STORM_LIMIT):
                            await run_storm(plan, naive, act.naive, on_finished)
                act.answered["naive"] = server.requests - answered
                act.stranded["naive"] = naive.stranded
            finally:
                await naive.close()
        act.server_open_after["naive"] = await _settled(server)
    return act
