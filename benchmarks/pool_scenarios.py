"""S1, S2, S5 (queued waiters) and S6: pools of trivial resources, no I/O."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from typing import Any

from .checks import CheckFailed, Fairness, Holds, check_exhaustion
from .contenders import Contender
from .harness import Case, Metrics, interleave, run_once
from .plan import Plan
from .resources import Trivial
from .stats import percentile

S1_SIZE = 10
S2_SIZE = 10


# -- S1: uncontended ---------------------------------------------------------------------------


async def s1_uncontended(contender: Contender, cycles: int, size: int = S1_SIZE) -> Metrics:
    """One task, ``cycles`` times ``async with pool.acquire(): pass`` on a warm pool."""
    resources = Trivial()
    pool = await contender.open(resources, size)
    acquire = pool.acquire
    started = time.perf_counter()
    for _ in range(cycles):
        async with acquire():
            pass
    elapsed = time.perf_counter() - started
    resources.check_alive(size, contender.label)
    await check_exhaustion(pool, size, contender.label)  # still sound after the run
    await pool.close()
    return {"rate": cycles / elapsed, "us_per_cycle": elapsed / cycles * 1e6}


def run_s1(plan: Plan, contenders: list[Contender]) -> list[Case]:
    case = Case("S1", "uncontended")
    interleave(
        case,
        contenders,
        plan.rounds,
        lambda c, _: run_once(lambda: s1_uncontended(c, plan.s1_cycles), budget=plan.budget),
    )
    return [case]


# -- S2: contended -----------------------------------------------------------------------------


async def s2_contended(
    contender: Contender, tasks: int, cycles: int, size: int = S2_SIZE
) -> Metrics:
    """``tasks`` tasks x ``cycles`` of acquire / ``sleep(0)`` / release on a pool of ``size``."""
    resources = Trivial()
    pool = await contender.open(resources, size)
    acquire = pool.acquire
    holds = Holds(size, contender.label)
    fairness = Fairness()
    waits: list[float] = []
    clock = time.perf_counter

    async def worker() -> None:
        for _ in range(cycles):
            ticket = fairness.start()
            asked = clock()
            async with acquire() as resource:
                waits.append(clock() - asked)
                fairness.served(ticket)
                holds.take(resource)
                await asyncio.sleep(0)
                holds.give(resource)

    started = clock()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    elapsed = clock() - started
    resources.check_alive(size, contender.label)
    if len(waits) != tasks * cycles:
        raise CheckFailed(f"{contender.label}: {len(waits)} acquires, expected {tasks * cycles}")
    await check_exhaustion(pool, size, contender.label)
    await pool.close()
    waits.sort()
    return {
        "rate": tasks * cycles / elapsed,
        "wait_p50": percentile(waits, 0.50),
        "wait_p99": percentile(waits, 0.99),
        "wait_max": waits[-1],
        "overtakes": float(fairness.overtakes),
    }


def run_s2(plan: Plan, contenders: list[Contender]) -> list[Case]:
    case = Case("S2", "contended")
    interleave(
        case,
        contenders,
        plan.rounds,
        lambda c, _: run_once(
            lambda: s2_contended(c, plan.s2_tasks, plan.s2_cycles), budget=plan.budget
        ),
    )
    return [case]


# -- S5: per-operation cost against queue length and pool size ----------------------------------


async def s5_queued(contender: Contender, size: int, waiters: int, ops: int) -> Metrics:
    """Per-op acquire+release cost with ``waiters`` tasks queued on a pool of ``size``.

    The main task holds all ``size`` resources and queues ``waiters`` tasks, then gives back one:
    that single resource circulates through the queue (each waiter acquires it, releases it and
    queues again after one ``sleep(0)``), so the queue stays about ``waiters - 1`` long and the
    pool keeps ``size`` resources in its books throughout. After a warm-up, ``ops`` operations
    are timed; every one of them is the same hand-off, whatever the queue length. Run it through
    ``run_once``: the measuring process exits with the waiters still queued (no teardown).
    """
    resources = Trivial()
    pool = await contender.open(resources, size)
    acquire = pool.acquire
    holds = Holds(size, contender.label)
    held = []
    for _ in range(size):
        lease = acquire()
        held.append((lease, await lease.__aenter__()))
    warm_up = min(waiters, 1_000)
    last = warm_up + ops
    count = 0
    marks: dict[str, float] = {}
    finished = asyncio.get_running_loop().create_future()
    clock = time.perf_counter

    async def waiter() -> None:
        nonlocal count
        while count < last:  # bounded: ``count`` grows with every operation
            async with acquire() as resource:
                holds.take(resource)
                count += 1
                if count == warm_up:
                    marks["start"] = clock()
                elif count == last:
                    marks["end"] = clock()
                    finished.set_result(None)
                holds.give(resource)
            # Step aside before asking again, as a task with other work would: otherwise a pool
            # that lets a caller barge hands the resource straight back to the one that released
            # it, and the queue behind is never served.
            await asyncio.sleep(0)

    tasks = [asyncio.ensure_future(waiter()) for _ in range(waiters)]
    for _ in range(5):  # let every waiter reach the pool's queue (some pools take a few steps)
        await asyncio.sleep(0)
    if any(task.done() for task in tasks):
        raise CheckFailed(f"{contender.label}: a waiter was served while all were held")
    lease, _ = held.pop()
    await lease.__aexit__(None, None, None)
    await finished
    resources.check_alive(size, contender.label)
    return {"us_per_op": (marks["end"] - marks["start"]) / ops * 1e6}


def run_s5_queued(plan: Plan, contenders: list[Contender]) -> list[Case]:
    cases = []
    for size, waiters in plan.s5_grid:
        case = Case("S5", f"pool {size:,}, {waiters:,} waiters")
        interleave(
            case,
            contenders,
            plan.s5_rounds,
            lambda c, _, s=size, w=waiters: run_once(
                lambda: s5_queued(c, s, w, plan.s5_ops), budget=plan.budget
            ),
        )
        cases.append(case)
    return cases


# -- S6: memory per idle pooled resource --------------------------------------------------------


async def s6_memory(contender: Contender, idle: int) -> Metrics:
    """tracemalloc bytes of pool bookkeeping per idle resource (the resources pre-allocated)."""
    await _warm_up(contender)  # imports and caches outside the measurement
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        alone: Any = [object() for _ in range(idle)]
        resource_bytes = tracemalloc.get_traced_memory()[0] - before
        resources = Trivial(premade=alone)  # the pool gets these objects, the list keeps them
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        pool = await contender.open(resources, idle)
        gc.collect()
        pool_bytes = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    await pool.close()
    return {
        "bytes_per_idle": pool_bytes / idle,
        "resource_bytes": resource_bytes / idle,
    }


async def _warm_up(contender: Contender) -> None:
    pool = await contender.open(Trivial(), 2)
    async with pool.acquire():
        pass
    await pool.close()


def run_s6(plan: Plan, contenders: list[Contender]) -> list[Case]:
    case = Case("S6", f"{plan.s6_idle:,} idle resources")
    interleave(
        case,
        contenders,
        plan.s6_rounds,
        lambda c, _: run_once(lambda: s6_memory(c, plan.s6_idle), budget=plan.budget * 4),
    )
    return [case]
