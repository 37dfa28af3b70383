"""Issue #5's targets for aioconn (and issue #11's for S5, S7, S8), and whether a run meets them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .harness import Case

AIOCONN = "aioconn"
FLOOR = "floor"


@dataclass(frozen=True)
class Verdict:
    scenario: str
    target: str
    measured: str
    met: bool | None  # None: not measured in this run
    margin: str


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _at_least(scenario: str, target: str, value: float | None, goal: float, what: str) -> Verdict:
    if value is None:
        return Verdict(scenario, target, "not measured", None, "—")
    met = value >= goal
    change = value / goal - 1
    margin = f"{change:+.0%} vs target" + (
        "" if met else f" (needs {goal / value:.2f}\u00d7 faster)"
    )
    return Verdict(scenario, target, f"{value:.2f}\u00d7 {what}", met, margin)


def _at_most(scenario: str, target: str, value: float | None, goal: float, shown: str) -> Verdict:
    if value is None:
        return Verdict(scenario, target, "not measured", None, "—")
    met = value <= goal
    return Verdict(scenario, target, shown, met, f"{value / goal - 1:+.0%} vs limit")


def s5_spread(cases: Sequence[Case], key: str) -> list[float]:
    """Per round: largest / smallest per-op cost of ``key`` over the queued-waiter cases."""
    queued = [c for c in cases if "waiters" in c.name]
    if not queued or any(key not in c.cells for c in queued):
        return []
    rounds = min(len(c.cells[key].samples) for c in queued)
    spreads = []
    for round_no in range(rounds):
        samples = [c.cells[key].samples[round_no] for c in queued]
        if all(s is not None for s in samples):
            costs = [s["us_per_op"] for s in samples if s is not None]
            spreads.append(max(costs) / min(costs))
    return spreads


def s5_open_speedup(cases: Sequence[Case]) -> list[float]:
    """Per round: sequential time / the pool's, opening through the latency of a ChaosProxy."""
    opening = [c for c in cases if c.name.startswith("open") and "latency" in c.name]
    if not opening:
        return []
    return opening[0].ratios("pool", "seconds", "sequential", higher_is_better=False)


def storm_totals(case: Case, key: str) -> tuple[int, int] | None:
    """(new server sessions, cancelled queries) of ``key`` summed over every round."""
    cell = case.cells.get(key)
    if cell is None or not cell.values("cancelled"):
        return None
    return int(sum(cell.values("new_sessions"))), int(sum(cell.values("cancelled")))


def _s7(cases: Sequence[Case]) -> list[Verdict]:
    verdicts = []
    select_1 = next((c for c in cases if c.name.startswith("SELECT 1")), None)
    for key, goal, what in (
        (AIOCONN, 2.0, "without reset"),
        ("aioconn_reset", 1.3, 'with reset="session"'),
    ):
        value = _median(select_1.ratios(key, "rate", "asyncpg")) if select_1 else None
        verdicts.append(
            _at_least(
                "S7", f"SELECT 1 {what} ≥ {goal:g}\u00d7 asyncpg's pool", value, goal, "asyncpg"
            )
        )
    storm = next((c for c in cases if "storm" in c.name), None)
    if storm is None:
        return verdicts
    mine = _median(storm.cells[AIOCONN].values("success")) if AIOCONN in storm.cells else None
    theirs = _median(storm.cells["asyncpg"].values("success")) if "asyncpg" in storm.cells else None
    if mine is None or theirs is None:
        verdicts.append(Verdict("S7", "storm success rate ≥ asyncpg's", "not measured", None, "—"))
    else:
        verdicts.append(
            Verdict(
                "S7",
                "storm success rate ≥ asyncpg's",
                f"{mine:.1%} vs asyncpg {theirs:.1%} (medians)",
                mine >= theirs,
                f"{(mine - theirs) * 100:+.1f} points",
            )
        )
    totals = storm_totals(storm, AIOCONN)
    if totals is None:
        verdicts.append(
            Verdict("S7", "≤ 1 new session per 100 cancelled queries", "not measured", None, "—")
        )
    else:
        new, cancelled = totals
        per_100 = 100 * new / cancelled if cancelled else 0.0
        verdicts.append(
            _at_most(
                "S7",
                "≤ 1 new session per 100 cancelled queries",
                per_100,
                1.0,
                f"{per_100:.2f} ({new} new for {cancelled:,} cancelled, all rounds)",
            )
        )
    return verdicts


def evaluate(results: dict[str, list[Case]]) -> list[Verdict]:
    verdicts: list[Verdict] = []
    if cases := results.get("S1"):
        value = _median(cases[0].ratios(AIOCONN, "rate", FLOOR))
        verdicts.append(_at_least("S1", "≥ 0.6\u00d7 floor", value, 0.6, "floor"))
    if cases := results.get("S2"):
        case = cases[0]
        verdicts.append(
            _at_least(
                "S2",
                "≥ 0.8\u00d7 floor",
                _median(case.ratios(AIOCONN, "rate", FLOOR)),
                0.8,
                "floor",
            )
        )
        # aioconn's longest wait over the floor's, per round (the higher_is_better=True ratio
        # of wait_max is simply aioconn / floor)
        worst = _median(case.ratios(AIOCONN, "wait_max", FLOOR))
        shown = "" if worst is None else f"{worst:.2f}\u00d7 floor's max wait"
        verdicts.append(_at_most("S2", "max wait ≤ 1.5\u00d7 floor's", worst, 1.5, shown))
        overtakes = case.cells[AIOCONN].values("overtakes") if AIOCONN in case.cells else []
        if overtakes:
            total = int(sum(overtakes))
            verdicts.append(
                Verdict(
                    "S2", "no overtakes", f"{total} in {len(overtakes)} rounds", total == 0, "—"
                )
            )
    for case in results.get("S3", []):
        loop = case.name.rsplit(", ", 1)[-1]
        value = _median(case.ratios(AIOCONN, "rate", FLOOR))
        verdicts.append(_at_least("S3", f"≥ 0.95\u00d7 floor ({loop})", value, 0.95, "floor"))
    for case in results.get("S4", []):
        loop = case.name.rsplit(", ", 1)[-1]
        value = _median(case.ratios(AIOCONN, "rate", "raw"))
        verdicts.append(_at_least("S4", f"≥ 0.9\u00d7 raw streams ({loop})", value, 0.9, "raw"))
    if cases := results.get("S5"):
        spread = _median(s5_spread(cases, AIOCONN))
        shown = "" if spread is None else f"{spread:.2f}\u00d7"
        verdicts.append(
            _at_most("S5", "largest/smallest per-op cost ≤ 1.5\u00d7", spread, 1.5, shown)
        )
        speedup = _median(s5_open_speedup(cases))
        verdicts.append(
            _at_least(
                "S5",
                "concurrent open through 5 ms latency ≥ 20\u00d7 faster than sequential",
                speedup,
                20.0,
                "faster",
            )
        )
    if cases := results.get("S6"):
        cell = cases[0].cells.get(AIOCONN)
        value = cell.median("bytes_per_idle") if cell else None
        shown = "" if value is None else f"{value:,.0f} B"
        verdicts.append(_at_most("S6", "< 2 KiB per idle connection", value, 2048, shown))
    if cases := results.get("S7"):
        verdicts += _s7(cases)
    if cases := results.get("S8"):
        value = _median(cases[0].ratios(AIOCONN, "rate", "blocking"))
        verdicts.append(
            _at_least(
                "S8",
                "Redis recipe ≥ 1.5\u00d7 redis-py (BlockingConnectionPool, same size)",
                value,
                1.5,
                "redis-py",
            )
        )
    return verdicts
