"""Connect backoff for every pool (issue #11): while the server is down, one probe per backoff
step, waiters that nothing in flight can serve fail fast with ``ServerDown``, and the first
successful connect ends the outage."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

import aioconn
from aioconn import Backoff, ConnectError, Pool, ServerDown
from aioconn.events import (
    PoolEvent,
    ReconnectFailed,
    ServerReachable,
    ServerUnreachable,
)
from pool_helpers import Thing, eventually, until_waiting


@dataclass
class Server:
    """A stand-in server: connects fail while it is down, and may hang on a gate."""

    up: bool = False
    attempts: int = 0
    in_flight: int = 0
    gate: asyncio.Event | None = None
    attempt_times: list[float] = field(default_factory=list)

    async def connect(self) -> Thing:
        self.attempts += 1
        self.attempt_times.append(time.monotonic())
        self.in_flight += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
            if not self.up:
                raise ConnectionRefusedError(111, "Connection refused")
            return Thing()
        finally:
            self.in_flight -= 1


def kinds(events: list[PoolEvent]) -> list[str]:
    watched = (ServerUnreachable, ServerReachable, ReconnectFailed)
    return [type(e).__name__ for e in events if isinstance(e, watched)]


LONG = Backoff(initial=30.0, maximum=30.0, jitter=0, after=1)  # no probe during the test
FAST = Backoff(initial=0.01, maximum=0.01, jitter=0, after=1)


async def test_waiters_fail_fast_with_server_down_while_the_pool_backs_off() -> None:
    server = Server()
    events: list[PoolEvent] = []
    async with Pool(
        server.connect, max_size=4, connect_backoff=LONG, on_event=events.append, name="db"
    ) as pool:
        with pytest.raises(ConnectError) as first:
            await pool.get(timeout=5)
        assert not isinstance(first.value, ServerDown)  # the connect's own error
        assert isinstance(first.value.__cause__, ConnectionRefusedError)
        for _ in range(3):
            with pytest.raises(ServerDown, match=r"^db: the server is down: 1 connect") as down:
                await pool.get(timeout=5)
            assert down.value.__cause__ is first.value
            assert (down.value.failures, server.attempts) == (1, 1)  # no connect of its own
            assert 29.0 < down.value.retry_in <= 30.0
            assert abs(down.value.since - time.time()) < 60
        stats = pool.stats()
        assert (stats.timeouts, stats.connect_failures, stats.waiting) == (0, 1, 0)
        assert stats.unreachable_for is not None
        assert stats.unreachable_for >= 0
        assert kinds(events) == ["ServerUnreachable"]
        pool.check_invariants()


async def test_waiters_that_a_connection_in_use_can_serve_keep_waiting() -> None:
    server = Server(up=True)
    async with Pool(server.connect, max_size=2, connect_backoff=LONG) as pool:
        held = await pool.get()
        server.up = False
        with pytest.raises(ConnectError):
            await pool.get(timeout=5)  # grows: the connect fails, the outage begins
        # The held connection may come back, and serve them one after the other.
        waiters = [asyncio.create_task(pool.get(timeout=5)) for _ in range(3)]
        await until_waiting(pool, 3)
        for waiter in waiters:
            await pool.put(held)
            assert await waiter is held
        assert server.attempts == 2
        pool.check_invariants()
        # The last holder's connection dies: nothing is left in flight, so the waiters fail
        # at once instead of waiting out their timeouts.
        late = [asyncio.create_task(pool.get(timeout=5)) for _ in range(2)]
        await until_waiting(pool, 2)
        await pool.put(held, discard=True)
        for waiter in late:
            with pytest.raises(ServerDown):
                await waiter
        assert (server.attempts, pool.stats().timeouts) == (2, 0)
        pool.check_invariants()


async def test_one_probe_per_step_and_the_first_success_ends_the_outage() -> None:
    server = Server()
    events: list[PoolEvent] = []
    pool = Pool(
        server.connect, min_size=2, max_size=4, connect_backoff=FAST, on_event=events.append
    )
    await pool.open(wait=False)  # two concurrent connects fail: the outage begins
    try:
        await eventually(lambda: server.attempts >= 5)  # then one probe per 10 ms step
        server.gate = asyncio.Event()
        await eventually(lambda: server.in_flight == 1)  # a probe hangs
        probes_before = server.attempts

        async def use() -> Thing:
            async with pool.acquire(timeout=5) as thing:
                return thing

        callers = [asyncio.create_task(use()) for _ in range(5)]
        await until_waiting(pool, 5)  # the probe in flight may serve them: they wait
        assert (server.attempts, server.in_flight) == (probes_before, 1)  # still one probe
        server.up = True
        server.gate.set()
        served = await asyncio.gather(*callers)  # the probe serves one, then the pool grows
        assert len(set(map(id, served))) <= 4
        await pool.wait(timeout=5)  # refilled to min_size once connects succeed
        assert kinds(events) == ["ServerUnreachable", "ServerReachable"]
        reached = next(e for e in events if isinstance(e, ServerReachable))
        assert reached.failures == probes_before - 1  # every attempt but the last failed
        assert pool.stats().unreachable_for is None
        pool.check_invariants()
    finally:
        await pool.close()


async def test_a_probe_in_flight_when_another_connect_ends_the_outage_is_a_plain_connect() -> None:
    # Found by make explore (seed 1878): a connect begun before the outage succeeded while
    # the outage's probe was in flight; the pool then counted a probe with no outage.
    pending: list[asyncio.Future[Thing]] = []

    async def connect() -> Thing:
        pending.append(asyncio.get_running_loop().create_future())
        return await pending[-1]

    events: list[PoolEvent] = []
    async with Pool(connect, max_size=4, connect_backoff=FAST, on_event=events.append) as pool:
        first = [asyncio.create_task(pool.get(timeout=5)) for _ in range(2)]
        await eventually(lambda: len(pending) == 2)  # connects a and b in flight
        pending[0].set_exception(ConnectionRefusedError(111, "down"))  # a: the outage begins
        with pytest.raises(ConnectError):
            await first[0]
        more = [asyncio.create_task(pool.get(timeout=5)) for _ in range(2)]
        await eventually(lambda: len(pending) == 3)  # 3 wait on b: the probe starts
        assert kinds(events) == ["ServerUnreachable"]
        pool.check_invariants()
        pending[1].set_result(Thing())  # b, begun before the outage, succeeds: it ends
        assert await first[1] is not None
        assert kinds(events) == ["ServerUnreachable", "ServerReachable"]
        pool.check_invariants()  # the probe in flight is a plain connect now
        pending[2].set_result(Thing())  # the old probe succeeds; the last waiter opens anew
        await eventually(lambda: len(pending) == 4)
        pending[3].set_result(Thing())
        held = [await task for task in more]
        assert len({id(thing) for thing in [*held, await first[1]]}) == 3
        assert kinds(events) == ["ServerUnreachable", "ServerReachable"]
        pool.check_invariants()
        for thing in [*held, await first[1]]:
            await pool.put(thing)


async def test_connect_attempts_during_an_outage_are_bounded_and_recovery_takes_one_probe() -> None:
    server = Server(up=True)
    events: list[PoolEvent] = []
    backoff = Backoff(initial=0.01, maximum=0.08, jitter=0.5, after=1)
    outage = 0.5
    errors_after_back = 0
    back = asyncio.Event()

    def on_event(event: PoolEvent) -> None:
        events.append(event)
        if isinstance(event, ServerReachable):
            back.set()

    async with Pool(
        server.connect, min_size=16, max_size=16, connect_backoff=backoff, on_event=on_event
    ) as pool:

        async def worker() -> None:
            nonlocal errors_after_back
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not stop.is_set():
                try:
                    async with pool.acquire(timeout=5):
                        await asyncio.sleep(0.001)
                except ConnectError:
                    if back.is_set():
                        errors_after_back += 1
                    await asyncio.sleep(0.001)

        stop = asyncio.Event()
        workers = [asyncio.create_task(worker()) for _ in range(16)]
        await eventually(lambda: pool.stats().in_use == 16)
        server.up = False
        before = server.attempts
        pool.expire()  # every connection "dies" with the server, as they come back
        await asyncio.sleep(outage)  # the outage being measured, not a synchronisation
        during = server.attempts - before
        server.up = True
        at_restart = server.attempts
        await asyncio.wait_for(back.wait(), 5)
        probes_to_recover = server.attempts - at_restart
        await eventually(lambda: pool.stats().in_use + pool.stats().idle == 16)
        for _ in range(200):
            await asyncio.sleep(0.001)  # let the workers run on the recovered pool
        stop.set()
        await asyncio.gather(*workers)
    # 16 connects in flight when it failed, then one probe per step: steps are at least
    # 5, 10, 20, 40, 40, ... ms (jitter halves them at most) -> at most ~16 in 0.5 s.
    assert 16 + 3 <= during <= 16 + 20, during
    assert probes_to_recover >= 1
    # Recovery within one step: the first probe after the server is back succeeds, then the
    # pool refills (up to 16 connects at once, none failing).
    assert errors_after_back == 0
    assert kinds(events) == ["ServerUnreachable", "ServerReachable"]


async def test_reconnect_failed_is_called_once_per_outage() -> None:
    server = Server()
    calls: list[Pool[Any]] = []
    called = asyncio.Event()

    def on_failed(pool: Pool[Any]) -> None:
        calls.append(pool)
        called.set()

    events: list[PoolEvent] = []
    pool = Pool(
        server.connect,
        min_size=1,
        connect_backoff=FAST,
        reconnect_timeout=0.05,
        reconnect_failed=on_failed,
        on_event=events.append,
    )
    await pool.open(wait=False)
    try:
        await asyncio.wait_for(called.wait(), 5)
        at_report = server.attempts
        await eventually(lambda: server.attempts >= at_report + 3)  # still probing
        assert calls == [pool]
        failed = [e for e in events if isinstance(e, ReconnectFailed)]
        assert len(failed) == 1
        assert failed[0].seconds >= 0.05
        assert isinstance(failed[0].error, ConnectError)
        server.up = True
        await pool.wait(timeout=5)
        # A second outage: reported again.
        called.clear()
        server.up = False
        pool.expire()
        await asyncio.wait_for(called.wait(), 5)
        assert calls == [pool, pool]
        assert kinds(events) == [
            "ServerUnreachable",
            "ReconnectFailed",
            "ServerReachable",
            "ServerUnreachable",
            "ReconnectFailed",
        ]
    finally:
        await pool.close()


async def test_an_async_reconnect_failed_callback_runs_and_its_errors_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Server()
    ran = asyncio.Event()

    async def on_failed(pool: Pool[Any]) -> None:
        ran.set()
        raise RuntimeError("alerting is down too")

    pool = Pool(
        server.connect,
        min_size=1,
        connect_backoff=FAST,
        reconnect_timeout=0.02,
        reconnect_failed=on_failed,
    )
    await pool.open(wait=False)
    try:
        await asyncio.wait_for(ran.wait(), 5)
        await eventually(lambda: "reconnect_failed callback raised" in caplog.text)
    finally:
        await pool.close()


async def test_by_default_one_failed_connect_is_a_blip_the_second_an_outage() -> None:
    server = Server()
    events: list[PoolEvent] = []
    async with Pool(server.connect, max_size=4, on_event=events.append) as pool:
        with pytest.raises(ConnectError) as first:
            await pool.get(timeout=5)
        assert not isinstance(first.value, ServerDown)
        assert pool.stats().unreachable_for is None
        assert kinds(events) == []
        with pytest.raises(ConnectError) as second:
            await pool.get(timeout=5)  # tries at once: one failure may be a blip
        assert not isinstance(second.value, ServerDown)
        assert kinds(events) == ["ServerUnreachable"]
        with pytest.raises(ServerDown, match="2 connect"):
            await pool.get(timeout=5)
        assert server.attempts == 2


async def test_without_backoff_every_waiter_gets_a_connect_of_its_own() -> None:
    server = Server()
    async with Pool(server.connect, max_size=4, connect_backoff=None) as pool:
        for attempt in range(1, 4):
            with pytest.raises(ConnectError) as caught:
                await pool.get(timeout=5)
            assert not isinstance(caught.value, ServerDown)
            assert server.attempts == attempt
        assert pool.stats().unreachable_for is None


async def test_closing_during_an_outage_cancels_the_backoff_timer() -> None:
    server = Server()
    pool = Pool(server.connect, min_size=1, connect_backoff=LONG)
    await pool.open(wait=False)
    await eventually(lambda: pool.stats().unreachable_for is not None)
    runner = pool._runner
    assert runner.retry_timer is not None
    await pool.close()
    assert runner.retry_timer is None
    assert server.attempts == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"initial": 0}, ValueError, "Backoff initial must be a positive"),
        ({"initial": "1"}, TypeError, "Backoff initial must be a number"),
        ({"maximum": float("inf")}, ValueError, "Backoff maximum must be a positive"),
        ({"initial": 2.0, "maximum": 1.0}, ValueError, "maximum must be >= initial"),
        ({"jitter": 1.5}, ValueError, r"jitter must be in 0..1, got 1.5"),
        ({"jitter": True}, TypeError, "jitter must be a number"),
        ({"after": 0}, ValueError, "Backoff after must be >= 1, got 0"),
        ({"after": 1.0}, TypeError, "Backoff after must be an int, got 1.0"),
    ],
)
def test_bad_backoff_is_refused_naming_the_field(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Backoff(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"connect_backoff": (0.1, 1.0)}, TypeError, "connect_backoff must be an aioconn.Backoff"),
        ({"reconnect_timeout": -1}, ValueError, "reconnect_timeout must be a positive"),
        ({"reconnect_timeout": "5"}, TypeError, "reconnect_timeout must be a number"),
        ({"reconnect_failed": 3}, TypeError, "reconnect_failed must be callable or None, got 3"),
    ],
)
def test_bad_pool_backoff_arguments_are_refused(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Pool(Server().connect, **kwargs)


def test_the_default_backoff_is_documented_values() -> None:
    assert Backoff() == Backoff(initial=0.05, maximum=2.0, jitter=0.5, after=2)
    assert aioconn.ServerDown.__mro__[1] is aioconn.ConnectError
