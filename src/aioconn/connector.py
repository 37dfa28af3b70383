"""How a pooled resource is opened, checked, reset and closed — kept apart from the pool's policy.

A pool only ever talks to a ``Connector``; it never imports socket code. ``connect`` and
``close`` are required; ``init``, ``check``, ``reset``, ``is_reusable``, ``recover`` and
``abort`` are optional and found by name.
"""

from __future__ import annotations

import inspect
import os
import ssl as _ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from . import _validate
from ._open import Target
from ._options import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HAPPY_EYEBALLS_DELAY,
    DEFAULT_LIMIT,
    KeepAlive,
    make_options,
)
from .connection import Connection, connection_reusable
from .connection import _unix_path as _check_unix_path
from .retry import Retry

__all__ = ["Connector", "FactoryConnector", "TCPConnector", "UnixConnector"]

R = TypeVar("R")


@runtime_checkable
class Connector(Protocol[R]):
    """What a pool needs to know about its resources.

    Required: ``async connect() -> R`` and ``async close(R)``. Optional methods, looked up by
    name: ``async init(R)`` (run once on a new resource, right after ``connect``: the
    on-connect hook), ``async check(R) -> bool`` (is it alive? run before handing out a
    resource idle for longer than ``check_after_idle``, and by the keepalive), ``async
    reset(R)`` (make it clean for the next user; run on every clean return),
    ``is_reusable(R) -> bool`` (a cheap synchronous look, run on every return and checkout),
    ``async recover(R, exc) -> bool`` (after a block that ended with the exception ``exc``:
    True if the resource is clean again, e.g. its query was cancelled on the server; False or
    an exception and it is discarded) and ``abort(R)`` (close at once, synchronously).
    The pool bounds each await (``connect_timeout`` covers ``connect`` and ``init``,
    ``check_timeout``, ``reset_timeout``, ``recover_timeout``, ``close_timeout``); a hook that
    raises counts as a failure.
    """

    async def connect(self) -> R:
        """Open a new resource."""
        ...

    async def close(self, resource: R) -> None:
        """Close a resource for good.

        Args:
            resource: one this connector opened.
        """
        ...


class _ConnectionConnector:
    """Shared behaviour of the built-in connectors over ``aioconn.Connection``."""

    _target: Target

    def __init__(
        self,
        target: Target,
        *,
        init: Callable[[Connection], Any] | None = None,
        **options: Any,
    ) -> None:
        self._target = target
        self._options = make_options(**options)
        self._init = _optional_callable("init", init)
        if init is None:
            self.init = None  # type: ignore[assignment]  # pool looks optional hooks up by name

    async def init(self, resource: Connection) -> None:
        """Run the ``init`` callable (e.g. send ``CLIENT SETNAME``) on a new connection."""
        assert self._init is not None
        await _maybe_await(self._init(resource))

    async def connect(self) -> Connection:
        """Open a connection with the configured options."""
        return await Connection._from_options(self._target, self._options).connect()

    async def close(self, resource: Connection) -> None:
        """Close gracefully within ``close_timeout``, else abort."""
        await resource.close()

    def abort(self, resource: Connection) -> None:
        """Abort at once."""
        resource.abort()

    # ``is_reusable(conn)``: open, not broken, no unread bytes, not at EOF, i.e.
    # ``Connection.reusable``. A static function, not a method: the pool calls it on every
    # return and checkout, and a bound method's extra Python frame cost ~50 ns each time.
    is_reusable: Callable[[Connection], bool] = staticmethod(connection_reusable)

    async def check(self, resource: Connection) -> bool:
        """Alive as far as the socket can tell without a round trip; override to ping."""
        return resource.reusable

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._target}>"


class TCPConnector(_ConnectionConnector):
    """Opens ``aioconn.Connection``s to ``host:port``; takes every ``Connection`` option.

    Use it as ``Pool(TCPConnector("db.internal", 5432, read_timeout=5))``. The pool calls
    ``connect``, ``init``, ``check``, ``is_reusable``, ``close`` and ``abort``; you seldom call
    them.

    Args:
        host: the name or address to connect to.
        port: the TCP port, 0..65535.
        ssl: ``True`` for a default, verifying TLS context; an ``ssl.SSLContext`` to use as
            given; ``None``/``False`` for plain TCP. Verification is never turned off for you.
        server_hostname: the name to verify the certificate against (default: ``host``).
        connect_timeout: seconds to resolve, connect and handshake (default 10.0);
            ``None``: no limit.
        close_timeout: seconds a graceful close may take before the socket is aborted
            (default 2.0).
        read_timeout: default deadline of each read call in seconds, or ``None``.
        write_timeout: default deadline of each send call in seconds, or ``None``.
        local_addr: ``(host, port)`` to bind the local end to.
        happy_eyeballs_delay: seconds before racing the next address (RFC 8305; default 0.25), or
            ``None`` to try addresses one after another.
        nodelay: keep ``TCP_NODELAY`` on (asyncio's default).
        keepalive: ``True`` or an ``aioconn.KeepAlive`` to enable TCP keepalive probes.
        limit: the longest line or frame accepted, in bytes (default 65536).
        retry: an ``aioconn.Retry`` policy for connect failures.
        init: called with each new connection (``async`` or not), e.g. to authenticate or name
            the session, before the pool hands it out; ``None``: nothing to run.

    Raises:
        TypeError, ValueError: for an invalid argument, naming it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: bool | _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        local_addr: tuple[str, int] | None = None,
        happy_eyeballs_delay: float | None = DEFAULT_HAPPY_EYEBALLS_DELAY,
        nodelay: bool = True,
        keepalive: bool | KeepAlive = False,
        limit: int = DEFAULT_LIMIT,
        retry: Retry | None = None,
        init: Callable[[Connection], Any] | None = None,
    ) -> None:
        super().__init__(
            Target(host=_validate.host(host), port=_validate.port(port)),
            init=init,
            ssl=ssl,
            server_hostname=server_hostname,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            local_addr=local_addr,
            happy_eyeballs_delay=happy_eyeballs_delay,
            nodelay=nodelay,
            keepalive=keepalive,
            limit=limit,
            retry=retry,
        )


class UnixConnector(_ConnectionConnector):
    """Opens ``aioconn.Connection``s to the Unix socket at ``path``.

    Args:
        path: the socket's file system path.
        ssl: TLS over the socket, as for TCP (rarely needed on a Unix socket).
        server_hostname: the name to verify the certificate against; required with ``ssl``.
        connect_timeout: seconds for the connect and any handshake (default 10.0);
            ``None``: no limit.
        close_timeout: seconds a graceful close may take before the socket is aborted
            (default 2.0).
        read_timeout: default deadline of each read call in seconds, or ``None``.
        write_timeout: default deadline of each send call in seconds, or ``None``.
        limit: the longest line or frame accepted, in bytes (default 65536).
        retry: an ``aioconn.Retry`` policy for connect failures.
        init: as for ``TCPConnector``.

    Raises:
        TypeError, ValueError: for an invalid argument, naming it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ssl: bool | _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        limit: int = DEFAULT_LIMIT,
        retry: Retry | None = None,
        init: Callable[[Connection], Any] | None = None,
    ) -> None:
        super().__init__(
            Target(path=_check_unix_path(path)),
            init=init,
            ssl=ssl,
            server_hostname=server_hostname,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            limit=limit,
            retry=retry,
        )


class FactoryConnector(Connector[R]):
    """A connector from plain callables: ``FactoryConnector(open_fn, close=close_fn)``.

    ``factory()`` must return an awaitable resolving to the resource. ``close``, ``init``,
    ``check``, ``reset`` and ``recover`` may be sync or async; ``is_reusable`` and ``abort``
    must be sync. Each optional hook exists on the connector only when given.

    Args:
        factory: called with no arguments to open a resource; returns an awaitable of it.
        close: ``close(resource)`` closes one for good; ``None``: nothing to do.
        check: ``check(resource)`` says whether an idle one is alive (falsy or raising: dead);
            ``None``: never checked.
        reset: ``reset(resource)`` cleans one for the next user, on every return; ``None``:
            no reset.
        is_reusable: ``is_reusable(resource)``, a cheap synchronous look on every return and
            checkout; ``None``: always reusable.
        init: ``init(resource)`` runs once on each new resource, before the pool hands it out
            (the on-connect hook); ``None``: nothing to run.
        recover: ``recover(resource, exc)`` after an ``acquire()`` block ended by ``exc``:
            bring the resource back to a clean state and return whether it may be reused
            (falsy or raising: discarded); ``None``: such a resource is always discarded.
        abort: ``abort(resource)`` closes one at once, synchronously (when a close times out
            or ``Pool.close()`` gives up on it); ``None``: ``close`` is used instead.

    Raises:
        TypeError: ``factory`` or a hook is not callable.
    """

    def __init__(
        self,
        factory: Callable[[], Awaitable[R]],
        *,
        close: Callable[[R], Any] | None = None,
        check: Callable[[R], Any] | None = None,
        reset: Callable[[R], Any] | None = None,
        is_reusable: Callable[[R], bool] | None = None,
        init: Callable[[R], Any] | None = None,
        recover: Callable[[R, BaseException], Any] | None = None,
        abort: Callable[[R], Any] | None = None,
    ) -> None:
        if not callable(factory):
            raise TypeError(f"factory must be callable, got {factory!r}")
        self._factory = factory
        self._close = _optional_callable("close", close)
        self._check = _optional_callable("check", check)
        self._reset = _optional_callable("reset", reset)
        self._is_reusable = _optional_callable("is_reusable", is_reusable)
        self._init = _optional_callable("init", init)
        self._recover = _optional_callable("recover", recover)
        self._abort = _optional_callable("abort", abort)
        # Expose the optional hooks only when given, so the pool skips the absent ones.
        if check is None:
            self.check = None  # type: ignore[assignment]  # pool looks optional hooks up by name
        if reset is None:
            self.reset = None  # type: ignore[assignment]  # same
        if is_reusable is None:
            self.is_reusable = None  # type: ignore[assignment]  # same
        if init is None:
            self.init = None  # type: ignore[assignment]  # same
        if recover is None:
            self.recover = None  # type: ignore[assignment]  # same
        if abort is None:
            self.abort = None  # type: ignore[assignment]  # same

    async def connect(self) -> R:
        """Call the factory and await what it returns."""
        result = self._factory()
        if not inspect.isawaitable(result):
            raise TypeError(
                f"factory {self._factory!r} must return an awaitable, returned {result!r}"
            )
        return await result

    async def close(self, resource: R) -> None:
        """Run the ``close`` callable, if any.

        Args:
            resource: the resource to close.
        """
        if self._close is not None:
            await _maybe_await(self._close(resource))

    async def check(self, resource: R) -> bool:
        """Run the ``check`` callable; a falsy result or an exception means dead.

        Args:
            resource: the idle resource to check.
        """
        assert self._check is not None
        return bool(await _maybe_await(self._check(resource)))

    async def reset(self, resource: R) -> None:
        """Run the ``reset`` callable.

        Args:
            resource: the resource to clean for its next user.
        """
        assert self._reset is not None
        await _maybe_await(self._reset(resource))

    def is_reusable(self, resource: R) -> bool:
        """Run the ``is_reusable`` callable.

        Args:
            resource: the resource to look at.
        """
        assert self._is_reusable is not None
        return bool(self._is_reusable(resource))

    async def init(self, resource: R) -> None:
        """Run the ``init`` callable on a new resource.

        Args:
            resource: the resource ``connect`` just opened.
        """
        assert self._init is not None
        await _maybe_await(self._init(resource))

    async def recover(self, resource: R, exc: BaseException) -> bool:
        """Run the ``recover`` callable; only a truthy result keeps the resource.

        Args:
            resource: the resource whose ``acquire()`` block ended by ``exc``.
            exc: the exception that ended the block.
        """
        assert self._recover is not None
        return bool(await _maybe_await(self._recover(resource, exc)))

    def abort(self, resource: R) -> None:
        """Run the ``abort`` callable.

        Args:
            resource: the resource to close at once.
        """
        assert self._abort is not None
        self._abort(resource)

    def __repr__(self) -> str:
        return f"<FactoryConnector {self._factory!r}>"


def _optional_callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {value!r}")
    return value


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
