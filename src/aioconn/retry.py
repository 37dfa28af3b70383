"""Retry policy: exponential backoff with jitter, bounded attempts and a total deadline."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from . import _validate

__all__ = ["Retry"]

T = TypeVar("T")
logger = logging.getLogger("aioconn.retry")


@dataclass(frozen=True, slots=True)
class Retry:
    """How often, and how patiently, to try an operation again.

    Attempt ``n`` (0-based) that fails waits ``min(max_delay, initial_delay * multiplier**n)``
    seconds, shrunk at random by up to ``jitter`` of itself (``jitter=1.0`` is "full jitter":
    a uniform delay in ``[0, cap]``; ``jitter=0`` is deterministic) before the next attempt.

    Args:
        attempts: total tries including the first (>= 1).
        initial_delay: the cap of the first pause, seconds (> 0).
        max_delay: the largest pause, seconds (>= initial_delay).
        multiplier: growth of the cap per attempt (>= 1).
        jitter: fraction of each pause drawn at random, 0..1.
        deadline: give up once this many seconds have passed since the first attempt,
            without starting a pause that would end past it. ``None``: no deadline.

    Example::

        conn = await aioconn.connect("db", 5432, retry=Retry(attempts=5, initial_delay=0.1))
    """

    attempts: int = 3
    initial_delay: float = 0.1
    max_delay: float = 5.0
    multiplier: float = 2.0
    jitter: float = 1.0
    deadline: float | None = None
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    """Where the jitter comes from; pass a seeded ``random.Random`` for reproducible pauses."""

    def __post_init__(self) -> None:
        _validate.integer("attempts", self.attempts, minimum=1)
        _validate.timeout("initial_delay", self.initial_delay, allow_none=False)
        _validate.timeout("max_delay", self.max_delay, allow_none=False)
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay must be >= initial_delay, got max_delay={self.max_delay!r}"
                f" and initial_delay={self.initial_delay!r}"
            )
        if _validate.non_negative("multiplier", self.multiplier) < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= _validate.non_negative("jitter", self.jitter) <= 1:
            raise ValueError(f"jitter must be in 0..1, got {self.jitter!r}")
        _validate.timeout("deadline", self.deadline)

    def caps(self) -> Iterator[float]:
        """The upper bound of each pause, before jitter: one per retry (``attempts - 1``)."""
        cap = self.initial_delay
        for _ in range(self.attempts - 1):
            yield min(cap, self.max_delay)
            cap *= self.multiplier

    def delays(self) -> Iterator[float]:
        """The pauses this policy takes between attempts, jitter applied."""
        for cap in self.caps():
            yield cap - cap * self.jitter * self.rng.random()

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        retry_on: tuple[type[BaseException], ...] = (OSError,),
        description: str = "operation",
    ) -> T:
        """Run ``operation`` until it succeeds, retrying the exceptions in ``retry_on``.

        Args:
            operation: a coroutine function, called with no arguments for each attempt.
            retry_on: the exception types worth another attempt.
            description: what the operation is, for the log line of each retry.

        Raises:
            BaseException: the last exception, when attempts or the deadline run out. Anything
                not in ``retry_on`` (and cancellation) propagates at once.
        """
        started = time.monotonic()
        delays = self.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await operation()
            except retry_on as exc:
                delay = next(delays, None)
                if delay is None:
                    raise
                if self.deadline is not None and (
                    time.monotonic() - started + delay > self.deadline
                ):
                    raise
                logger.info(
                    "%s failed (attempt %d of %d: %s); retrying in %.3f s",
                    description,
                    attempt,
                    self.attempts,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)
