"""Endpoints strategies: how 10,000 acquires spread over real loopback servers, and caps.

Acquires here are sequential (each connection is returned before the next acquire), so the
pool reuses idle connections and the strategy decides every acquire: the distribution measured
is the distribution of acquires, counted by ``conn.target``. Deterministic strategies are
asserted exactly; random ones within five binomial standard deviations (``five_sigma``).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest

from aioconn import Connection, Endpoint, Endpoints, Pool
from aioconn._balance import LeastInUse, PowerOfTwoChoices, SmoothRoundRobin
from aioconn.testing import EchoServer
from pool_helpers import until_waiting
from test_endpoints_support import all_closed, echo_servers, five_sigma, serve

N = 10_000
WEIGHTS = (1.0, 2.0, 3.0)


async def spread(pool: Pool[Connection], n: int = N) -> tuple[Counter[str], list[str]]:
    """``n`` sequential acquires: how many went to each endpoint, and the first 12 in order."""
    counts: Counter[str] = Counter()
    order: list[str] = []
    for i in range(n):
        async with pool.acquire() as conn:
            counts[conn.target] += 1
            if i < 12:
                order.append(conn.target)
        if i % 500 == 0:
            await asyncio.sleep(0)  # an acquire of an idle connection never yields: let others run
    return counts, order


def weighted(servers: list[EchoServer]) -> list[Endpoint]:
    return [Endpoint(s.address, weight=w) for s, w in zip(servers, WEIGHTS, strict=True)]


async def test_round_robin_follows_the_weights_exactly_and_smoothly() -> None:
    async with echo_servers() as servers:
        a, b, c = (s.address for s in servers)
        async with Pool(Endpoints(weighted(servers)), max_size=10) as pool:
            counts, order = await spread(pool)
            # nginx's smooth sequence for weights 1, 2, 3 is c b a c b c, repeated: no endpoint
            # gets two picks in a row more than its weight requires.
            assert order == [c, b, a, c, b, c] * 2
            # 10,000 = 1,666 rounds of 6 + the first four picks of a round (c b a c).
            assert counts == {a: 1666 + 1, b: 3332 + 1, c: 4998 + 2}
            assert [s.opened for s in servers] == [1, 1, 1]  # idle connections were reused
            stats = pool.stats()
            assert (stats.acquired, stats.created) == (N, 3)
        await all_closed(*servers)


async def test_least_in_use_breaks_ties_by_weighted_round_robin() -> None:
    # Sequential acquires find every endpoint at 0 in use: all tie, every time.
    async with echo_servers() as servers:
        a, b, c = (s.address for s in servers)
        async with Pool(Endpoints(weighted(servers), strategy="least_in_use"), max_size=10) as pool:
            counts, order = await spread(pool)
            assert order == [c, b, a, c, b, c] * 2
            assert counts == {a: 1667, b: 3333, c: 5000}
        await all_closed(*servers)


@pytest.mark.parametrize("strategy", ["random", "p2c"])
async def test_random_strategies_follow_the_weights_within_five_sigma(strategy: str) -> None:
    # p2c with nothing in use ties on every draw, and a tie goes to its first (weighted) draw:
    # its picks are then distributed exactly as "random"'s.
    async with echo_servers() as servers:
        endpoints = Endpoints(weighted(servers), strategy=strategy, seed=20240601)
        async with Pool(endpoints, max_size=10) as pool:
            counts, _ = await spread(pool)
        total = sum(WEIGHTS)
        for server, weight in zip(servers, WEIGHTS, strict=True):
            p = weight / total
            assert abs(counts[server.address] - N * p) <= five_sigma(N, p), (counts, p)
        assert sum(counts.values()) == N
        await all_closed(*servers)


async def test_primary_sends_everything_to_the_first_endpoint() -> None:
    async with echo_servers() as servers:
        a = servers[0].address
        async with Pool(Endpoints(weighted(servers), strategy="primary"), max_size=10) as pool:
            counts, _ = await spread(pool)
            assert counts == {a: N}
            assert [s.opened for s in servers] == [1, 0, 0]
        await all_closed(*servers)


async def hold(pool: Pool[Connection], n: int, stack: AsyncExitStack) -> Counter[str]:
    """Acquire ``n`` connections one after another and keep them (released by ``stack``)."""
    for _ in range(n):
        await stack.enter_async_context(pool.acquire())
    return Counter({e.endpoint: e.in_use for e in pool.stats().endpoints if e.in_use})


async def test_least_in_use_keeps_in_use_proportional_to_weight() -> None:
    async with echo_servers() as servers:
        a, b, c = (s.address for s in servers)
        async with Pool(Endpoints(weighted(servers), strategy="least_in_use"), max_size=12) as pool:
            async with AsyncExitStack() as stack:
                assert await hold(pool, 6, stack) == {a: 1, b: 2, c: 3}
                assert await hold(pool, 6, stack) == {a: 2, b: 4, c: 6}
            assert [s.open_count for s in servers] == [2, 4, 6]
        await all_closed(*servers)


async def test_p2c_takes_the_less_loaded_of_its_two_draws() -> None:
    # With two endpoints both are drawn every time, so p2c always takes the lower in_use/weight
    # (a tie may go either way): holding 8 connections, weights 1 and 3 end at exactly 2 and 6.
    async with echo_servers(2) as servers:
        a, b = (s.address for s in servers)
        endpoints = Endpoints(
            [Endpoint(a, weight=1), Endpoint(b, weight=3)], strategy="p2c", seed=7
        )
        async with Pool(endpoints, max_size=8) as pool:
            async with AsyncExitStack() as stack:
                assert await hold(pool, 8, stack) == {a: 2, b: 6}
        await all_closed(*servers)


async def test_max_per_endpoint_spills_over_in_order_with_primary() -> None:
    async with echo_servers() as servers:
        a, b, c = (s.address for s in servers)
        endpoints = Endpoints([a, b, c], strategy="primary", max_per_endpoint=2)
        async with Pool(endpoints, max_size=6) as pool:
            async with AsyncExitStack() as stack:
                assert await hold(pool, 5, stack) == {a: 2, b: 2, c: 1}
            # Back idle, the connections are reused first by primary: a's two, then b's.
            async with AsyncExitStack() as stack:
                assert await hold(pool, 3, stack) == {a: 2, b: 1}
            assert [s.opened for s in servers] == [2, 2, 1]
        await all_closed(*servers)


async def test_all_endpoints_at_their_cap_make_an_acquire_wait_for_a_release() -> None:
    async with echo_servers(2) as servers:
        a, b = (s.address for s in servers)
        endpoints = Endpoints([a, b], max_per_endpoint=1)
        async with Pool(endpoints, max_size=4) as pool:
            first = await pool.get()
            second = await pool.get()
            assert {first.target, second.target} == {a, b}
            third = asyncio.create_task(pool.get())
            await until_waiting(pool, 1)  # no endpoint has room: the opener waits for some
            assert [s.opened for s in servers] == [1, 1]
            await pool.put(first)  # goes straight to the waiter
            conn = await third
            assert conn is first
            await serve(conn, b"reused\n")
            await pool.put(conn)
            await pool.put(second)
            stats = pool.stats()
            assert [(e.open, e.in_use, e.idle) for e in stats.endpoints] == [(1, 0, 1), (1, 0, 1)]
            assert stats.created == 2
        await all_closed(*servers)


async def test_per_endpoint_weight_is_shown_in_stats_and_repr() -> None:
    async with echo_servers(2) as servers:
        a, b = (s.address for s in servers)
        endpoints = Endpoints([Endpoint(a, weight=2), b])
        assert (
            repr(endpoints) == f"<aioconn.Endpoints round_robin [{a} healthy 0/0, {b} healthy 0/0]>"
        )
        async with Pool(endpoints, max_size=2) as pool:
            async with pool.acquire():
                assert repr(endpoints) == (
                    f"<aioconn.Endpoints round_robin [{a} healthy 1/1, {b} healthy 0/0]>"
                )
            assert [(e.endpoint, e.weight) for e in pool.stats().endpoints] == [(a, 2.0), (b, 1.0)]
        assert endpoints.endpoints == (a, b)
        assert endpoints.strategy == "round_robin"
        await all_closed(*servers)


async def test_a_choice_the_pool_did_not_act_on_steers_at_most_one_connect() -> None:
    # choose_idle returning None asks the pool to open a connection to the chosen endpoint; when
    # the pool opens none (one under way will serve the caller), that wish must not pile up.
    async with echo_servers(2) as servers:
        a, b = (s.address for s in servers)
        endpoints = Endpoints([a, b])
        first = await endpoints.connect()
        assert first.target == a
        picks = [endpoints.choose_idle([first], can_open=True) for _ in range(9)]
        assert picks == [None, 0, None, 0, None, 0, None, 0, None]  # b (to open), a's idle, ...
        second = await endpoints.connect()  # the last wish: b
        third = await endpoints.connect()  # the strategy again, not a backlog of b
        assert [second.target, third.target] == [b, a]
        for conn in (first, second, third):
            await endpoints.close(conn)
        assert [e.open for e in endpoints.endpoint_stats()] == [0, 0]
        await all_closed(*servers)


# -- the strategies alone -------------------------------------------------------------------------


@dataclass(eq=False)
class Fake:
    """A stand-in endpoint for the strategies."""

    name: str
    weight: float = 1.0
    load: int = 0


def test_smooth_round_robin_interleaves_a_heavy_endpoint() -> None:
    a, b, c = Fake("a", 5), Fake("b"), Fake("c")
    strategy = SmoothRoundRobin()
    picks = [[a, b, c][strategy.pick([a, b, c])].name for _ in range(14)]
    assert picks == list("aabacaa") * 2  # nginx's documented sequence for 5, 1, 1


def test_smooth_round_robin_skips_an_endpoint_left_out_and_resumes_it() -> None:
    a, b, c = Fake("a"), Fake("b"), Fake("c")
    strategy = SmoothRoundRobin()
    assert [[a, b, c][strategy.pick([a, b, c])].name for _ in range(3)] == ["a", "b", "c"]
    assert [[a, c][strategy.pick([a, c])].name for _ in range(3)] == ["a", "c", "a"]
    # b kept its score while left out; c is owed the pick a took: c, then b, then a.
    assert [[a, b, c][strategy.pick([a, b, c])].name for _ in range(3)] == ["c", "b", "a"]


def test_least_in_use_compares_in_use_per_weight() -> None:
    a, b = Fake("a", weight=1, load=1), Fake("b", weight=3, load=2)
    assert LeastInUse().pick([a, b]) == 1  # 2/3 < 1/1
    b.load = 4
    assert LeastInUse().pick([a, b]) == 0  # 1/1 < 4/3


def test_p2c_never_takes_the_busier_of_two() -> None:
    idle, busy = Fake("idle"), Fake("busy", load=5)
    strategy = PowerOfTwoChoices(random.Random(1))
    assert {strategy.pick([busy, idle]) for _ in range(200)} == {1}
