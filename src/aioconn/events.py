"""Typed pool events, delivered to ``Pool(on_event=...)`` and to the ``aioconn.pool`` logger."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AcquireWaitedLong",
    "ConnectFailed",
    "ConnectionDiscarded",
    "ConnectionOpened",
    "EndpointEjected",
    "EndpointRestored",
    "LeakSuspected",
    "PoolEvent",
]


@dataclass(frozen=True, slots=True)
class PoolEvent:
    """Base of every event; ``pool`` is the pool's name."""

    pool: str


@dataclass(frozen=True, slots=True)
class ConnectionOpened(PoolEvent):
    """A new connection joined the pool after ``seconds`` of opening."""

    resource: object
    endpoint: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class ConnectFailed(PoolEvent):
    """Opening a connection failed (after ``connect_retry``, if any)."""

    error: BaseException
    endpoint: str | None


@dataclass(frozen=True, slots=True)
class ConnectionDiscarded(PoolEvent):
    """A connection left the pool and is being closed; ``reason`` is a ``Discards`` field name."""

    resource: object
    endpoint: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class AcquireWaitedLong(PoolEvent):
    """An acquire waited ``seconds``, more than the pool's ``slow_acquire_threshold``."""

    seconds: float
    threshold: float


@dataclass(frozen=True, slots=True)
class LeakSuspected(PoolEvent):
    """A connection was held longer than ``leak_timeout``; ``report`` says where and by whom."""

    resource: object
    report: str


@dataclass(frozen=True, slots=True)
class EndpointEjected(PoolEvent):
    """An endpoint was taken out of rotation for ``cooldown`` seconds after failures."""

    endpoint: str
    failures: int
    cooldown: float
    error: str


@dataclass(frozen=True, slots=True)
class EndpointRestored(PoolEvent):
    """An ejected endpoint passed its half-open probe and is back in rotation."""

    endpoint: str
