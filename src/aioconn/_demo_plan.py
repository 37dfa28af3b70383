"""The demo's storm, planned from a seed: who gets cut off, how, and when; and its tally."""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Cut = Literal["", "cancel", "deadline"]
Phase = Literal["waiting", "inside"]

POOL_SIZE = 4
CUT_SHARE = 0.4  # of requests cut off: half by an outside cancel, half by a deadline
WAITING_CUT_WITHIN = 0.3  # seconds after the request starts, when cut while it may still queue
INSIDE_CUT_WITHIN = 0.008  # seconds after it got a connection, when cut mid-request
LATENCY, JITTER = 0.002, 0.002  # each chunk, each way, through the chaos proxy
RESET_SHARE = 0.1  # of proxied connections reset by the network on their first reply


@dataclass(frozen=True, slots=True)
class Request:
    """One planned request: plain, or cut off by ``cut`` at ``instant`` seconds into ``phase``."""

    cut: Cut
    phase: Phase
    instant: float


@dataclass(frozen=True, slots=True)
class Plan:
    """The same storm for every pool: a seed makes it (and the proxy's dice) reproducible."""

    seed: int
    concurrency: int
    requests: tuple[Request, ...]

    def count(self, cut: Cut) -> int:
        return sum(1 for r in self.requests if r.cut == cut)


def make_plan(seed: int, *, quick: bool) -> Plan:
    """Requests and their cuts drawn from ``seed``; ``quick`` plans a fifth of the full storm."""
    rng = random.Random(seed)
    total, concurrency = (800, 200) if quick else (4000, 400)
    requests: list[Request] = []
    for _ in range(total):
        draw = rng.random()
        cut: Cut = "" if draw >= CUT_SHARE else "cancel" if draw < CUT_SHARE / 2 else "deadline"
        phase: Phase = "inside" if rng.random() < 0.5 else "waiting"
        within = INSIDE_CUT_WITHIN if phase == "inside" else WAITING_CUT_WITHIN
        requests.append(Request(cut, phase, rng.uniform(0.0, within)))
    return Plan(seed, concurrency, tuple(requests))


class Fairness:
    """Counts overtakes: a request served while one that started waiting earlier still waits."""

    def __init__(self) -> None:
        self._next = 0
        self._pending: list[int] = []
        self._gone: set[int] = set()
        self.overtakes = 0

    def start(self) -> int:
        ticket = self._next
        self._next += 1
        heapq.heappush(self._pending, ticket)
        return ticket

    def served(self, ticket: int) -> None:
        self._drop_gone()
        if self._pending[0] != ticket:
            self.overtakes += 1
        self._gone.add(ticket)

    def left(self, ticket: int) -> None:
        """The request gave up waiting (cancelled or timed out): nobody is overtaking it."""
        self._gone.add(ticket)

    def _drop_gone(self) -> None:
        while self._pending and self._pending[0] in self._gone:
            self._gone.discard(heapq.heappop(self._pending))


@dataclass(slots=True)
class Tally:
    """What one storm did, counted as it happened."""

    label: str
    total: int
    finished: int = 0
    completed: int = 0
    cancelled: int = 0
    timed_out: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    """Requests that raised, by exception type."""
    unexpected: int = 0
    """Requests that ended in a way the plan and the network cannot explain."""
    mismatched: int = 0
    """Replies carrying another request's id: cross-talk."""
    dead_reused: int = 0
    """Requests handed a connection on which an earlier request had already failed."""
    cut_inside: int = 0
    """Requests cut off while holding a connection (a request was in flight)."""
    failed_inside: int = 0
    """Requests whose block ended with an error while holding a connection."""
    worst_wait: float = 0.0
    overtakes: int = 0
    seconds: float = 0.0
