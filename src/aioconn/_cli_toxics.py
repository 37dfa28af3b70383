"""The toxic options of ``aioconn proxy``: parsing ``[DIR:]VALUE`` and building the toxics."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .testing import _toxics as toxics
from .testing._toxic_base import Direction, Toxic

_PREFIXES: dict[str, tuple[Direction, ...]] = {
    "up": ("upstream",),
    "down": ("downstream",),
    "both": ("upstream", "downstream"),
}
_BOTH: tuple[Direction, ...] = ("upstream", "downstream")


@dataclass(frozen=True, slots=True)
class ToxicFlag:
    """One toxic option: its flag, how its value parses, and the toxic it makes."""

    option: str
    metavar: str
    parse: Callable[[str], float]
    make: Callable[[float, argparse.Namespace, Direction], Toxic[Any]]
    help: str

    @property
    def dest(self) -> str:
        return self.option.removeprefix("--").replace("-", "_")


def number(text: str, expected: str, accept: Callable[[float], bool]) -> float:
    """``text`` as a finite float that ``accept`` likes, else an error saying what was expected."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def seconds(text: str) -> float:
    """An argparse type: seconds >= 0."""
    return number(text, "seconds >= 0 such as 0.1", lambda v: v >= 0)


def _rate(text: str) -> float:
    return number(text, "bytes per second > 0 such as 1000", lambda v: v > 0)


def _count(minimum: int) -> Callable[[str], float]:
    def parse(text: str) -> float:
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return int(text)

    return parse


def directed(parse: Callable[[str], float]) -> Callable[[str], tuple[tuple[Direction, ...], float]]:
    """An argparse type for ``[up:|down:|both:]VALUE``: no prefix means ``--direction``'s."""

    def parse_directed(text: str) -> tuple[tuple[Direction, ...], float]:
        prefix, colon, rest = text.partition(":")
        if not colon:
            return (), parse(text)
        if prefix not in _PREFIXES:
            raise argparse.ArgumentTypeError(
                f"expected up:, down: or both: before the value, got {prefix + ':'!r}"
            )
        return _PREFIXES[prefix], parse(rest)

    return parse_directed


def _directions(args: argparse.Namespace, given: tuple[Direction, ...]) -> tuple[Direction, ...]:
    if given:
        return given
    return _BOTH if args.direction == "both" else (args.direction,)


def build_toxics(args: argparse.Namespace, fail: Callable[[str], Any]) -> list[Toxic[Any]]:
    """The toxics the options ask for, in option order; ``fail`` gets a message naming the flag.

    ``fail`` must not return (it is ``parser.error``).
    """
    made: list[Toxic[Any]] = []
    seen: set[str] = set()
    if args.jitter and not args.latency:
        fail("argument --jitter: needs --latency (jitter varies the latency)")
    for flag in TOXIC_FLAGS:
        for given, value in getattr(args, flag.dest):
            for direction in _directions(args, given):
                key = f"{flag.option} {direction}"
                if key in seen:
                    fail(f"argument {flag.option}: given twice for the {direction} direction")
                seen.add(key)
                try:
                    made.append(flag.make(value, args, direction))
                except (TypeError, ValueError) as exc:
                    fail(f"argument {flag.option}: {exc}")
    return made


def _make_latency(value: float, args: argparse.Namespace, direction: Direction) -> Toxic[Any]:
    return toxics.latency(value, args.jitter, direction=direction, toxicity=args.toxicity)


def _make(
    factory: Callable[..., Toxic[Any]], as_int: bool = False
) -> Callable[[float, argparse.Namespace, Direction], Toxic[Any]]:
    def make(value: float, args: argparse.Namespace, direction: Direction) -> Toxic[Any]:
        argument = int(value) if as_int else value
        return factory(argument, direction=direction, toxicity=args.toxicity)

    return make


TOXIC_FLAGS: tuple[ToxicFlag, ...] = (
    ToxicFlag(
        "--latency",
        "S",
        seconds,
        _make_latency,
        "delay every chunk by S seconds, e.g. 0.1 or up:0.1 (see --jitter)",
    ),
    ToxicFlag(
        "--bandwidth",
        "BPS",
        _rate,
        _make(toxics.bandwidth),
        "limit throughput to BPS bytes per second, e.g. 10000",
    ),
    ToxicFlag(
        "--slicer",
        "BYTES",
        _count(1),
        _make(toxics.slicer, as_int=True),
        "write data in pieces of BYTES bytes (short reads), e.g. 3",
    ),
    ToxicFlag(
        "--limit-data",
        "BYTES",
        _count(0),
        _make(toxics.limit_data, as_int=True),
        "forward only the first BYTES bytes, then close the connection, e.g. 100",
    ),
    ToxicFlag(
        "--timeout",
        "S",
        seconds,
        _make(toxics.timeout),
        "a black hole: drop all data, close the connection S seconds later (0: never), e.g. 5",
    ),
    ToxicFlag(
        "--reset-after",
        "S",
        seconds,
        _make(toxics.reset_peer),
        "reset both sides (TCP RST) S seconds after the first data, e.g. 0.5",
    ),
    ToxicFlag(
        "--slow-close",
        "S",
        seconds,
        _make(toxics.slow_close),
        "pass a close (EOF) on S seconds late, e.g. 2",
    ),
)
