"""What the integration tests against the real servers share: the Redis recipe's client (run
from docs/recipes/redis.md itself), connectors that count their connects, and a tally of the
errors callers saw."""

from __future__ import annotations

import asyncio
import contextlib
import time
import types
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioconn
from aioconn.drivers import AsyncpgConnector
from aioconn.events import PoolEvent, ServerReachable
from aioconn.testing import ChaosProxy, latency, reset_peer
from test_docs import extract_blocks

ROOT = Path(__file__).resolve().parents[2]
REDIS_RECIPE = ROOT / "docs" / "recipes" / "redis.md"
WAIT = 5.0  # seconds a server gets to show a state we wait for (a bounded poll, not a sleep)


def load_redis_recipe() -> Any:
    """The client of docs/recipes/redis.md, executed from the page (its first block) as a module:
    ``encode``, ``read_reply``, ``RedisError`` and ``Redis``. The page is the code under test;
    tests/test_docs.py runs the whole page too."""
    text = REDIS_RECIPE.read_text(encoding="utf-8")
    first = next(block for block in extract_blocks(text, str(REDIS_RECIPE)) if block.run)
    module = types.ModuleType("redis_recipe")
    module.__file__ = str(REDIS_RECIPE)
    code = compile("\n" * (first.line - 1) + first.source, str(REDIS_RECIPE), "exec")
    exec(code, module.__dict__)
    return module


recipe = load_redis_recipe()


def recipe_client(pool: aioconn.Pool[aioconn.Connection]) -> Any:
    """The recipe's ``Redis`` client over a pool of our choosing (a counting connector, a
    client name) instead of the one its ``__init__`` makes: its ``execute``, ``pipeline``,
    ``__aenter__`` and ``__aexit__`` as the page wrote them."""
    client = recipe.Redis.__new__(recipe.Redis)
    client.pool = pool
    return client


REPORTS: list[str] = []  # measurements, shown at the end of the run (tests/integration/conftest.py)


def report(line: str) -> str:
    """Keep a measurement for the end-of-run summary; returns it, for assertion messages."""
    REPORTS.append(line)
    return line


async def redis_command(conn: aioconn.Connection, *args: bytes | str | int) -> Any:
    """One command on one connection, with the recipe's encoder and reply reader."""
    await conn.send(recipe.encode(*args))
    reply = await recipe.read_reply(conn)
    if isinstance(reply, recipe.RedisError):
        raise reply
    return reply


class CountingRedisConnector(aioconn.TCPConnector):
    """A ``TCPConnector`` that names every connection (``CLIENT SETNAME``, via ``init``),
    records its ``CLIENT ID`` and counts every ``connect()`` the pool makes, failed or not."""

    def __init__(self, host: str, port: int, client_name: str, **options: Any) -> None:
        super().__init__(host, port, init=self._name_it, **options)
        self.client_name = client_name
        self.attempts = 0
        self.client_ids: list[int] = []

    async def connect(self) -> aioconn.Connection:
        self.attempts += 1
        return await super().connect()

    async def _name_it(self, conn: aioconn.Connection) -> None:
        assert await redis_command(conn, "CLIENT", "SETNAME", self.client_name) == b"OK"
        client_id = await redis_command(conn, "CLIENT", "ID")
        assert isinstance(client_id, int)
        self.client_ids.append(client_id)


class CountingAsyncpgConnector(AsyncpgConnector):
    """An ``AsyncpgConnector`` that counts every ``connect()`` the pool makes, failed or not,
    and records the server process (backend pid) of every connection it opened."""

    def __init__(self, dsn: str, application_name: str, **connect_kwargs: Any) -> None:
        super().__init__(
            dsn,
            init=self._record,
            server_settings={"application_name": application_name},
            **connect_kwargs,
        )
        self.application_name = application_name
        self.attempts = 0
        self.pids: list[int] = []

    async def connect(self) -> Any:
        self.attempts += 1
        return await super().connect()

    def _record(self, conn: Any) -> None:
        self.pids.append(conn.get_server_pid())


class Recoveries:
    """``Pool(on_event=...)``: when the pool's outages ended (``ServerReachable``)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, event: PoolEvent) -> None:
        if isinstance(event, ServerReachable):
            self.times.append(time.monotonic())

    def healed(self, fault_removed: float) -> float:
        """When service was whole again: the fault's removal, or the end of an outage that
        was still on (connects failed under the fault; the next probe ends it, one backoff
        step later)."""
        return max([fault_removed, *self.times])


async def poll(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT) -> None:
    """Ask until ``condition()`` holds, failing after ``timeout`` s: the servers announce none
    of the states we wait for."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.005)


@dataclass
class Tally:
    """What the workers of a load saw: answers, wrong answers, errors by type."""

    ok: int = 0
    wrong: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    undocumented: list[BaseException] = field(default_factory=list)

    def error(self, exc: BaseException, documented: tuple[type[BaseException], ...]) -> None:
        self.errors[type(exc).__name__] += 1
        if not isinstance(exc, documented):
            self.undocumented.append(exc)

    def summary(self) -> str:
        errors = ", ".join(f"{name}={n}" for name, n in sorted(self.errors.items())) or "none"
        return f"ok={self.ok} wrong={len(self.wrong)} errors: {errors}"


class Load:
    """``workers`` tasks asking ``ask(n)`` (which returns what was asked and what came back)
    until ``stop()``, at most ``max_requests`` requests and ``max_seconds`` s in all.

    A worker that saw an error pauses ``pause_after_error`` s before its next request, as a
    client that retries would: a fixed pace, so that the connect attempts counted during an
    outage measure the pool, not how fast a loop can spin.
    """

    def __init__(
        self,
        ask: Callable[[int], Awaitable[tuple[object, object]]],
        *,
        documented: tuple[type[BaseException], ...],
        workers: int,
        max_requests: int,
        max_seconds: float,
        pause_after_error: float = 0.01,
    ) -> None:
        self.ask = ask
        self.documented = documented
        self.workers = workers
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.pause_after_error = pause_after_error
        self.tally = Tally()
        self.issued = 0
        self.success_times: list[float] = []
        self.error_times: list[tuple[float, str]] = []  # (when the request began, error)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._deadline = 0.0

    def start(self) -> None:
        self._deadline = time.monotonic() + self.max_seconds
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]

    async def stop(self) -> Tally:
        self._stopping.set()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*self._tasks)
        return self.tally

    def running(self) -> bool:
        return not self._stopping.is_set() and time.monotonic() < self._deadline

    async def _worker(self) -> None:
        while self.running() and self.issued < self.max_requests:
            n = self.issued
            self.issued += 1
            began = time.monotonic()
            try:
                expected, got = await self.ask(n)
            except Exception as exc:
                self.tally.error(exc, self.documented)
                self.error_times.append((began, type(exc).__name__))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.pause_after_error):
                        await self._stopping.wait()
                continue
            if got == expected:
                self.tally.ok += 1
                self.success_times.append(time.monotonic())
            else:
                self.tally.wrong.append(f"request {n}: asked {expected!r}, got {got!r}")

    async def until_successes(self, count: int, timeout: float = WAIT) -> None:
        """Wait (bounded) until ``count`` requests in all have succeeded."""

        async def enough() -> bool:
            return self.tally.ok >= count

        await poll(enough, f"{count} successful requests", timeout)

    def first_success_after(self, moment: float) -> float | None:
        return next((t for t in self.success_times if t > moment), None)

    def errors_after(self, moment: float) -> Counter[str]:
        """The errors of the requests that began after ``moment``."""
        return Counter(name for t, name in self.error_times if t > moment)


@dataclass(frozen=True)
class Outage:
    """What a load saw across one outage of its server."""

    down_for: float  # seconds from the stop/kill to the server ready again
    restart_took: float  # seconds start() took
    connect_attempts: int  # connect() calls the pool made from the stop/kill to ready again
    recovery: float  # seconds from the server ready again to the first success
    errors_during: Counter[str]  # errors of requests begun before the server was back
    # Errors of requests begun once the server was ready, before the pool's first success
    # (its backoff step had not ended: ServerDown), and of those begun after that success.
    errors_window: Counter[str]
    errors_after: Counter[str]

    def summary(self) -> str:
        return (
            f"down {self.down_for:.2f} s (restart {self.restart_took:.2f} s),"
            f" {self.connect_attempts} connect attempts meanwhile,"
            f" first success {self.recovery * 1000:.0f} ms after ready,"
            f" errors during: {dict(self.errors_during)}, until the first success:"
            f" {dict(self.errors_window)}, after it: {dict(self.errors_after)}"
        )


# Issue #11's outage targets, asserted by both restart tests (a pool of 16, 32 workers each
# retrying 10 ms after an error, the server down for OUTAGE seconds). Without the pool's connect
# backoff it tried to connect for every waiting request: 2,000-4,600 attempts in 3 s. With it
# (one probe per step, acquires failing fast with ServerDown meanwhile): 22-23, the first
# success 0.3-1.6 s after the server was ready, no error after it.
OUTAGE = 3.0  # seconds the server stays down
OUTAGE_WORKERS = 32
OUTAGE_WARM = 200  # successes before the outage, and again after the first one after it
CONNECT_ATTEMPTS_BOUND = 50  # the target for a 3 s outage and a pool of 16
# Seconds from the server ready again to the first success: one backoff step (the longest,
# 2 s), plus the connect and the restart's own jitter.
RECOVERY_BOUND = aioconn.Backoff().maximum + 1.0
ERRORS_AFTER_BACK_BOUND = 0  # errors of requests begun after the first success


def assert_outage_targets(outage: Outage, summary: str) -> None:
    """The bounds above, and that the outage was seen at all."""
    assert outage.recovery < RECOVERY_BOUND, summary
    assert outage.connect_attempts <= CONNECT_ATTEMPTS_BOUND, summary
    assert outage.errors_after.total() <= ERRORS_AFTER_BACK_BOUND, summary
    assert outage.errors_during.total() > 0, summary


async def through_outage(
    ask: Callable[[int], Awaitable[tuple[object, object]]],
    documented: tuple[type[BaseException], ...],
    attempts: Callable[[], int],
    *,
    take_down: Callable[[], None],
    bring_up: Callable[[], object],
    executor: ThreadPoolExecutor,
) -> tuple[Outage, Tally]:
    """Take the server down under a load of ``OUTAGE_WORKERS`` asking ``ask``, keep it down
    ``OUTAGE`` s, bring it back; what the outage did, and the load's tally.

    ``take_down`` and ``bring_up`` block (they wait for the process), so they run in
    ``executor``, whose one thread must outlive the server: a server dies with the thread that
    started it (PR_SET_PDEATHSIG). The outage's length is the scenario itself, not a wait for
    a state.
    """
    load = Load(
        ask, documented=documented, workers=OUTAGE_WORKERS, max_requests=1_000_000, max_seconds=30
    )
    load.start()
    try:
        outage = await _outage(load, attempts, take_down, bring_up, executor)
    finally:
        tally = await load.stop()
    return outage, tally


async def _outage(
    load: Load,
    attempts: Callable[[], int],
    take_down: Callable[[], None],
    bring_up: Callable[[], object],
    executor: ThreadPoolExecutor,
) -> Outage:
    outage, warm, recovery_bound = OUTAGE, OUTAGE_WARM, RECOVERY_BOUND
    loop = asyncio.get_running_loop()
    await load.until_successes(load.tally.ok + warm)
    before = attempts()
    down_at = time.monotonic()
    await loop.run_in_executor(executor, take_down)
    await asyncio.sleep(max(0.0, outage - (time.monotonic() - down_at)))
    starting = time.monotonic()
    await loop.run_in_executor(executor, bring_up)
    ready = time.monotonic()
    during = attempts() - before

    async def served() -> bool:
        return load.first_success_after(ready) is not None

    await poll(served, "a request succeeds after the restart", recovery_bound)
    first = load.first_success_after(ready)
    assert first is not None
    await load.until_successes(load.tally.ok + warm)
    errors_during = Counter(name for t, name in load.error_times if t <= ready)
    return Outage(
        down_for=ready - down_at,
        restart_took=ready - starting,
        connect_attempts=during,
        recovery=first - ready,
        errors_during=errors_during,
        errors_window=Counter(name for t, name in load.error_times if ready < t <= first),
        errors_after=load.errors_after(first),
    )


# The phases of through_chaos: each ends after this many successes, the reset phase only once
# it also caused this many errors.
PHASE_REQUESTS = 100
RESET_ERRORS = 20


async def through_chaos(load: Load, proxy: ChaosProxy, recoveries: Recoveries) -> Tally:
    """Run ``load`` through ``proxy``: clean, then 20 ms latency (no error allowed), then a
    reset of half the new links, then clean again; check what callers saw.

    The pool must be made with ``max_uses`` low enough that new links keep meeting the reset
    toxic, and ``on_event=recoveries``. After the resets are removed, only ``ServerDown`` may
    fail a request (the pool may still be backing off: connects failed under the resets, and
    its next probe, one step later, ends that), and nothing once its outage ended.
    """
    load.start()
    try:
        await load.until_successes(PHASE_REQUESTS)
        slow = proxy.add(latency(0.02))
        await load.until_successes(load.tally.ok + PHASE_REQUESTS)
        slow.remove()
        assert not load.tally.errors, load.tally.summary()

        resets = proxy.add(reset_peer(after=0, toxicity=0.5))
        ok = load.tally.ok

        async def hurt() -> bool:
            failed = load.tally.errors.total()
            return failed >= RESET_ERRORS and load.tally.ok >= ok + PHASE_REQUESTS

        await poll(hurt, f"{RESET_ERRORS} requests failed amid successes under resets")
        resets.remove()
        removed = time.monotonic()
        await load.until_successes(load.tally.ok + 2 * PHASE_REQUESTS)
    finally:
        tally = await load.stop()
    assert tally.wrong == []
    assert tally.undocumented == [], tally.summary()
    back = recoveries.healed(removed)
    assert set(load.errors_after(removed) - load.errors_after(back)) <= {"ServerDown"}
    assert load.errors_after(back) == {}, tally.summary()
    assert tally.errors.total() >= RESET_ERRORS
    return tally
