"""Load-balancing strategies: which of the eligible endpoints serves the next acquire."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

__all__ = ["STRATEGIES", "Choice", "Strategy", "make_strategy"]


class Choice(Protocol):
    """An endpoint as a strategy sees it."""

    @property
    def weight(self) -> float:
        """Its share of the traffic, relative to the others (> 0)."""
        ...

    @property
    def load(self) -> int:
        """Its connections in use plus those being opened."""
        ...


class Strategy(Protocol):
    """Picks one of a non-empty list of eligible endpoints (given in configured order)."""

    def pick(self, choices: Sequence[Choice]) -> int:
        """The index in ``choices`` of the endpoint to use."""
        ...

    def forget(self, choice: Choice) -> None:
        """``choice`` is gone for good: drop any state kept about it."""
        ...


class SmoothRoundRobin:
    """nginx's smooth weighted round robin: weights 5, 1, 1 give a a b a c a a, not a a a a a b c.

    Each pick adds every eligible endpoint's weight to its running score, takes the highest
    score (the first on a tie) and subtracts the eligible total from it. Over any run of
    picks among the same endpoints, each gets its weighted share to within one pick.
    """

    def __init__(self) -> None:
        self._score: dict[Choice, float] = {}

    def pick(self, choices: Sequence[Choice]) -> int:
        score = self._score
        total = 0.0
        best = 0
        best_score = float("-inf")
        for index, choice in enumerate(choices):
            total += choice.weight
            current = score.get(choice, 0.0) + choice.weight
            score[choice] = current
            if current > best_score:
                best, best_score = index, current
        score[choices[best]] = best_score - total
        return best

    def forget(self, choice: Choice) -> None:
        self._score.pop(choice, None)


class WeightedRandom:
    """Each pick is independent: endpoint ``i`` with probability ``weight_i / total``."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, choices: Sequence[Choice]) -> int:
        return _draw(self._rng, choices, skip=-1)

    def forget(self, choice: Choice) -> None:
        pass


class LeastInUse:
    """The lowest ``load / weight``; ties go round robin (weighted), so an idle-ish pool spreads."""

    def __init__(self) -> None:
        self._ties = SmoothRoundRobin()

    def pick(self, choices: Sequence[Choice]) -> int:
        ratios = [choice.load / choice.weight for choice in choices]
        lowest = min(ratios)
        tied = [index for index, ratio in enumerate(ratios) if ratio == lowest]
        if len(tied) == 1:
            return tied[0]
        return tied[self._ties.pick([choices[index] for index in tied])]

    def forget(self, choice: Choice) -> None:
        self._ties.forget(choice)


class PowerOfTwoChoices:
    """Draw two different endpoints at random (by weight); take the lower ``load / weight``.

    On a tie the first drawn wins, so with no load at all the picks follow the weights exactly
    as ``random`` does; under load, the busier of the two is avoided.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, choices: Sequence[Choice]) -> int:
        first = _draw(self._rng, choices, skip=-1)
        if len(choices) == 1:
            return first
        second = _draw(self._rng, choices, skip=first)
        a, b = choices[first], choices[second]
        return second if b.load * a.weight < a.load * b.weight else first

    def forget(self, choice: Choice) -> None:
        pass


class Primary:
    """Ordered failover: always the first eligible endpoint in the configured order."""

    def pick(self, choices: Sequence[Choice]) -> int:
        return 0

    def forget(self, choice: Choice) -> None:
        pass


STRATEGIES = ("round_robin", "random", "least_in_use", "p2c", "primary")


def make_strategy(name: object, rng: random.Random) -> Strategy:
    """The strategy called ``name`` (one of ``STRATEGIES``).

    Raises:
        TypeError, ValueError: ``name`` is not one of them, naming the parameter.
    """
    if not isinstance(name, str):
        raise TypeError(f"strategy must be a str, got {name!r}")
    if name == "round_robin":
        return SmoothRoundRobin()
    if name == "random":
        return WeightedRandom(rng)
    if name == "least_in_use":
        return LeastInUse()
    if name == "p2c":
        return PowerOfTwoChoices(rng)
    if name == "primary":
        return Primary()
    raise ValueError(f"strategy must be one of {', '.join(map(repr, STRATEGIES))}; got {name!r}")


def _draw(rng: random.Random, choices: Sequence[Choice], skip: int) -> int:
    """A random index, by weight, never ``skip``."""
    total = sum(c.weight for i, c in enumerate(choices) if i != skip)
    point = rng.random() * total
    last = -1
    for index, choice in enumerate(choices):
        if index == skip:
            continue
        last = index
        point -= choice.weight
        if point < 0:
            return index
    return last  # rounding left a sliver at the end: it belongs to the last endpoint
