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
    "ReconnectFailed",
    "ServerReachable",
    "ServerUnreachable",
]


@dataclass(frozen=True, slots=True)
class PoolEvent:
    """Base of every event; ``pool`` is the pool's name."""

    pool: str
    """The pool's name."""


@dataclass(frozen=True, slots=True)
class ConnectionOpened(PoolEvent):
    """A new connection joined the pool after ``seconds`` of opening."""

    resource: object
    """The new connection (or resource)."""
    endpoint: str | None
    """Its endpoint with an ``aioconn.Endpoints`` connector; ``None`` otherwise."""
    seconds: float
    """How long opening it took."""


@dataclass(frozen=True, slots=True)
class ConnectFailed(PoolEvent):
    """Opening a connection failed (after ``connect_retry``, if any)."""

    error: BaseException
    """The exception the connect raised."""
    endpoint: str | None
    """The endpoint tried, with an ``aioconn.Endpoints`` connector; else ``None``."""


@dataclass(frozen=True, slots=True)
class ConnectionDiscarded(PoolEvent):
    """A connection left the pool and is being closed; ``reason`` is a ``Discards`` field name."""

    resource: object
    """The connection being closed."""
    endpoint: str | None
    """Its endpoint with an ``aioconn.Endpoints`` connector; ``None`` otherwise."""
    reason: str
    """Why: a field name of ``aioconn.Discards``, such as ``"interrupted"``."""


@dataclass(frozen=True, slots=True)
class AcquireWaitedLong(PoolEvent):
    """An acquire waited ``seconds``, more than the pool's ``slow_acquire_threshold``."""

    seconds: float
    """How long the acquire waited."""
    threshold: float
    """The pool's ``slow_acquire_threshold``."""


@dataclass(frozen=True, slots=True)
class LeakSuspected(PoolEvent):
    """A connection was held longer than ``leak_timeout``; ``report`` says where and by whom."""

    resource: object
    """The connection held too long."""
    report: str
    """Where it was acquired and where its holder is now (stack excerpts)."""


@dataclass(frozen=True, slots=True)
class EndpointEjected(PoolEvent):
    """An endpoint was taken out of rotation for ``cooldown`` seconds after failures."""

    endpoint: str
    """The endpoint taken out of rotation."""
    failures: int
    """Consecutive connect failures that caused it."""
    cooldown: float
    """Seconds until a half-open probe may try it again."""
    error: str
    """The last failure, as text."""


@dataclass(frozen=True, slots=True)
class EndpointRestored(PoolEvent):
    """An ejected endpoint passed its half-open probe and is back in rotation."""

    endpoint: str
    """The endpoint back in rotation."""


@dataclass(frozen=True, slots=True)
class ServerUnreachable(PoolEvent):
    """A connect failed: the pool backs off (``connect_backoff``) and probes one at a time."""

    error: BaseException
    """The connect error that began the outage."""


@dataclass(frozen=True, slots=True)
class ServerReachable(PoolEvent):
    """A connect succeeded after an outage: the pool opens connections again."""

    seconds: float
    """How long connects failed."""
    failures: int
    """Connects that failed during the outage."""


@dataclass(frozen=True, slots=True)
class ReconnectFailed(PoolEvent):
    """Connects have failed for ``reconnect_timeout`` seconds (once per outage).

    The pool keeps probing at its longest backoff step; ``Pool(reconnect_failed=...)`` is
    called too.
    """

    seconds: float
    """How long connects have failed."""
    failures: int
    """Connects that failed so far."""
    error: BaseException
    """The last connect error."""
