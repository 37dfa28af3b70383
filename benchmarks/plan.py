"""How much each scenario does: the full plan (issue #5's numbers) and the quick one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    name: str
    rounds: int  # rounds of the fast scenarios (S1, S2, S4)
    heavy_rounds: int  # rounds of the slow ones (S3, S5's opening of connections)
    s5_rounds: int  # rounds of S5's queued-waiter configurations
    s1_cycles: int = 100_000
    s2_tasks: int = 1_000
    s2_cycles: int = 20
    s3_workers: int = 64
    s3_requests: int = 1_000  # per worker
    s3_pool: int = 16
    s4_requests: int = 20_000
    s5_ops: int = 50_000  # timed acquire+release operations per configuration
    # (pool size, queued waiters) configurations
    s5_grid: tuple[tuple[int, int], ...] = tuple(
        (size, waiters) for size in (10, 1_000) for waiters in (10, 1_000, 100_000)
    )
    s5_open: int = 1_000
    s6_idle: int = 10_000
    s6_rounds: int = 2  # memory hardly varies between rounds
    s5_latency: float = 0.005  # seconds a ChaosProxy adds to each reply in S5's second opening
    s7_pool: int = 16  # S7 and S8: the same pool size and workers for every contender
    s7_workers: int = 64
    s7_queries: int = 300  # per worker
    s7_storm_workers: int = 32
    s7_storm_calls: int = 150  # per worker
    s8_pool: int = 16
    s8_workers: int = 64
    s8_pairs: int = 300  # SET+GET pairs per worker
    budget: float = 60.0  # seconds one measurement may take before it counts as n/a


FULL = Plan(name="full", rounds=5, heavy_rounds=3, s5_rounds=2)

QUICK = Plan(
    name="quick",
    rounds=3,
    heavy_rounds=2,
    s5_rounds=1,
    s1_cycles=20_000,
    s2_tasks=1_000,
    s2_cycles=5,
    s3_requests=250,
    s4_requests=10_000,
    s5_ops=20_000,
    # the queue-length sweep at pool size 10, the pool-size step at 1,000 waiters
    s5_grid=((10, 10), (10, 1_000), (10, 100_000), (1_000, 1_000)),
    s6_rounds=1,
    s7_queries=80,
    s7_storm_calls=40,
    s8_pairs=80,
    budget=10.0,
)
