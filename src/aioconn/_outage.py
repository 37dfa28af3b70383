"""The pool's connect backoff: while its server refuses connects, one probe per growing step.

Synchronous, like the core that owns it: the core asks ``Outage`` when the next connect may
start and builds the ``ServerDown`` errors that waiters fail with meanwhile.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

from .errors import ServerDown

__all__ = ["Backoff", "Outage"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """How a pool backs off while connects to its server fail: ``Pool(connect_backoff=...)``.

    After ``after`` connects failed in a row (an outage begins) the pool starts no connect
    for one step, then one probe; each failed probe doubles the step, from ``initial`` up
    to ``maximum`` seconds. Each step is
    drawn at random from ``[step * (1 - jitter), step]`` so that many pools (or processes)
    do not probe a recovering server in lockstep. Any successful connect ends the outage.

    Args:
        initial: the first step in seconds (> 0).
        maximum: the longest step in seconds (>= ``initial``).
        jitter: the share of each step drawn at random, 0..1.
        after: connects failed in a row that begin an outage (>= 1); the default, 2, lets a
            single failed connect (a blip) be retried by the next waiter at once.

    Raises:
        TypeError, ValueError: for an invalid argument, naming it.
    """

    initial: float = 0.05
    maximum: float = 2.0
    jitter: float = 0.5
    after: int = 2

    def __post_init__(self) -> None:
        for name in ("initial", "maximum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"Backoff {name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"Backoff {name} must be a positive finite number of seconds, got {value!r}"
                )
        if self.maximum < self.initial:
            raise ValueError(
                f"Backoff maximum must be >= initial, got maximum={self.maximum!r}"
                f" and initial={self.initial!r}"
            )
        jitter = self.jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int | float):
            raise TypeError(f"Backoff jitter must be a number in 0..1, got {jitter!r}")
        if not (0 <= jitter <= 1):
            raise ValueError(f"Backoff jitter must be in 0..1, got {jitter!r}")
        after = self.after
        if isinstance(after, bool) or not isinstance(after, int):
            raise TypeError(f"Backoff after must be an int, got {after!r}")
        if after < 1:
            raise ValueError(f"Backoff after must be >= 1, got {after!r}")


def _step(backoff: Backoff, index: int, rng: random.Random) -> float:
    """The ``index``-th step (0: the first of an outage), jittered."""
    step = min(backoff.maximum, backoff.initial * 2.0 ** min(index, 64))
    return step * (1.0 - backoff.jitter * rng.random())


class Outage:
    """One stretch of failing connects, from the first failure to the first success."""

    __slots__ = ("failures", "last_error", "reported", "retry_at", "since", "since_wall", "steps")

    def __init__(self, now: float, since: float, failures: int) -> None:
        self.since = since  # time.monotonic() of the first failure in the row
        self.since_wall = time.time() - (now - since)
        self.failures = failures
        self.last_error: BaseException | None = None
        self.retry_at = now  # no connect starts before this (time.monotonic())
        self.steps = 0  # backoff steps taken: the next step's exponent
        self.reported = False  # reconnect_timeout passed and was reported

    def failed(
        self, error: BaseException, now: float, backoff: Backoff, rng: random.Random, *, wait: bool
    ) -> None:
        """Count a failed connect; ``wait``: it decides, so back off for the next step."""
        self.failures += 1
        self.last_error = error
        if wait:
            self.retry_at = now + _step(backoff, self.steps, rng)
            self.steps += 1

    def error(self, name: str, now: float) -> ServerDown:
        """What a waiter that cannot be served until the server answers fails with."""
        retry_in = max(0.0, self.retry_at - now)
        stamp = time.strftime("%H:%M:%S", time.localtime(self.since_wall))
        error = ServerDown(
            f"{name}: the server is down: {self.failures} connect(s) failed since {stamp}"
            f" ({now - self.since:.3g} s ago); next attempt in {retry_in:.3g} s;"
            f" last error: {self.last_error}",
            since=self.since_wall,
            failures=self.failures,
            retry_in=retry_in,
        )
        error.__cause__ = self.last_error
        return error
