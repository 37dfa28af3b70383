"""Where aioconn's pool spends its time in S1 and S2: cProfile, top functions by own time."""

from __future__ import annotations

import cProfile
import gc
import pstats
from dataclasses import dataclass
from pathlib import Path

from .contenders import Contender
from .harness import run_inline
from .plan import Plan
from .pool_scenarios import s1_uncontended, s2_contended


@dataclass(frozen=True)
class Hotspot:
    function: str
    calls: int
    own_seconds: float
    share: float  # of all profiled own time
    with_callees: float  # cumulative seconds (for a coroutine: summed over its resumptions)


def _name(file: str, line: int, function: str) -> str:
    if file == "~":  # a built-in
        return function
    path = Path(file)
    parts = path.parts
    for anchor in ("aioconn", "asyncio", "benchmarks"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            return f"{'/'.join(parts[index:])}:{line} {function}"
    return f"{path.name}:{line} {function}"


def profile(contender: Contender, plan: Plan, top: int = 12) -> dict[str, list[Hotspot]]:
    """Run S1 and S2 once each for ``contender`` under cProfile."""
    runs = {
        "S1": lambda: s1_uncontended(contender, plan.s1_cycles),
        "S2": lambda: s2_contended(contender, plan.s2_tasks, plan.s2_cycles),
    }
    found = {}
    for scenario, make in runs.items():
        gc.collect()
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            run_inline(make)
        finally:
            profiler.disable()
        raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        total = sum(entry[2] for entry in raw.values()) or 1.0
        ranked = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:top]
        found[scenario] = [
            Hotspot(_name(*key), entry[1], entry[2], entry[2] / total, entry[3])
            for key, entry in ranked
        ]
    return found
