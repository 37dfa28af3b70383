"""Endpoints outlier ejection: failover within a connect, the circuit breaker, failing fast.

Real loopback servers (127.0.0.1-3), killed and restarted on the same port. Cool-downs are
tiny (0.05 s) and their expiry is waited for by polling under a bound; everything else waits
for events.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack

import pytest

from aioconn import (
    ConnectError,
    Connection,
    Endpoints,
    NoHealthyEndpoint,
    Pool,
)
from aioconn._breaker import Breaker, BreakerPolicy
from aioconn.events import ConnectFailed, EndpointEjected, EndpointRestored
from aioconn.testing import EchoServer
from pool_helpers import eventually
from test_endpoints_support import (
    HOSTS,
    Events,
    Load,
    all_closed,
    dead_addresses,
    echo_servers,
    serve,
)


def state_of(pool: Pool[Connection], endpoint: str) -> str:
    return next(e.state for e in pool.stats().endpoints if e.endpoint == endpoint)


async def test_killed_server_is_ejected_skipped_and_probed_back() -> None:
    events = Events()
    async with echo_servers() as servers, AsyncExitStack() as stack:
        a, b, c = (s.address for s in servers)
        endpoints = Endpoints(
            [a, b, c], eject_after=3, base_ejection=0.05, max_ejection=0.2, read_timeout=5
        )
        async with Pool(endpoints, max_size=12, on_event=events, name="kill") as pool:
            workers = 6
            async with Load(pool, workers=workers) as load:
                await load.until(lambda: load.total >= 300 and load.served[b] > 0)
                await load.pause()  # no request in flight while b dies
                port = servers[1].port
                await servers[1].stop()
                load.resume()
                first = await events.next(EndpointEjected, b)
                assert (first.pool, first.failures, first.cooldown) == ("kill", 3, 0.05)
                assert "Connect call failed" in first.error
                await load.more(300)  # b is out: every request goes to a or c, none fails
                # Still down when the cool-down ends: the one half-open probe fails, and b is
                # ejected again for twice as long.
                second = await events.next(EndpointEjected, b)
                assert second.cooldown == 0.1
                revived = await stack.enter_async_context(EchoServer(host=HOSTS[1], port=port))
                restored = await events.next(EndpointRestored, b)  # the next probe succeeded
                assert restored.pool == "kill"
                served_b = load.served[b]
                await load.until(lambda: load.served[b] > served_b)  # b is back in rotation
            assert load.errors == []  # not one request failed: each failed connect failed over
            stats = {e.endpoint: e for e in pool.stats().endpoints}
        assert events.of(EndpointEjected, b) == [first, second]
        assert events.of(EndpointRestored) == [restored]
        assert events.seen.index(restored) > events.seen.index(second)
        # b's failures: 3 to eject it, 1 for the failed probe, plus those of attempts already
        # under way when it was ejected (at most one per other worker; they change no state).
        assert 4 <= stats[b].failures <= 4 + workers - 1
        assert second.failures - 1 == first.failures + (stats[b].failures - 4)
        assert (stats[b].state, stats[b].consecutive_failures, stats[b].ejections) == (
            "healthy",
            0,
            2,
        )
        assert [stats[x].failures for x in (a, c)] == [0, 0]
        assert events.of(ConnectFailed) == []  # no connect() failed as a whole
        await all_closed(servers[0], servers[2], revived)


async def test_a_failed_attempt_fails_over_within_the_same_connect() -> None:
    events = Events()
    (dead,) = await dead_addresses(1)
    async with echo_servers(2) as servers:
        a, c = (s.address for s in servers)
        async with Pool(Endpoints([a, dead, c], base_ejection=30), on_event=events) as pool:
            for i in range(30):
                async with pool.acquire() as conn:
                    await serve(conn, b"%d\n" % i)  # never fails: `dead` is failed over
            stats = {e.endpoint: e for e in pool.stats().endpoints}
            assert (stats[dead].failures, stats[dead].ejections, stats[dead].state) == (
                3,
                1,
                "ejected",
            )
            assert stats[dead].open == 0
            assert "Connect call failed" in (stats[dead].last_error or "")
            assert [e.endpoint for e in events.of(EndpointEjected)] == [dead]
            assert pool.stats().connect_failures == 0
        await all_closed(*servers)


async def test_all_endpoints_down_fails_fast_not_after_connect_timeout() -> None:
    addresses = await dead_addresses(3)
    endpoints = Endpoints(addresses, connect_timeout=5, base_ejection=30)
    # The endpoints' breakers are under test: the pool's own backoff would answer the third
    # call with ServerDown.
    async with Pool(endpoints, max_size=4, connect_backoff=None) as pool:
        errors: list[NoHealthyEndpoint] = []
        elapsed: list[float] = []
        for _ in range(4):
            started = time.perf_counter()
            with pytest.raises(NoHealthyEndpoint) as caught:
                await pool.get()
            elapsed.append(time.perf_counter() - started)
            errors.append(caught.value)
        # Each endpoint fails once per call; the third call's failures eject all three, so the
        # fourth call tries none and fails at once.
        assert [len(e.attempts) for e in errors] == [3, 3, 3, 0]
        assert [sorted(endpoint for endpoint, _ in e.attempts) for e in errors[:3]] == [
            sorted(addresses)
        ] * 3
        assert max(elapsed) < 0.5, elapsed  # refused at once, never connect_timeout=5
        assert sum(elapsed) < 0.5, elapsed
        message = str(errors[3])
        assert message.startswith("no healthy endpoint among 3: ")
        for address in addresses:
            assert f"{address} ejected for " in message
            assert "Connect call failed" in message
        assert "healthy (last error:" in str(errors[0])
        assert isinstance(errors[0], ConnectError)
        assert isinstance(errors[0], ConnectionError)
        stats = pool.stats()
        assert [(e.failures, e.ejections, e.state) for e in stats.endpoints] == [
            (3, 1, "ejected")
        ] * 3
        assert stats.connect_failures == 4


async def test_one_probe_decides_for_many_callers() -> None:
    events = Events()
    async with echo_servers() as servers:
        a, b, c = (s.address for s in servers)
        endpoints = Endpoints([a, b, c], eject_after=1, base_ejection=0.05, max_ejection=1.0)
        async with Pool(endpoints, max_size=20, on_event=events) as pool:
            port = servers[1].port
            await servers[1].stop()
            for _ in range(3):  # round robin reaches b within three acquires
                async with pool.acquire():
                    pass
            assert [e.cooldown for e in events.of(EndpointEjected, b)] == [0.05]
            await eventually(lambda: state_of(pool, b) == "half_open")
            # Ten callers at once, most needing a new connection: exactly one of them probes b.
            conns = await asyncio.gather(*(pool.get() for _ in range(10)))
            stats = {e.endpoint: e for e in pool.stats().endpoints}
            assert (stats[b].failures, stats[b].ejections, stats[b].state) == (2, 2, "ejected")
            assert [e.cooldown for e in events.of(EndpointEjected, b)] == [0.05, 0.1]
            assert b not in {conn.target for conn in conns}
            for conn in conns:
                await serve(conn, b"ok\n")
                await pool.put(conn)
            async with EchoServer(host=HOSTS[1], port=port) as revived:
                await eventually(lambda: state_of(pool, b) == "half_open")
                held: list[Connection] = []
                while state_of(pool, b) != "healthy":
                    assert len(held) < 6  # round robin reaches b within three picks
                    held.append(await pool.get())
                assert held[-1].target == b  # the probe's connection serves its caller
                await revived.wait_open_count(1)
                assert revived.opened == 1
                assert len(events.of(EndpointRestored, b)) == 1
                await serve(held[-1], b"back\n")
                for conn in held:
                    await pool.put(conn)
                stats = {e.endpoint: e for e in pool.stats().endpoints}
                assert (stats[b].failures, stats[b].consecutive_failures) == (2, 0)
                assert (stats[b].open, stats[b].idle) == (1, 1)
                await pool.close()
                await all_closed(servers[0], servers[2], revived)


async def test_events_name_the_pool() -> None:
    events = Events()
    (dead,) = await dead_addresses(1)
    endpoints = Endpoints([dead], eject_after=1)
    async with Pool(endpoints, on_event=events, name="orders-db") as pool:
        with pytest.raises(NoHealthyEndpoint):
            await pool.get()
    (ejected,) = events.of(EndpointEjected)
    assert (ejected.pool, ejected.endpoint, ejected.failures, ejected.cooldown) == (
        "orders-db",
        dead,
        1,
        1.0,
    )


# -- the breaker alone, on a fake clock -----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cooldown_doubles_per_failed_probe_up_to_max_ejection_and_resets_on_success() -> None:
    clock = Clock()
    breaker = Breaker(BreakerPolicy(eject_after=2, base_ejection=1.0, max_ejection=5.0), clock)
    assert breaker.failed("e1", probe=breaker.begin()) is None
    ejection = breaker.failed("e2", probe=breaker.begin())
    assert ejection is not None
    assert (ejection.failures, ejection.cooldown, breaker.state) == (2, 1.0, "ejected")
    cooldowns = [ejection.cooldown]
    for _ in range(4):
        assert not breaker.can_attempt()
        clock.now += breaker.remaining
        assert breaker.state == "half_open"
        assert breaker.can_attempt()
        probe = breaker.begin()
        assert probe
        assert not breaker.can_attempt()  # exactly one probe at a time
        ejection = breaker.failed("still down", probe)
        assert ejection is not None
        cooldowns.append(ejection.cooldown)
    assert cooldowns == [1.0, 2.0, 4.0, 5.0, 5.0]
    clock.now += breaker.remaining
    assert breaker.succeeded(breaker.begin())  # the probe succeeded: healthy again
    assert (breaker.state, breaker.consecutive, breaker.ejections) == ("healthy", 0, 5)
    breaker.failed("x", probe=False)
    ejection = breaker.failed("y", probe=False)
    assert ejection is not None
    assert ejection.cooldown == 1.0  # a fresh streak starts from base_ejection


def test_interrupted_probe_lets_the_next_caller_probe() -> None:
    clock = Clock()
    breaker = Breaker(BreakerPolicy(eject_after=1, base_ejection=1.0), clock)
    breaker.failed("down", probe=False)
    clock.now += 1.0
    probe = breaker.begin()
    breaker.cancelled(probe)
    assert breaker.can_attempt()
    assert breaker.state == "half_open"


def test_outcomes_of_attempts_begun_before_the_ejection_change_no_state() -> None:
    clock = Clock()
    breaker = Breaker(BreakerPolicy(eject_after=1, base_ejection=1.0), clock)
    breaker.failed("first", probe=False)
    assert breaker.failed("late", probe=False) is None
    assert not breaker.succeeded(probe=False)
    assert (breaker.state, breaker.failures, breaker.ejections) == ("ejected", 2, 1)
    assert breaker.last_error == "late"


def test_failure_ratio_ejects_on_a_share_of_the_window() -> None:
    clock = Clock()
    policy = BreakerPolicy(eject_after=None, failure_ratio=(0.5, 4), base_ejection=1.0)
    breaker = Breaker(policy, clock)
    outcomes: list[bool] = [True, False, True]  # fail, succeed, fail: window not yet full
    for failed in outcomes:
        if failed:
            assert breaker.failed("x", probe=False) is None
        else:
            assert not breaker.succeeded(probe=False)
    assert not breaker.succeeded(probe=False)  # F S F S: 2 of 4, but a success never ejects
    ejection = breaker.failed("x", probe=False)  # S F S F: 2 of the last 4 failed
    assert ejection is not None
    assert (ejection.failures, breaker.consecutive, breaker.state) == (2, 1, "ejected")


def test_without_eject_after_or_ratio_an_endpoint_is_never_ejected() -> None:
    breaker = Breaker(BreakerPolicy(eject_after=None), Clock())
    for _ in range(100):
        assert breaker.failed("x", probe=False) is None
    assert (breaker.state, breaker.consecutive) == ("healthy", 100)


async def test_a_restored_endpoint_gets_its_share_back_while_the_pool_stays_saturated() -> None:
    # 12 workers on 4 connections: every return is handed straight to a queued caller, so the
    # pool never has an idle connection to trade and never room to open one by itself.
    events = Events()
    async with echo_servers() as servers, AsyncExitStack() as stack:
        a, b = servers[0].address, servers[1].address
        endpoints = Endpoints([a, b], eject_after=1, base_ejection=0.05, max_ejection=0.05)
        async with Pool(endpoints, max_size=4, on_event=events, name="saturated") as pool:
            async with Load(pool, workers=12) as load:
                await load.until(lambda: load.served[b] > 0 and load.total >= 100)
                await load.pause()
                port = servers[1].port
                await servers[1].stop()  # b's connections see EOF and are discarded
                load.resume()
                await events.next(EndpointEjected, b)
                await load.more(200)
                assert [e.open for e in pool.stats().endpoints] == [4, 0]
                revived = await stack.enter_async_context(EchoServer(host=HOSTS[1], port=port))
                assert pool.stats().waiting > 0  # saturated: callers queue
                await events.next(EndpointRestored, b)
                served_b = load.served[b]
                await load.until(lambda: load.served[b] > served_b + 100)
                await load.until(lambda: [e.open for e in pool.stats().endpoints] == [2, 2])
                rebalanced = pool.stats().discarded.rebalanced
                await load.more(300)  # balanced: no more churn
                stats = pool.stats()
                assert stats.waiting > 0
            assert load.errors == []
        assert [e.open for e in stats.endpoints] == [2, 2]
        assert stats.discarded.rebalanced == rebalanced
        # One move for b's probe, one for a's third connection: exactly two while b answers,
        # plus one per half-open probe made while b was still down (each failed over to a
        # within its connect, and ejected b again).
        failed_probes = len(events.of(EndpointEjected, b)) - 1
        assert rebalanced == 2 + failed_probes, (rebalanced, failed_probes)
        await all_closed(servers[0], revived)
