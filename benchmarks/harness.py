"""Interleaved rounds: every contender once per round, in an order rotated each round.

Each measurement runs in a forked child process, in a fresh event loop (the default one, or
uvloop), under a time budget; a contender that fails or overruns is reported as n/a with the
reason and skipped in later rounds. A ``CheckFailed`` is recorded in the case's ``failures``:
the runner writes the report, then exits 1.
"""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import select
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .checks import CheckFailed, NotApplicable

Metrics = dict[str, float]


@dataclass
class Cell:
    """All rounds of one contender in one case of one scenario."""

    label: str
    samples: list[Metrics | None] = field(default_factory=list)  # index = round; None: missing
    na: str | None = None

    def values(self, metric: str) -> list[float]:
        return [s[metric] for s in self.samples if s is not None and metric in s]

    def median(self, metric: str) -> float | None:
        values = self.values(metric)
        return statistics.median(values) if values else None


@dataclass
class Case:
    """One configuration of a scenario (e.g. S3 on uvloop), with a cell per contender."""

    scenario: str
    name: str
    cells: dict[str, Cell] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def ratios(
        self, key: str, metric: str, base: str, *, higher_is_better: bool = True
    ) -> list[float]:
        """Per-round ratio of ``key`` to ``base`` on ``metric`` (>1: ``key`` does better)."""
        mine, theirs = self.cells.get(key), self.cells.get(base)
        if mine is None or theirs is None:
            return []
        out = []
        for a, b in zip(mine.samples, theirs.samples, strict=False):
            if a is None or b is None or not a.get(metric) or not b.get(metric):
                continue
            out.append(a[metric] / b[metric] if higher_is_better else b[metric] / a[metric])
        return out


def loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def run_once(
    make: Callable[[], Awaitable[Metrics]], *, loop: str = "asyncio", budget: float = 60.0
) -> Metrics:
    """Run one measurement in a forked child process, in a fresh event loop.

    The child starts from the same warm interpreter (nothing to import again), its garbage
    never reaches the next measurement, and it exits with ``os._exit`` without tearing its loop
    down: cancelling 100,000 tasks queued on some pools' locks is quadratic, and a pool that
    shields its cleanup can wait forever. ``NotApplicable`` if it overruns ``budget`` seconds.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report, exit at once
        os.close(read_end)
        outcome: tuple[str, Any]
        try:
            outcome = ("ok", _measure(make, loop, budget))
        except NotApplicable as exc:
            outcome = ("na", str(exc))
        except CheckFailed as exc:
            outcome = ("check", str(exc))
        except BaseException as exc:
            outcome = ("error", f"{type(exc).__name__}: {exc}")
        with os.fdopen(write_end, "wb") as pipe:
            pickle.dump(outcome, pipe)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        if not select.select([pipe], [], [], budget + CHILD_GRACE)[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise NotApplicable(f"did not finish within its {budget:g} s budget (killed)")
        data = pipe.read()
    os.waitpid(pid, 0)
    if not data:
        raise RuntimeError("the measuring process died without a result")
    kind, value = pickle.loads(data)
    if kind == "ok":
        return value  # type: ignore[no-any-return]
    raise {"na": NotApplicable, "check": CheckFailed}.get(kind, RuntimeError)(value)


CHILD_GRACE = 10.0  # seconds past the budget before the child is killed


def _measure(make: Callable[[], Awaitable[Metrics]], loop: str, budget: float) -> Metrics:
    # Freeze the harness's own objects out of the collector: what the garbage collector costs
    # then depends on the contender's allocations, not on what the harness has imported.
    gc.collect()
    gc.freeze()
    factory = loop_factory(loop)
    event_loop = factory() if factory is not None else asyncio.new_event_loop()
    task = event_loop.create_task(make())
    event_loop.run_until_complete(asyncio.wait([task], timeout=budget))
    if not task.done():
        raise NotApplicable(f"did not finish within its {budget:g} s budget")
    return task.result()


def run_inline(make: Callable[[], Awaitable[Any]], *, loop: str = "asyncio") -> Any:
    """Run a coroutine in a fresh loop in this process (for profiling and the probes)."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(make())


def interleave(
    case: Case,
    contenders: Sequence[Any],
    rounds: int,
    measure: Callable[[Any, int], Metrics],
    *,
    progress: Callable[[str], None] = print,
) -> Case:
    """Measure each contender once per round, rotating the order, into ``case``."""
    for contender in contenders:
        case.cells.setdefault(contender.key, Cell(contender.label))
    started = time.perf_counter()
    for round_no in range(rounds):
        shift = round_no % len(contenders)
        order = list(contenders[shift:]) + list(contenders[:shift])
        for contender in order:
            cell = case.cells[contender.key]
            sample: Metrics | None = None
            if cell.na is None:
                try:
                    sample = measure(contender, round_no)
                except NotApplicable as exc:
                    cell.na = str(exc)
                except CheckFailed as exc:
                    case.failures.append(f"round {round_no + 1}: {exc}")
                    cell.na = f"FAILED a correctness check: {exc}"
                except Exception as exc:
                    cell.na = f"{type(exc).__name__}: {exc}"[:300]
            cell.samples.append(sample)
    progress(f"  {case.scenario} {case.name}: {time.perf_counter() - started:.1f} s")
    return case
