"""One PNG per scenario (matplotlib, Agg backend): medians with min-max whiskers."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from .harness import Case

AIOCONN_COLOR = "#d62728"
FLOOR_COLOR = "#7f7f7f"
OTHER_COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def _color(key: str, index: int) -> str:
    if key == "aioconn":
        return AIOCONN_COLOR
    if key in ("floor", "raw", "sequential", "asyncpg", "blocking"):
        return FLOOR_COLOR
    return OTHER_COLORS[index % len(OTHER_COLORS)]


def _bars(ax: Axes, cases: Sequence[Case], metric: str, scale: float = 1.0) -> None:
    """Horizontal bars: one group per case, one bar per contender, whiskers min-max."""
    keys = list(dict.fromkeys(k for case in cases for k in case.cells))
    height = 0.8 / max(1, len(cases))
    for case_no, case in enumerate(cases):
        for index, key in enumerate(keys):
            cell = case.cells.get(key)
            values = [v * scale for v in cell.values(metric)] if cell else []
            if not values:
                continue
            mid = statistics.median(values)
            y = index + case_no * height - 0.4 + height / 2
            ax.barh(
                y,
                mid,
                height=height * 0.9,
                color=_color(key, index),
                alpha=1.0 if case_no == 0 else 0.55,
                xerr=[[mid - min(values)], [max(values) - mid]],
                capsize=2,
                label=case.name if index == 0 else None,
            )
    labels = []
    for key in keys:
        cell = next(case.cells[key] for case in cases if key in case.cells)
        labels.append(cell.label if cell.na is None else f"{cell.label} (n/a)")
    ax.set_yticks(range(len(keys)), labels, fontsize=8)
    if not ax.yaxis_inverted():  # first contender on top (a shared axis is inverted once)
        ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    if len(cases) > 1:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight": keeps a legend beside the axes
    plt.close(fig)


def bar_chart(
    path: Path,
    title: str,
    cases: Sequence[Case],
    metric: str,
    xlabel: str,
    *,
    scale: float = 1.0,
    log: bool = False,
) -> None:
    rows = len({k for case in cases for k in case.cells})
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * rows * max(1, len(cases)) ** 0.5))
    _bars(ax, cases, metric, scale)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    if log:
        ax.set_xscale("log")
    _save(fig, path)


def s2_chart(path: Path, case: Case) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    _bars(left, [case], "rate")
    left.set_title("S2 contended: cycles/s (higher is better)", fontsize=10)
    left.set_xlabel("acquire/sleep(0)/release cycles per second")
    _bars(right, [case], "wait_max", scale=1e3)
    right.set_title("S2: longest acquire wait (lower is better)", fontsize=10)
    right.set_xlabel("ms (log scale)")
    right.set_xscale("log")
    _save(fig, path)


def s5_chart(path: Path, cases: Sequence[Case]) -> None:
    queued = [c for c in cases if "waiters" in c.name]
    opening = [c for c in cases if c.name.startswith("open")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    keys = list(dict.fromkeys(k for case in queued for k in case.cells))
    for index, key in enumerate(keys):
        points = []
        for x, case in enumerate(queued):
            cell = case.cells.get(key)
            value = cell.median("us_per_op") if cell else None
            if value is not None:
                points.append((x, value))
        if points:
            label = next(c.cells[key].label for c in queued if key in c.cells)
            left.plot(*zip(*points, strict=True), marker="o", label=label, color=_color(key, index))
    left.set_xticks(range(len(queued)), [c.name.replace(", ", "\n") for c in queued], fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("µs per acquire+release (log scale)")
    left.set_title("S5: per-operation cost vs queued waiters and pool size", fontsize=10)
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    if opening:
        _bars(right, opening, "seconds", scale=1.0)
        right.set_title("S5: opening 1,000 connections (lower is better)", fontsize=10)
        right.set_xlabel("seconds")
        if len(opening) > 1:  # below the axes: beside them, it would squeeze the left chart
            right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    _save(fig, path)
