"""Endpoints' promises under many schedules: real concurrent tasks on an ExploringEventLoop.

Each seed runs one ``Pool`` over ``Endpoints.using`` three in-memory fake servers (no
sockets) with a strategy, ``max_per_endpoint`` and a circuit breaker drawn at random. Workers
acquire (blocks and get/put), hold, fail, time out and are cancelled; a chaos task takes
servers down (sometimes killing their connections) and brings them back, drains an endpoint
and changes the set, so that ejections, half-open probes, failover within one ``connect()``,
``max_per_endpoint`` waits and rebalancing on return all happen; then the pool is closed with
a timeout while the work still runs.

After **every loop iteration** the pool's books (``Pool.check_invariants``) and the endpoints'
are checked against what the fake servers have: per endpoint, ``Endpoints``' count of open
connections is what the server has open, never more than ``max_per_endpoint`` open or
opening; the per-endpoint in-use and idle counts add up to the pool's. Each connect the fake
servers see is checked as it starts: never to an endpoint that is ejected (cool-down not over)
or draining, never while that endpoint's half-open probe is in flight, never to an endpoint
the same ``connect()`` tried already. An outside oracle checks what callers see: no resource
held by two callers at once, none handed out after its close began, none closed under its
holder while the pool is open, each closed exactly once, ``close()`` keeps its bound, nothing
left open anywhere after it.

The test also counts, over its seeds, how often the paths under test were reached and fails
if one never was (over the default seed count), so that it cannot pass vacuously; the counts
are shown at the end of the run. ``--aioconn-explore-seeds=N`` runs more seeds.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aioconn
from aioconn import Backoff, Endpoints, NoHealthyEndpoint, Pool
from aioconn.events import EndpointEjected, EndpointRestored, PoolEvent
from aioconn.testing import on_every_iteration
from aioconn.testing._explore_plugin import Explorer

GRACE = 0.5 + 0.3  # close(timeout) returns within its timeout + 0.5 s (+ slack for CI)
KEYS = ("a:1", "b:1", "c:1")
STRATEGIES = ("round_robin", "random", "least_in_use", "p2c", "primary")
COVERAGE_SEEDS = 30  # the default seed count (aioconn_explore_seeds): enough to reach each path
# The paths every run of COVERAGE_SEEDS or more seeds must reach (see Tally).
MUST_REACH = (
    "ejections",
    "restores",
    "probes",
    "failed probes",
    "failovers",
    "served after failover",
    "rebalanced",
    "no healthy endpoint",
    "seeds at max_per_endpoint",
    "drains",
    "updates",
)


@dataclass(eq=False)
class Res:
    """One connection to a fake server (hashed by identity, as Endpoints keys its members)."""

    endpoint: str
    number: int
    broken: bool = False  # its server died: is_reusable and check say no
    closing: bool = False  # close() or abort() was called: the connector forgot it
    closed: bool = False
    close_calls: int = 0
    abort_calls: int = 0

    def __repr__(self) -> str:
        state = " closed" if self.closed else " closing" if self.closing else ""
        return f"<Res {self.endpoint}#{self.number}{state}>"


class Tally(Counter[str]):
    """How often each path under test was reached, summed over the seeds of a run."""

    def summary(self) -> str:
        return ", ".join(f"{name} {self[name]}" for name in ("seeds", *MUST_REACH, "iterations"))


class World:
    """One seed's fake servers, what they saw, and the violations they noticed.

    A violation noticed inside ``connect()`` is recorded, not raised: ``Endpoints`` counts
    what a connect raises as a failed attempt and fails over. The per-iteration check raises it.
    """

    def __init__(self, rng: random.Random, tally: Tally) -> None:
        self.rng = rng
        self.tally = tally
        self.servers: dict[str, FakeServer] = {}
        self.endpoints: Endpoints[Any] | None = None
        self.violations: list[str] = []
        # The endpoints each connect() tried, by the pool task that called it (one call each).
        self.attempts: dict[asyncio.Task[Any], list[str]] = {}

    def make(self, *, host: str, port: int) -> FakeServer:
        """The connector factory ``Endpoints.using`` calls once per endpoint."""
        server = FakeServer(self, f"{host}:{port}")
        self.servers[server.key] = server
        return server

    def state_of(self, key: str) -> str | None:
        """The endpoint's state as ``Endpoints`` reports it now (None: no longer listed)."""
        assert self.endpoints is not None
        for entry in self.endpoints.endpoint_stats():
            if entry.endpoint == key:
                return entry.state
        return None

    def pause(self) -> float:
        return self.rng.choice([0, 0, 0.001, 0.003])


class FakeServer:
    """The connector of one endpoint; ``up`` False refuses connects."""

    def __init__(self, world: World, key: str) -> None:
        self.world = world
        self.key = key
        self.up = True
        self.made: list[Res] = []
        self.connecting = 0  # connects in flight
        self.probing = False  # a connect that began while the endpoint was half-open is in flight

    def live(self) -> list[Res]:
        """Connections made and not yet closed nor being closed."""
        return [r for r in self.made if not r.closing]

    async def connect(self) -> Res:
        world = self.world
        # What Endpoints decided just before calling here, in the same step: read it now.
        state = world.state_of(self.key)
        if state not in ("healthy", "half_open"):
            world.violations.append(f"a connect to {self.key} began while it was {state}")
        if self.probing:
            world.violations.append(f"a connect to {self.key} began during its half-open probe")
        task = asyncio.current_task()
        assert task is not None
        tried = world.attempts.setdefault(task, [])
        if self.key in tried:
            world.violations.append(f"one connect() tried {self.key} twice: {tried}")
        if tried:
            world.tally["failovers"] += 1
        tried.append(self.key)
        probe = state == "half_open"
        if probe:
            self.probing = True
            world.tally["probes"] += 1
        self.connecting += 1
        try:
            if world.rng.random() < 0.02:
                await asyncio.Event().wait()  # hangs until the pool's connect_timeout ends it
            await asyncio.sleep(world.pause())
            if not self.up:
                if probe:
                    world.tally["failed probes"] += 1
                raise ConnectionRefusedError(111, f"{self.key} is down")
            resource = Res(self.key, len(self.made) + 1)
            self.made.append(resource)
            if len(tried) > 1:
                world.tally["served after failover"] += 1
            return resource
        finally:
            self.connecting -= 1
            if probe:
                self.probing = False

    async def close(self, resource: Res) -> None:
        resource.close_calls += 1
        resource.closing = True
        try:
            await asyncio.sleep(self.world.pause())
        finally:
            resource.closed = True  # the connection is gone whatever the close says

    def abort(self, resource: Res) -> None:
        resource.abort_calls += 1
        resource.closing = resource.closed = True

    def is_reusable(self, resource: Res) -> bool:
        return not (resource.broken or resource.closing)

    async def check(self, resource: Res) -> bool:
        await asyncio.sleep(0)
        return not (resource.broken or resource.closing)

    def kill_connections(self) -> None:
        """The server died: every connection it had is dead (the pool finds out on use)."""
        for resource in self.live():
            resource.broken = True


class Oracle:
    """What callers see, checked from outside the pool."""

    def __init__(self, endpoint_of: Callable[[Any], str]) -> None:
        self.endpoint_of = endpoint_of
        self.held: dict[int, str] = {}

    def take(self, resource: Res, who: str) -> None:
        assert not resource.closing, f"{who} got {resource}, whose close had begun"
        other = self.held.get(id(resource))
        assert other is None, f"{resource} held by {other} and {who} at once"
        assert self.endpoint_of(resource) == resource.endpoint, (resource, "endpoint_of")
        self.held[id(resource)] = who

    def drop(self, resource: Res) -> None:
        self.held.pop(id(resource), None)


EXPECTED = (aioconn.PoolError, aioconn.ConnectError, OSError, TimeoutError, ValueError)


def check_endpoints(pool: Pool[Any], world: World, cap: int | None, seen: set[str]) -> None:
    """The endpoints' books against the fake servers' and the pool's (every iteration)."""
    assert not world.violations, world.violations
    stats = pool.stats()
    listed = set()
    opened = in_use = idle = 0
    for entry in stats.endpoints:
        listed.add(entry.endpoint)
        live = len(world.servers[entry.endpoint].live())
        assert entry.open == live, f"{entry.endpoint}: Endpoints counts {entry.open}, has {live}"
        assert min(entry.in_use, entry.idle) >= 0, entry
        assert entry.in_use + entry.idle <= entry.open, entry
        opened += entry.open
        in_use += entry.in_use
        idle += entry.idle
    for key, server in world.servers.items():
        busy = len(server.live()) + server.connecting
        if key not in listed:  # removed, and forgotten once its last connection closed
            assert busy == 0, f"{key} is no longer listed but has {busy} open or opening"
        if cap is not None:
            assert busy <= cap, f"{key}: {busy} open or opening, max_per_endpoint={cap}"
            if busy == cap:
                seen.add("at max_per_endpoint")
    if not pool.closed:
        # Each connection the pool holds is one Endpoints counts (those it discarded count
        # until their close begins); those lent out and idle are counted alike by both.
        assert opened >= stats.size - stats.opening, (opened, stats)
        assert (in_use, idle) == (stats.in_use, stats.idle), (in_use, idle, stats)


async def endpoints_storm(seed: int, tally: Tally, *, workers: int = 8, steps: int = 10) -> None:
    rng = random.Random(seed)
    world = World(rng, tally)
    cap = rng.choice([None, 1, 2, 2])
    base_ejection = rng.choice([0.002, 0.005, 0.01])
    endpoints = Endpoints.using(
        world.make,
        list(KEYS),
        strategy=rng.choice(STRATEGIES),
        max_per_endpoint=cap,
        eject_after=rng.choice([1, 2, 3]),
        failure_ratio=rng.choice([None, (0.5, 4)]),
        base_ejection=base_ejection,
        max_ejection=rng.choice([base_ejection, 0.02]),
        seed=seed,
    )
    world.endpoints = endpoints
    events: list[PoolEvent] = []
    close_timeout = rng.choice([0.005, 0.03, 0.2])
    oracle = Oracle(endpoints.endpoint_of)
    pool = Pool(
        endpoints,
        max_size=rng.randint(3, 6),
        min_size=rng.choice([0, 1]),
        acquire_timeout=rng.choice([0.05, 0.1, 0.2]),
        connect_timeout=0.02,  # ends the connects that hang
        check_timeout=0.02,
        close_timeout=0.02,
        keepalive_interval=rng.choice([None, 0.005]),
        max_idle=None,
        max_lifetime=rng.choice([None, 0.03]),
        slow_acquire_threshold=None,
        connect_backoff=rng.choice(
            [None, Backoff(initial=0.002, maximum=0.01, after=1), Backoff(initial=0.005)]
        ),
        reconnect_timeout=rng.choice([None, 0.01]),
        on_event=events.append,
        name=f"endpoints-{seed}",
    )
    tally["seeds"] += 1
    try:
        await pool.open()
    except (aioconn.ConnectError, OSError):
        tally["open failed"] += 1
        return  # min_size could not be opened (a connect hung): the pool closed itself
    seen: set[str] = set()
    on_every_iteration(pool.check_invariants)
    on_every_iteration(lambda: check_endpoints(pool, world, cap, seen))

    async def hold(resource: Res, who: str, fail: bool) -> None:
        oracle.take(resource, who)
        try:
            await asyncio.sleep(rng.choice([0, 0, 0.001, 0.002]))
            assert pool.closed or not resource.closed, f"{resource} closed under {who}"
            if fail:
                raise ValueError("the caller's own error")
        finally:
            oracle.drop(resource)

    async def worker(name: str) -> None:
        for _ in range(steps):
            roll = rng.random()
            timeout = rng.choice([None, 0.005, 0.02])
            try:
                if roll < 0.5:
                    async with pool.acquire(timeout=timeout) as resource:
                        await hold(resource, name, rng.random() < 0.15)
                elif roll < 0.7:
                    resource = await pool.get(timeout=timeout)
                    try:
                        await hold(resource, name, False)
                    finally:
                        await pool.put(resource, discard=rng.random() < 0.15)
                elif roll < 0.85:
                    async with asyncio.timeout(rng.choice([0.001, 0.005])):
                        async with pool.acquire() as resource:
                            await hold(resource, name, False)
                            await asyncio.sleep(0.01)
                else:
                    await asyncio.sleep(rng.choice([0, 0.001]))
            except NoHealthyEndpoint:
                tally["no healthy endpoint"] += 1
            except EXPECTED:
                pass
            except RuntimeError as exc:
                if not pool.closed:
                    raise AssertionError(f"{name}: {exc!r}") from exc

    tasks = [asyncio.create_task(worker(f"w{i}")) for i in range(workers)]

    async def canceller() -> None:
        for _ in range(3):
            await asyncio.sleep(rng.choice([0, 0.002, 0.005]))
            rng.choice(tasks).cancel()

    async def chaos() -> None:
        servers = list(world.servers.values())
        for _ in range(rng.randint(3, 8)):
            await asyncio.sleep(rng.choice([0.001, 0.003, 0.006]))
            if pool.closed:
                return
            roll = rng.random()
            server = rng.choice(servers)
            if roll < 0.75:
                server.up = not server.up  # it goes down or comes back
                if not server.up and rng.random() < 0.5:
                    server.kill_connections()
            elif roll < 0.85:
                pool.drain(server.key)  # out of rotation until listed again
                tally["drains"] += 1
            else:
                keep = [key for key in KEYS if rng.random() < 0.7] or [server.key]
                pool.update_endpoints(keep)
                tally["updates"] += 1
        await asyncio.sleep(rng.choice([0, 0.003]))
        if pool.closed:
            return
        for server in servers:  # everything back: the ejected ones are probed back in
            server.up = True
        pool.update_endpoints(list(KEYS))

    background = [asyncio.create_task(canceller()), asyncio.create_task(chaos())]
    await asyncio.sleep(rng.choice([0.01, 0.03, 0.06]))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pool.close(timeout=close_timeout)  # while the workers still run
    took = loop.time() - started
    assert took <= close_timeout + GRACE, f"close(timeout={close_timeout}) took {took:.3f} s"
    results = await asyncio.gather(*tasks, *background, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(
            result, (asyncio.CancelledError, *EXPECTED)
        ):
            raise result
    pool.check_invariants()
    check_endpoints(pool, world, cap, seen)
    stats = pool.stats()
    assert (stats.size, stats.idle, stats.in_use, stats.waiting, stats.opening) == (0, 0, 0, 0, 0)
    for entry in stats.endpoints:
        assert (entry.open, entry.in_use, entry.idle) == (0, 0, 0), entry
    for server in world.servers.values():
        assert server.connecting == 0, f"{server.key}: {server.connecting} connects still run"
        for resource in server.made:
            assert resource.closed, f"{resource} was never closed"
            calls = resource.close_calls + resource.abort_calls
            assert calls == 1, f"{resource}: closed {resource.close_calls}x, aborted" + (
                f" {resource.abort_calls}x"
            )
    tally["ejections"] += sum(isinstance(e, EndpointEjected) for e in events)
    tally["restores"] += sum(isinstance(e, EndpointRestored) for e in events)
    tally["rebalanced"] += stats.discarded.rebalanced
    tally["seeds at max_per_endpoint"] += "at max_per_endpoint" in seen
    loop_iterations = getattr(loop, "iterations", 0)
    tally["iterations"] += loop_iterations


def test_endpoints_keep_their_promises_under_explored_schedules(
    explore_schedules: Explorer, record_property: Callable[[str, object], None]
) -> None:
    seeds = iter(explore_schedules.seeds)
    tally = Tally()

    async def scenario() -> None:
        await endpoints_storm(next(seeds), tally)

    assert explore_schedules(scenario, defer=0.05) == len(explore_schedules.seeds)
    summary = tally.summary()
    record_property("summary", f"Endpoints explored: {summary}")
    if len(explore_schedules.seeds) >= COVERAGE_SEEDS:  # one replayed seed need not reach all
        missing = [name for name in MUST_REACH if tally[name] == 0]
        assert not missing, f"never reached: {', '.join(missing)} ({summary})"
