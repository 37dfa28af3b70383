"""The pool's promises under many schedules: real concurrent tasks on an ExploringEventLoop.

Each seed runs workers that acquire (blocks and get/put), hold, fail, time out, are
cancelled, put twice, resize — against a connector whose every hook may succeed, fail, raise
a ``BaseException`` or hang — and then closes the pool with a timeout while they still run.
The books are checked after **every loop iteration** (``Pool.check_invariants``), and an
outside oracle checks what callers see: no resource is held by two callers at once, none is
used after it was closed, every one is closed exactly once, ``close()`` keeps its bound.

``make explore`` runs the same test under many more seeds.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import aioconn
from aioconn import Backoff, Pool
from aioconn.testing import on_every_iteration
from aioconn.testing._explore_plugin import Explorer

GRACE = 0.5 + 0.3  # close(timeout) returns within its timeout + 0.5 s (+ slack for CI)


class Boom(BaseException):
    """A hook raising something that is not an Exception."""


@dataclass(eq=False)
class Res:
    number: int
    closed: bool = False
    close_calls: int = 0
    abort_calls: int = 0

    def __repr__(self) -> str:
        return f"<Res #{self.number}{' closed' if self.closed else ''}>"


class ChaosConnector:
    """Every hook may pass, fail, raise ``Boom`` or hang (the pool must bound it)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.made: list[Res] = []
        self.down = False  # the server is down: every connect is refused

    async def _hook(self, name: str) -> None:
        if name == "connect" and self.down:
            raise ConnectionRefusedError(111, "down")
        roll = self.rng.random()
        if roll < 0.05:
            raise OSError(f"{name} failed")
        if roll < 0.07:
            raise Boom(name)
        if roll < 0.09:
            await asyncio.Event().wait()  # hangs until the pool's bound cancels it
        if roll < 0.5:
            await asyncio.sleep(0)

    async def connect(self) -> Res:
        await self._hook("connect")
        resource = Res(len(self.made) + 1)
        self.made.append(resource)
        return resource

    async def close(self, resource: Res) -> None:
        resource.close_calls += 1
        try:
            await self._hook("close")
        finally:
            resource.closed = True  # the connection is gone whatever the close says

    def abort(self, resource: Res) -> None:
        resource.abort_calls += 1
        resource.closed = True

    async def check(self, resource: Res) -> bool:
        await self._hook("check")
        return not resource.closed

    async def reset(self, resource: Res) -> None:
        await self._hook("reset")

    async def recover(self, resource: Res, exc: BaseException) -> bool:
        await self._hook("recover")
        return self.rng.random() < 0.7

    def is_reusable(self, resource: Res) -> bool:
        if self.rng.random() < 0.02:
            raise ValueError("is_reusable raised")
        return not resource.closed


class Oracle:
    """What callers see, checked from outside the pool."""

    def __init__(self) -> None:
        self.held: dict[int, str] = {}
        self.uses = 0

    def take(self, resource: Res, who: str) -> None:
        assert not resource.closed, f"{who} got {resource}, already closed"
        other = self.held.get(resource.number)
        assert other is None, f"{resource} held by {other} and {who} at once"
        self.held[resource.number] = who
        self.uses += 1

    def drop(self, resource: Res) -> None:
        self.held.pop(resource.number, None)


EXPECTED = (aioconn.PoolError, aioconn.ConnectError, OSError, TimeoutError, ValueError, Boom)


async def pool_storm(seed: int, *, workers: int = 10, steps: int = 12) -> None:
    rng = random.Random(seed)
    connector = ChaosConnector(rng)
    bound = rng.choice([0.01, 0.05])  # every hook's bound: hangs end at different times
    close_timeout = rng.choice([0.005, 0.03, 0.2])
    oracle = Oracle()
    pool = Pool(
        connector,
        max_size=3,
        min_size=rng.choice([0, 1]),
        acquire_timeout=0.3,
        connect_timeout=bound,
        check_timeout=bound,
        reset_timeout=bound,
        recover_timeout=bound,
        close_timeout=bound,
        check_after_idle=0.001,
        keepalive_interval=0.02,
        max_idle=None,
        max_lifetime=rng.choice([None, 0.05]),
        slow_acquire_threshold=None,
        connect_backoff=rng.choice(
            [None, Backoff(initial=0.002, maximum=0.01, after=1), Backoff(initial=0.005)]
        ),
        reconnect_timeout=rng.choice([None, 0.005]),
        name=f"storm-{seed}",
    )
    try:
        await pool.open()
    except (aioconn.ConnectError, OSError):
        return  # min_size could not be opened: the pool closed itself
    on_every_iteration(pool.check_invariants)

    async def hold(resource: Res, who: str, fail: bool) -> None:
        oracle.take(resource, who)
        try:
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            if fail:
                raise ValueError("the caller's own error")
        finally:
            oracle.drop(resource)

    async def worker(name: str) -> None:
        for _ in range(steps):
            roll = rng.random()
            timeout = rng.choice([None, 0.01, 0.05])
            try:
                if roll < 0.45:
                    async with pool.acquire(timeout=timeout) as resource:
                        await hold(resource, name, rng.random() < 0.2)
                elif roll < 0.65:
                    resource = await pool.get(timeout=timeout)
                    try:
                        await hold(resource, name, False)
                    finally:
                        await pool.put(resource, discard=rng.random() < 0.2)
                    try:
                        await pool.put(resource)
                    except (RuntimeError, ValueError):
                        pass  # a second put() is always refused
                    else:
                        raise AssertionError(f"a second put() of {resource} was accepted")
                elif roll < 0.85:
                    async with asyncio.timeout(rng.choice([0.001, 0.005])):
                        async with pool.acquire() as resource:
                            await hold(resource, name, False)
                            await asyncio.sleep(0.01)
                elif roll < 0.9:
                    pool.resize(max_size=rng.randint(1, 4))
                else:
                    await asyncio.sleep(rng.choice([0, 0.001]))
            except EXPECTED:
                pass
            except RuntimeError as exc:
                if not pool.closed:
                    raise AssertionError(f"{name}: {exc!r}") from exc

    tasks = [asyncio.create_task(worker(f"w{i}")) for i in range(workers)]

    async def canceller() -> None:
        for _ in range(4):
            await asyncio.sleep(rng.choice([0, 0.001, 0.003]))
            victim = rng.choice(tasks)
            victim.cancel()
            if rng.random() < 0.3:
                connector.down = not connector.down  # an outage begins or ends

    chaos = asyncio.create_task(canceller())
    await asyncio.sleep(rng.choice([0.005, 0.02, 0.05]))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pool.close(timeout=close_timeout)  # while the workers still run
    took = loop.time() - started
    assert took <= close_timeout + GRACE, f"close(timeout={close_timeout}) took {took:.3f} s"
    results = await asyncio.gather(*tasks, chaos, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(
            result, (asyncio.CancelledError, *EXPECTED)
        ):
            raise result
    pool.check_invariants()
    stats = pool.stats()
    assert (stats.size, stats.idle, stats.in_use, stats.waiting, stats.opening) == (0, 0, 0, 0, 0)
    for resource in connector.made:
        assert resource.closed, f"{resource} was never closed"
        assert resource.close_calls <= 1, f"{resource}: close() called {resource.close_calls}x"


def test_pool_keeps_its_promises_under_explored_schedules(explore_schedules: Explorer) -> None:
    seeds = iter(explore_schedules.seeds)

    async def scenario() -> None:
        await pool_storm(next(seeds))

    assert explore_schedules(scenario, defer=0.05) == len(explore_schedules.seeds)
