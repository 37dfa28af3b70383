"""The events hook: ``Pool(on_event=...)`` gets each typed event exactly when it happens.

Every discard reason has its own scenario; a hook that raises is logged and changes nothing;
the ``aioconn.pool`` logger sees the very same event objects at DEBUG.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

import aioconn
from aioconn import ConnectError, Connection, Discards, Pool, Retry, TCPConnector
from aioconn.events import (
    AcquireWaitedLong,
    ConnectFailed,
    ConnectionDiscarded,
    ConnectionOpened,
    EndpointEjected,
    EndpointRestored,
    LeakSuspected,
    PoolEvent,
)
from aioconn.testing import EchoServer
from gated import FakeResource, GatedConnector
from pool_helpers import until_waiting

E = TypeVar("E", bound=PoolEvent)
NAME = "events"


class Recorder:
    """An ``on_event`` hook that keeps every event and lets a test await the next ones."""

    def __init__(self) -> None:
        self.events: list[PoolEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: PoolEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    async def wait_for(self, kind: type[E], count: int = 1) -> list[E]:
        """Wait until ``count`` events of ``kind`` arrived; returns them all."""
        while len(self.of(kind)) < count:
            self._changed.clear()
            await self._changed.wait()
        return self.of(kind)


def timeless(events: list[PoolEvent]) -> list[PoolEvent]:
    """The events with measured durations set to 0, for exact comparison of everything else."""
    return [
        dataclasses.replace(event, seconds=0.0)
        if isinstance(event, ConnectionOpened | AcquireWaitedLong)
        else event
        for event in events
    ]


def opened(resource: object, endpoint: str | None = None) -> ConnectionOpened:
    return ConnectionOpened(NAME, resource, endpoint, 0.0)


def discarded(resource: object, reason: str, endpoint: str | None = None) -> ConnectionDiscarded:
    return ConnectionDiscarded(NAME, resource, endpoint, reason)


async def until_clock(deadline: float) -> None:
    """Wait until ``time.monotonic()``, the pool's clock, is past ``deadline``."""
    while (left := deadline - time.monotonic()) >= 0:  # noqa: ASYNC110  (no event marks a time)
        await asyncio.sleep(left + 0.001)


class Stop(BaseException):
    """Ends an ``acquire`` block the way a cancellation does (not an ``Exception``)."""


class DrainableConnector(GatedConnector):
    """Every resource belongs to endpoint "a"; ``drain`` makes that endpoint's ones unreusable."""

    def __init__(self) -> None:
        super().__init__()
        self.drained: set[str] = set()

    def endpoint_of(self, resource: FakeResource) -> str:
        return "a"

    def drain(self, endpoint: str) -> None:
        self.drained.add(endpoint)

    def is_reusable(self, resource: FakeResource) -> bool:
        return super().is_reusable(resource) and self.endpoint_of(resource) not in self.drained


# -- ConnectionOpened ----------------------------------------------------------------------------


async def test_connection_opened_reports_how_long_the_connect_took() -> None:
    recorder = Recorder()
    connector = GatedConnector()
    async with Pool(connector, on_event=recorder, name=NAME) as pool:
        connector.connect_phase.hang()
        before = time.monotonic()
        getting = asyncio.create_task(pool.get())
        await connector.connect_phase.wait_hanging()
        hanging_from = time.monotonic()  # the connect started before this
        await until_clock(hanging_from + 0.02)
        hanging_until = time.monotonic()  # ... and ends after this
        connector.connect_phase.release()
        resource = await getting
        after = time.monotonic()
        [event] = recorder.of(ConnectionOpened)
        assert event == ConnectionOpened(NAME, resource, None, event.seconds)
        assert resource is connector.created[0]
        assert hanging_until - hanging_from <= event.seconds <= after - before
        await pool.put(resource)
        assert timeless(recorder.events) == [opened(resource)]


async def test_a_tcp_pool_reports_its_connections_opened_and_closed(
    echo_server: EchoServer,
) -> None:
    recorder = Recorder()
    pool = Pool(
        TCPConnector("127.0.0.1", echo_server.port), min_size=2, on_event=recorder, name=NAME
    )
    async with pool:
        first, second = (event.resource for event in recorder.of(ConnectionOpened))
        assert isinstance(first, Connection)
        assert isinstance(second, Connection)
        assert first is not second
        assert all(event.seconds > 0 for event in recorder.of(ConnectionOpened))
        async with pool.acquire() as conn:
            await conn.send(b"ping\n")
            assert await conn.readline() == b"ping\n"
    assert timeless(recorder.events) == [
        opened(first),
        opened(second),
        # close() empties the idle deque from its right end: the one used last goes first
        discarded(conn, "pool_closed"),
        discarded(first if conn is second else second, "pool_closed"),
    ]
    await echo_server.wait_open_count(0)


# -- ConnectionDiscarded, one scenario per reason -----------------------------------------------

Scenario = Callable[[Recorder], Awaitable[tuple[list[PoolEvent], Discards]]]
"""Runs a pool on a ``GatedConnector`` until it discarded one connection for one reason.

Returns the events the pool emitted (before it was closed) and its ``stats().discarded``.
"""


async def interrupted(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    async with Pool(GatedConnector(), on_event=recorder, name=NAME) as pool:
        with pytest.raises(Stop):
            async with pool.acquire() as resource:
                raise Stop
        return [opened(resource), discarded(resource, "interrupted")], pool.stats().discarded


async def error(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    async with Pool(GatedConnector(), on_event=recorder, name=NAME) as pool:
        with pytest.raises(OSError, match="broken"):
            async with pool.acquire() as resource:
                raise OSError("broken")
        return [opened(resource), discarded(resource, "error")], pool.stats().discarded


async def not_reusable(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    async with Pool(GatedConnector(), on_event=recorder, name=NAME) as pool:
        async with pool.acquire() as resource:
            resource.dirty = True
        return [opened(resource), discarded(resource, "not_reusable")], pool.stats().discarded


async def check_failed(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    connector = GatedConnector()
    async with Pool(connector, check_after_idle=0.01, on_event=recorder, name=NAME) as pool:
        async with pool.acquire() as first:
            pass
        await until_clock(time.monotonic() + 0.01)  # idle past check_after_idle: checked
        connector.check_phase.fail_next()
        async with pool.acquire() as second:
            pass
        assert connector.check_phase.calls == 1
        expected = [opened(first), discarded(first, "check_failed"), opened(second)]
        return expected, pool.stats().discarded


async def reset_failed(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    connector = GatedConnector()
    async with Pool(connector, on_event=recorder, name=NAME) as pool:
        connector.reset_phase.fail_next()
        async with pool.acquire() as resource:
            pass
        return [opened(resource), discarded(resource, "reset_failed")], pool.stats().discarded


async def max_lifetime(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    async with Pool(GatedConnector(), max_lifetime=0.02, on_event=recorder, name=NAME) as pool:
        async with pool.acquire() as resource:
            # it was opened before now, so it expires before now + max_lifetime
            await until_clock(time.monotonic() + 0.02)
        return [opened(resource), discarded(resource, "max_lifetime")], pool.stats().discarded


async def max_idle(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    async with Pool(GatedConnector(), max_idle=0.02, on_event=recorder, name=NAME) as pool:
        async with pool.acquire() as resource:
            pass
        await recorder.wait_for(ConnectionDiscarded)  # the maintenance task retires it
        return [opened(resource), discarded(resource, "max_idle")], pool.stats().discarded


async def requested(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    async with Pool(GatedConnector(), on_event=recorder, name=NAME) as pool:
        resource = await pool.get()
        await pool.put(resource, discard=True)
        return [opened(resource), discarded(resource, "requested")], pool.stats().discarded


async def pool_closed(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    pool = Pool(GatedConnector(), on_event=recorder, name=NAME)
    async with pool:
        async with pool.acquire() as resource:
            pass
    return [opened(resource), discarded(resource, "pool_closed")], pool.stats().discarded


async def aborted(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    pool = Pool(GatedConnector(), on_event=recorder, name=NAME)
    await pool.open()
    holding = asyncio.Event()
    held: list[FakeResource] = []

    async def hold() -> None:
        async with pool.acquire() as resource:
            held.append(resource)
            holding.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    await pool.close(timeout=0.01)  # gives up on the holder: aborts its connection
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    [resource] = held
    assert resource.aborted
    return [opened(resource), discarded(resource, "aborted")], pool.stats().discarded


async def resized(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    async with Pool(GatedConnector(), max_size=2, on_event=recorder, name=NAME) as pool:
        first = await pool.get()
        second = await pool.get()
        pool.resize(max_size=1)
        await pool.put(first)  # above the new max_size: closed
        await pool.put(second)  # the one left: kept
        expected = [opened(first), opened(second), discarded(first, "resized")]
        return expected, pool.stats().discarded


async def drained(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    async with Pool(DrainableConnector(), on_event=recorder, name=NAME) as pool:
        async with pool.acquire() as resource:
            pass
        pool.drain("a")
        expected = [opened(resource, "a"), discarded(resource, "drained", "a")]
        return expected, pool.stats().discarded


async def recover_failed(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    async def refuse(resource: FakeResource, exc: BaseException) -> bool:
        return False

    connector = GatedConnector()
    async with Pool(
        connector.connect, close=connector.close, recover=refuse, on_event=recorder, name=NAME
    ) as pool:
        with pytest.raises(KeyError):
            async with pool.acquire() as resource:
                raise KeyError("the block fails: recover decides, and says no")
        await recorder.wait_for(ConnectionDiscarded)  # recovery runs detached
        return [opened(resource), discarded(resource, "recover_failed")], pool.stats().discarded


async def max_uses(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    async with Pool(GatedConnector(), max_uses=1, on_event=recorder, name=NAME) as pool:
        async with pool.acquire() as resource:
            pass
        return [opened(resource), discarded(resource, "max_uses")], pool.stats().discarded


async def expired(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    async with Pool(GatedConnector(), on_event=recorder, name=NAME) as pool:
        async with pool.acquire() as resource:
            pass
        pool.expire()
        return [opened(resource), discarded(resource, "expired")], pool.stats().discarded


class RebalancingConnector(GatedConnector):
    """Says "rebalance" for the first resource given back while a caller waits."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def rebalance(self, resource: FakeResource) -> bool:
        self.asked += 1
        return self.asked == 1


async def rebalanced(recorder: Recorder) -> tuple[list[PoolEvent], Discards]:
    connector = RebalancingConnector()
    async with Pool(connector, max_size=1, on_event=recorder, name=NAME) as pool:
        held = await pool.get()
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        await pool.put(held)  # retired for the waiter: a new one is opened for it
        replacement = await waiter
        await pool.put(replacement)
        assert connector.asked == 1
        expected = [opened(held), discarded(held, "rebalanced"), opened(replacement)]
        return expected, pool.stats().discarded


SCENARIOS: dict[str, Scenario] = {
    scenario.__name__: scenario
    for scenario in (
        interrupted,
        error,
        not_reusable,
        check_failed,
        reset_failed,
        max_lifetime,
        max_idle,
        requested,
        pool_closed,
        aborted,
        resized,
        drained,
        recover_failed,
        max_uses,
        expired,
        rebalanced,
    )
}


def test_every_discard_reason_has_a_scenario() -> None:
    assert sorted(SCENARIOS) == sorted(field.name for field in dataclasses.fields(Discards))


@pytest.mark.parametrize("reason", sorted(SCENARIOS))
async def test_connection_discarded_names_the_reason(reason: str) -> None:
    recorder = Recorder()
    expected, counted = await SCENARIOS[reason](recorder)
    assert timeless(recorder.events[: len(expected)]) == expected
    # the stats count the same discard, and only that one
    assert counted == Discards(**{reason: 1})


# -- ConnectFailed -------------------------------------------------------------------------------


async def test_connect_failed_carries_the_error_the_waiter_gets_as_cause() -> None:
    recorder = Recorder()
    connector = GatedConnector()
    async with Pool(connector, on_event=recorder, name=NAME) as pool:
        connector.connect_phase.fail_next()
        with pytest.raises(ConnectError) as caught:
            async with pool.acquire():
                pass
        cause = caught.value.__cause__
        assert isinstance(cause, OSError)
        assert str(cause) == "connect failed (injected by GatedConnector)"
        assert recorder.events == [ConnectFailed(NAME, cause, None)]
        assert pool.stats().connect_failures == 1


async def test_connect_failed_comes_once_after_the_last_retry() -> None:
    recorder = Recorder()
    connector = GatedConnector()
    retry = Retry(attempts=3, initial_delay=0.001, jitter=0.0)
    async with Pool(connector, connect_retry=retry, on_event=recorder, name=NAME) as pool:
        connector.connect_phase.fail_next(2)  # two retries, then a connection
        async with pool.acquire() as resource:
            assert timeless(recorder.events) == [opened(resource)]
            connector.connect_phase.fail_next(3)  # every attempt fails
            with pytest.raises(ConnectError) as caught:
                await pool.get()
        assert connector.connect_phase.calls == 6
        cause = caught.value.__cause__
        assert isinstance(cause, OSError)
        assert timeless(recorder.events) == [opened(resource), ConnectFailed(NAME, cause, None)]
        assert pool.stats().connect_failures == 1


async def test_a_failing_min_size_connect_is_reported_before_open_raises() -> None:
    recorder = Recorder()
    connector = GatedConnector()
    connector.connect_phase.fail_next()
    pool = Pool(connector, min_size=1, on_event=recorder, name=NAME)
    with pytest.raises(ConnectError) as caught:
        await pool.open()
    cause = caught.value.__cause__
    assert isinstance(cause, OSError)
    assert recorder.events == [ConnectFailed(NAME, cause, None)]
    assert pool.closed


# -- AcquireWaitedLong ---------------------------------------------------------------------------


async def test_acquire_waited_long_when_a_waiter_waits_past_the_threshold() -> None:
    recorder = Recorder()
    pool = Pool(
        GatedConnector(), max_size=1, slow_acquire_threshold=0.02, on_event=recorder, name=NAME
    )
    async with pool:
        held = await pool.get()
        before = time.monotonic()
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        queued = time.monotonic()  # the waiter's clock started before this
        await until_clock(queued + 0.02)
        released = time.monotonic()  # ... and stops after this
        await pool.put(held)
        assert await waiter is held
        after = time.monotonic()
        [event] = recorder.of(AcquireWaitedLong)
        assert event == AcquireWaitedLong(NAME, event.seconds, 0.02)
        assert 0.02 < released - queued <= event.seconds <= after - before
        assert timeless(recorder.events) == [opened(held), AcquireWaitedLong(NAME, 0.0, 0.02)]
        assert pool.stats().acquire_wait.max == event.seconds
        await pool.put(held)


@pytest.mark.parametrize("threshold", [None, 60.0])
async def test_no_acquire_waited_long_below_the_threshold_or_without_one(
    threshold: float | None,
) -> None:
    recorder = Recorder()
    pool = Pool(
        GatedConnector(),
        max_size=1,
        slow_acquire_threshold=threshold,
        on_event=recorder,
        name=NAME,
    )
    async with pool:
        held = await pool.get()
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        await until_clock(time.monotonic() + 0.02)
        await pool.put(held)
        assert await waiter is held
        await pool.put(held)
        async with pool.acquire():  # the fast path: never a slow acquire
            pass
        assert timeless(recorder.events) == [opened(held)]
        assert pool.stats().acquire_wait.max > 0.02


# -- LeakSuspected -------------------------------------------------------------------------------


async def test_leak_suspected_says_where_the_connection_was_acquired(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    async with Pool(GatedConnector(), leak_timeout=0.02, on_event=recorder, name=NAME) as pool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with pool.acquire() as resource:
                [leak] = await recorder.wait_for(LeakSuspected)
        assert leak == LeakSuspected(NAME, resource, leak.report)
        assert leak.report.startswith(
            f"{NAME}: connection held for more than leak_timeout=0.02 s: {resource!r}\nacquired at:"
        )
        assert "test_leak_suspected_says_where_the_connection_was_acquired" in leak.report
        acquired_at = leak.report.split("acquired at:\n", 1)[1].splitlines()
        # The stack starts in the caller's code, not in the pool's own frames.
        assert acquired_at[0].endswith(
            ", in test_leak_suspected_says_where_the_connection_was_acquired"
        ), acquired_at[0]
        assert "test_pool_events.py" in acquired_at[0]
        assert timeless(recorder.events) == [opened(resource), leak]
        [warning] = caught
        assert warning.category is aioconn.LeakWarning
        assert str(warning.message) == leak.report
        warned = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert [(r.name, r.getMessage()) for r in warned] == [("aioconn.pool", leak.report)]


async def test_no_leak_suspected_for_a_connection_returned_in_time() -> None:
    recorder = Recorder()
    async with Pool(GatedConnector(), leak_timeout=60.0, on_event=recorder, name=NAME) as pool:
        async with pool.acquire() as resource:
            pass
        held = await pool.get()
        await pool.put(held)
    assert timeless(recorder.events) == [opened(resource), discarded(resource, "pool_closed")]


# -- hooks that fail, the log, connectors' events ------------------------------------------------


async def test_a_failing_hook_is_logged_and_the_pool_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[PoolEvent] = []
    failures: list[RuntimeError] = []

    def hook(event: PoolEvent) -> None:
        seen.append(event)
        failures.append(RuntimeError(f"hook failed on {type(event).__name__}"))
        raise failures[-1]

    connector = GatedConnector()
    async with Pool(connector, max_size=2, on_event=hook, name=NAME) as pool:
        async with pool.acquire() as first:
            pass
        async with pool.acquire() as again:
            assert again is first  # released and reused as if nothing had happened
            connector.connect_phase.fail_next()
            with pytest.raises(ConnectError):  # the waiter gets the connect error, not the hook's
                await pool.get()
        await pool.put(await pool.get(), discard=True)
        stats = pool.stats()
        assert (stats.acquired, stats.released, stats.created, stats.connect_failures) == (
            3,
            3,
            1,
            1,
        )
        assert (stats.size, stats.discarded) == (0, Discards(requested=1))
    assert [type(event) for event in seen] == [
        ConnectionOpened,
        ConnectFailed,
        ConnectionDiscarded,
    ]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.name, r.getMessage()) for r in errors] == [
        ("aioconn.pool", f"{NAME}: on_event hook failed for {event!r}") for event in seen
    ]
    assert [r.exc_info[1] if r.exc_info else None for r in errors] == failures


async def test_the_log_gets_the_same_events_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aioconn.pool")
    recorder = Recorder()
    connector = GatedConnector()
    async with Pool(connector, on_event=recorder, name=NAME) as pool:
        async with pool.acquire():
            connector.connect_phase.fail_next()
            with pytest.raises(ConnectError):
                await pool.get()
    logged = [
        (record.args[0], record.getMessage())
        for record in caplog.records
        if record.name == "aioconn.pool"
        and record.levelno == logging.DEBUG
        and isinstance(record.args, tuple)
        and record.args
        and isinstance(record.args[0], PoolEvent)
    ]
    assert [type(event) for event in recorder.events] == [
        ConnectionOpened,
        ConnectFailed,
        ConnectionDiscarded,  # with the pool
    ]
    assert len(logged) == len(recorder.events)
    for (event, message), hooked in zip(logged, recorder.events, strict=True):
        assert event is hooked
        assert message == str(hooked)


async def test_a_connector_reports_its_own_events_through_the_pool() -> None:
    class EjectingConnector(GatedConnector):
        def bind_events(self, emit: Callable[[PoolEvent], None], pool: str) -> None:
            assert pool == NAME  # the pool names itself for the connector's events
            self.emit = emit

    recorder = Recorder()
    connector = EjectingConnector()
    async with Pool(connector, on_event=recorder, name=NAME):
        ejected = EndpointEjected(NAME, "10.0.0.1:5432", 3, 2.5, "ConnectionRefusedError()")
        connector.emit(ejected)
        connector.emit(EndpointRestored(NAME, "10.0.0.1:5432"))
    assert recorder.events == [ejected, EndpointRestored(NAME, "10.0.0.1:5432")]


def test_the_hook_must_be_callable() -> None:
    with pytest.raises(TypeError, match="on_event must be callable or None, got 42"):
        Pool(GatedConnector(), on_event=42)  # type: ignore[call-overload]  # deliberately wrong
