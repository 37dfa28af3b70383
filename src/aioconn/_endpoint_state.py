"""Run-time bookkeeping of ``aioconn.Endpoints``: each endpoint's counts, and each connection's."""

from __future__ import annotations

from ._breaker import EJECTED, Breaker, BreakerPolicy
from ._endpoint import Endpoint
from ._open import Target
from ._options import ConnectOptions
from .stats import EndpointStats, SummaryRecorder

DRAINING = "draining"


class EndpointState:
    """One endpoint at run time: its breaker, its counts and whether it is being retired."""

    __slots__ = (
        "breaker",
        "connect_times",
        "draining",
        "endpoint",
        "in_use",
        "key",
        "open",
        "opening",
        "options",
        "removed",
        "target",
    )

    def __init__(
        self, target: Target, endpoint: Endpoint, options: ConnectOptions, policy: BreakerPolicy
    ) -> None:
        self.key = str(target)
        self.target = target
        self.endpoint = endpoint
        self.options = options
        self.breaker = Breaker(policy)
        self.connect_times = SummaryRecorder()
        self.draining = False  # drain(): no new connections, existing ones retire
        self.removed = False  # left by update_endpoints(): like draining, then forgotten
        self.open = 0
        self.in_use = 0
        self.opening = 0

    @property
    def weight(self) -> float:
        return self.endpoint.weight

    @property
    def load(self) -> int:
        return self.in_use + self.opening

    @property
    def state(self) -> str:
        return DRAINING if self.draining or self.removed else self.breaker.state

    def may_open(self) -> bool:
        """Not draining, and healthy or half-open with its probe still to make."""
        return not (self.draining or self.removed) and self.breaker.can_attempt()

    def describe(self) -> str:
        state = self.state
        text = f"{self.key} {state}"
        if state == EJECTED:
            text += f" for {self.breaker.remaining:.3g} s more"
        if self.breaker.last_error is not None:
            text += f" (last error: {self.breaker.last_error})"
        return text

    def stats(self) -> EndpointStats:
        """A snapshot (``idle`` is left to the pool, which holds the idle connections)."""
        breaker = self.breaker
        return EndpointStats(
            endpoint=self.key,
            state=self.state,
            weight=self.weight,
            open=self.open,
            in_use=self.in_use,
            idle=0,
            failures=breaker.failures,
            consecutive_failures=breaker.consecutive,
            ejections=breaker.ejections,
            last_error=breaker.last_error,
            connect_time=self.connect_times.snapshot(),
        )


class Member:
    """A connection this connector opened: its endpoint, and whether it may be reused."""

    __slots__ = ("in_use", "retired", "state")

    def __init__(self, state: EndpointState) -> None:
        self.state = state
        self.in_use = False
        self.retired = False  # its endpoint was ejected, drained or removed since it opened
