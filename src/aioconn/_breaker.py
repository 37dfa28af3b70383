"""The per-endpoint circuit breaker: ejection on failures, a growing cool-down, one probe."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from . import _validate

HEALTHY, EJECTED, HALF_OPEN = "healthy", "ejected", "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When to eject an endpoint and for how long (validated by ``BreakerPolicy.checked``)."""

    eject_after: int | None = 3
    failure_ratio: tuple[float, int] | None = None
    base_ejection: float = 1.0
    max_ejection: float = 30.0

    @classmethod
    def checked(
        cls,
        eject_after: object,
        failure_ratio: object,
        base_ejection: object,
        max_ejection: object,
    ) -> BreakerPolicy:
        """A policy from user input; errors name the parameter."""
        after = (
            None
            if eject_after is None
            else _validate.integer("eject_after", eject_after, minimum=1)
        )
        ratio: tuple[float, int] | None = None
        if failure_ratio is not None:
            if not (isinstance(failure_ratio, tuple) and len(failure_ratio) == 2):
                raise TypeError(
                    "failure_ratio must be None or a (ratio, window) tuple such as (0.5, 20),"
                    f" got {failure_ratio!r}"
                )
            share, window = failure_ratio
            if isinstance(share, bool) or not isinstance(share, int | float):
                raise TypeError(f"failure_ratio's ratio must be a number, got {share!r}")
            if not (math.isfinite(share) and 0 < share <= 1):
                raise ValueError(f"failure_ratio's ratio must be in (0, 1], got {share!r}")
            ratio = (float(share), _validate.integer("failure_ratio's window", window, minimum=1))
        base = _validate.timeout("base_ejection", base_ejection, allow_none=False)
        most = _validate.timeout("max_ejection", max_ejection, allow_none=False)
        assert base is not None
        assert most is not None
        if most < base:
            raise ValueError(
                f"max_ejection must be >= base_ejection, got max_ejection={most!r}"
                f" and base_ejection={base!r}"
            )
        return cls(after, ratio, base, most)


@dataclass(frozen=True, slots=True)
class Ejection:
    """What ``Breaker.failed`` reports when a failure ejected the endpoint."""

    failures: int
    """The failures that decided it: consecutive ones, or those in the ratio window."""
    cooldown: float


class Breaker:
    """Connect outcomes of one endpoint -> healthy, ejected (until a deadline) or half-open.

    Healthy: every caller may try it. ``eject_after`` consecutive failures, or a failure share
    of at least ``failure_ratio[0]`` over the last ``failure_ratio[1]`` attempts, eject it for
    ``base_ejection * 2**n`` seconds (``n``: ejections since it was last healthy, capped at
    ``max_ejection``). Once that passes it is half-open: the next attempt is the one probe
    (``begin`` returns True and nobody else may try); the probe's success makes it healthy,
    its failure ejects it again for twice as long. Outcomes of attempts that began before an
    ejection are counted but change no state: only the probe decides.
    """

    __slots__ = (
        "_clock",
        "_policy",
        "_probing",
        "_streak",
        "_until",
        "_window",
        "_window_failures",
        "consecutive",
        "ejections",
        "failures",
        "last_error",
    )

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._until: float | None = None  # None: healthy; else ejected until, then half-open
        self._probing = False
        self._streak = 0  # ejections since the endpoint was last healthy: the cool-down exponent
        size = policy.failure_ratio[1] if policy.failure_ratio is not None else 0
        self._window: deque[bool] = deque(maxlen=max(size, 1))
        self._window_failures = 0
        self.failures = 0
        self.consecutive = 0
        self.ejections = 0
        self.last_error: str | None = None

    @property
    def state(self) -> str:
        """``"healthy"``, ``"ejected"`` or ``"half_open"``."""
        if self._until is None:
            return HEALTHY
        return EJECTED if self._clock() < self._until else HALF_OPEN

    @property
    def remaining(self) -> float:
        """Seconds of cool-down left (0 unless ejected)."""
        return 0.0 if self._until is None else max(0.0, self._until - self._clock())

    def can_attempt(self) -> bool:
        """Healthy, or half-open with nobody probing yet."""
        return self._until is None or (not self._probing and self._clock() >= self._until)

    def begin(self) -> bool:
        """An attempt starts (``can_attempt()`` held); True if it is the half-open probe."""
        if self._until is None:
            return False
        self._probing = True
        return True

    def cancelled(self, probe: bool) -> None:
        """The attempt was interrupted: it says nothing about the endpoint."""
        if probe:
            self._probing = False

    def succeeded(self, probe: bool) -> bool:
        """Record a successful attempt; True if it was the probe and the endpoint is back."""
        if probe:
            self._probing = False
            self._until = None
            self._streak = 0
            self.consecutive = 0
            self._clear_window()
            return True
        if self._until is None:
            self.consecutive = 0
            self._observe(failed=False)
        return False

    def failed(self, error: str, probe: bool) -> Ejection | None:
        """Record a failed attempt; returns the ``Ejection`` if this one ejected the endpoint."""
        self.failures += 1
        self.consecutive += 1
        self.last_error = error
        if probe:
            self._probing = False
            return self._eject(self.consecutive)
        if self._until is not None:
            return None  # began before the ejection: counted, but only the probe decides
        self._observe(failed=True)
        after, ratio = self._policy.eject_after, self._policy.failure_ratio
        if after is not None and self.consecutive >= after:
            return self._eject(self.consecutive)
        if (
            ratio is not None
            and len(self._window) == ratio[1]
            and self._window_failures >= ratio[0] * ratio[1]
        ):
            return self._eject(self._window_failures)
        return None

    def reset_counters(self) -> None:
        """Zero the cumulative counters (``failures``, ``ejections``); state is kept."""
        self.failures = 0
        self.ejections = 0

    def _observe(self, *, failed: bool) -> None:
        window = self._window
        if len(window) == window.maxlen and window[0]:
            self._window_failures -= 1
        window.append(failed)
        self._window_failures += failed

    def _clear_window(self) -> None:
        self._window.clear()
        self._window_failures = 0

    def _eject(self, failures: int) -> Ejection:
        policy = self._policy
        cooldown = min(policy.max_ejection, policy.base_ejection * 2.0 ** min(self._streak, 64))
        self._streak += 1
        self._until = self._clock() + cooldown
        self.ejections += 1
        self._clear_window()
        return Ejection(failures, cooldown)
