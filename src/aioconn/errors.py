"""The exception hierarchy: one root, shallow families, each also a built-in users already catch."""

from __future__ import annotations

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionReleased",
    "Error",
    "LeakWarning",
    "NoHealthyEndpoint",
    "PoolClosed",
    "PoolError",
    "PoolTimeout",
    "ProtocolError",
    "ReadTimeout",
    "ServerDown",
    "TooManyWaiters",
    "WriteTimeout",
]


class Error(Exception):
    """Root of every exception aioconn raises on purpose."""


class ConnectError(Error, ConnectionError):
    """Opening a connection failed.

    Args:
        message: what failed, with the numbers.
        attempts: ``(address, reason)`` for every address that was tried, in order.

    Attributes:
        attempts: ``(address, reason)`` for every address that was tried, in order.
    """

    def __init__(self, message: str, *, attempts: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.attempts = attempts


class ConnectTimeout(ConnectError, TimeoutError):
    """Opening a connection (resolution, TCP handshake and TLS handshake) exceeded its deadline."""


class NoHealthyEndpoint(ConnectError):
    """No endpoint of an ``aioconn.Endpoints`` could take a new connection.

    Raised at once, without waiting for any timeout, when every endpoint is ejected or draining,
    or when each one tried by this call failed. The message states every endpoint's state and
    last error; ``attempts`` lists ``(endpoint, reason)`` for the endpoints this call tried.
    """


class ServerDown(ConnectError):
    """The pool's server is unreachable: connects failed, and the pool backs off before the next.

    An acquire that would need a new connection fails with this at once while the pool backs
    off (``Pool(connect_backoff=...)``), instead of waiting out its timeout or starting a
    connect of its own. The last connect error is its ``__cause__``.

    Args:
        message: what failed, since when and when the next attempt is due.
        since: when connects began failing (``time.time()``).
        failures: connects that failed since then.
        retry_in: seconds until the pool's next connect attempt.

    Attributes:
        since: when connects began failing (``time.time()``).
        failures: connects that failed since then.
        retry_in: seconds until the pool's next connect attempt (0: one is under way or due).
    """

    def __init__(self, message: str, *, since: float, failures: int, retry_in: float) -> None:
        super().__init__(message)
        self.since = since
        self.failures = failures
        self.retry_in = retry_in


class ReadTimeout(Error, TimeoutError):
    """A read did not complete within its deadline. The connection is marked broken."""


class WriteTimeout(Error, TimeoutError):
    """A write (including waiting for the peer to drain) exceeded its deadline."""


class ConnectionClosed(Error, ConnectionError):
    """The connection is closed: by us, by the peer (EOF), or by a reset."""


class ProtocolError(Error):
    """The peer sent data the framing helpers cannot accept, e.g. a line longer than ``limit``."""


class PoolError(Error):
    """Base class of the pool's own errors."""


class PoolTimeout(PoolError, TimeoutError):
    """No connection became available within the acquire timeout."""


class PoolClosed(PoolError, RuntimeError):
    """The pool is closed (or closing) and hands out no more connections."""


class TooManyWaiters(PoolError, RuntimeError):
    """``max_waiting`` callers already queue: this acquire fails at once instead of waiting."""


class ConnectionReleased(Error, RuntimeError):
    """I/O on a pooled ``Connection`` after it was given back to its pool.

    The block that held it ended (or ``put()`` returned it): the connection may be idle, or
    another caller's. Use a pooled connection only inside its ``acquire()`` block.
    """


class LeakWarning(ResourceWarning):
    """A pooled connection was held longer than the pool's ``leak_timeout``."""
