"""Number formatting for the Markdown tables."""

from __future__ import annotations

from collections.abc import Sequence

from .stats import median_span


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def seconds(value: float | None) -> str:
    """A duration with a unit that keeps three significant digits."""
    if value is None:
        return "—"
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def micros(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g} µs"


def size(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} B"


def span(values: Sequence[float], unit: str = "") -> str:
    """``lo-hi`` of the values, formatted like ``rate`` (or as ratios with ``unit="x"``)."""
    got = median_span(values)
    if got is None:
        return "—"
    _, lo, hi = got
    if unit == "x":
        return f"{lo:.2f}\u2013{hi:.2f}\u00d7"
    if unit == "s":
        return f"{seconds(lo)} \u2013 {seconds(hi)}"
    return f"{lo:,.0f}\u2013{hi:,.0f}"


def median_ratio(values: Sequence[float]) -> str:
    """``0.44x (0.41-0.47x)``: the median ratio and its range over the rounds, in bold."""
    got = median_span(values)
    if got is None:
        return "—"
    mid, lo, hi = got
    return f"**{mid:.2f}\u00d7** ({lo:.2f}\u2013{hi:.2f}\u00d7)"
