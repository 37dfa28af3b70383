"""``aioconn.Pool``: a generic FIFO pool that never leaks, never deadlocks, never hands on dirt.

The layering: ``Pool`` (this module, the public API) drives ``PoolRunner`` (``_runner.py``, the
async shell that does the I/O, each await bounded), which reports every outcome to
``PoolCore`` (``_core.py``, the books: synchronous, no I/O, every event ending in one
reconcile step). ``Lease`` (``_lease.py``) is the context manager an acquire returns.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import sys
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable
from time import monotonic
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, overload

from . import _registry, _validate
from ._core import CLOSING, DONE, NEW, OPEN, Hooks, PoolCore
from ._lease import Lease, get
from ._maintenance import maintenance_period, run_maintenance
from ._outage import Backoff
from ._pool_config import as_connector, check_sizes
from ._runner import PoolRunner
from ._slot import LEASED
from ._tasks import current_task
from .connection import DEFAULT, CallTimeout, connection_reusable
from .connector import Connector
from .errors import PoolClosed, PoolTimeout
from .events import PoolEvent
from .retry import Retry
from .stats import Discards, EndpointStats, PoolStats

__all__ = ["Lease", "Pool"]

R = TypeVar("R")
logger = logging.getLogger("aioconn.pool")


def _emitter(name: str, on_event: Callable[[PoolEvent], Any] | None) -> Callable[[PoolEvent], None]:
    """Hand an event to ``on_event`` (its errors are logged, never raised) and the log."""

    def emit(event: PoolEvent) -> None:
        logger.debug("%s", event)
        if on_event is None:
            return
        try:
            on_event(event)
        except Exception:
            logger.exception("%s: on_event hook failed for %r", name, event)

    return emit


def _bound_to(pool: Pool[R], callback: Callable[[Pool[R]], Any] | None) -> Callable[[], Any] | None:
    """``callback(pool)`` through a weak reference: the runner must not keep the pool alive."""
    if callback is None:
        return None
    ref = weakref.ref(pool)

    def call() -> Any:
        alive = ref()
        return None if alive is None else callback(alive)

    return call


_CLOSE_GRACE = 0.5
"""Seconds ``close()`` waits, after aborting what was left, for the pool's tasks to end."""


class Pool(Generic[R]):
    """A pool of resources opened by a ``Connector`` (or a plain async factory).

    Use it as ``async with Pool(TCPConnector(host, port), max_size=10) as pool:`` and borrow
    with ``async with pool.acquire() as conn:``. A block that ends normally gives the resource
    back (after the connector's ``reset``, if it has one), unless the connector says it is
    dirty (unread bytes, EOF). A block that ends by **any** exception discards it — the
    protocol state is unknown — unless the connector has ``recover(resource, exc)``, which then
    runs detached (bounded by ``recover_timeout``) and returns it only if recovery succeeds.

    Every await the pool makes is bounded: connects by ``connect_timeout``, checks by
    ``check_timeout``, resets by ``reset_timeout``, recoveries by ``recover_timeout``, closes
    by ``close_timeout``; ``close(timeout)`` returns within its timeout plus a fraction of a
    second whatever the connector does.

    Args:
        connector: a ``Connector`` or an async factory ``() -> Awaitable[R]``.
        close: with a factory only: ``close(resource)``, sync or async (see
            ``FactoryConnector``).
        check: with a factory only: ``check(resource) -> bool``, is an idle one alive.
        reset: with a factory only: ``reset(resource)``, run on every clean return.
        is_reusable: with a factory only: ``is_reusable(resource) -> bool``, a cheap sync look
            on every return and checkout.
        recover: with a factory only: ``recover(resource, exc) -> bool``, after a block ended
            by ``exc``: may the resource be reused?
        abort: with a factory only: ``abort(resource)``, close at once, synchronously.
        init: with a factory only: ``init(resource)``, run once on each new resource before
            it is handed out (the on-connect hook; bounded by ``connect_timeout`` with the
            connect). A connector object has its own ``init`` method instead.
        min_size: connections kept open even when idle (opened by ``open()``).
        max_size: the most connections that exist at once, opening ones included.
        acquire_timeout: default seconds an acquire may wait, or ``None`` for no limit.
        max_idle: close connections idle this long (above ``min_size``); ``None``: never.
        max_lifetime: retire connections this old when returned; ``None``: never.
        check_after_idle: run ``check`` before handing out a connection idle this long.
        keepalive_interval: the background task runs ``check`` on connections idle this long.
        connect_retry: a ``Retry`` for opening connections.
        connect_backoff: how the pool backs off while connects fail (an ``aioconn.Backoff``;
            default: after 2 failures in a row, steps from 0.05 s doubling to 2 s, jittered).
            During such an outage at most one connect (a probe) starts per step, when a caller
            waits or the pool is below ``min_size``, and an acquire that nothing in flight can
            serve fails at once with ``ServerDown``; the first successful connect ends it.
            ``None``: no backoff (every waiter gets a connect of its own).
        reconnect_timeout: after connects have failed this many seconds (300 s), emit
            ``ReconnectFailed`` and call ``reconnect_failed``, once per outage; the pool
            keeps probing. ``None``: never.
        reconnect_failed: ``reconnect_failed(pool)``, sync or async, called as above (its
            errors are logged).
        max_uses: retire a connection once it has been given back this many times (as
            asyncpg's ``max_queries``); ``None``: no limit.
        connect_timeout: seconds one connect (with its ``init``) may take (30 s; ``None``: the
            connector's own bound only). Applies to factories too: a factory that never
            returns fails.
        check_timeout: seconds a ``check`` may take before the connection counts as dead (5 s).
        reset_timeout: seconds a ``reset`` may take before the connection is discarded (5 s).
        recover_timeout: seconds a ``recover`` may take before the connection is discarded
            (5 s).
        leak_timeout: warn (``LeakWarning`` + log, with the acquiring stack) about a connection
            held longer than this; ``None``: off.
        max_waiting: fail acquires with ``TooManyWaiters`` beyond this many queued callers.
        max_connecting: the most connects in flight at once (``open()`` filling ``min_size``,
            growth for waiters, refills); ``None``: no limit. The default, 100, stays under a
            typical listen backlog of 128, so a large pool does not storm its server.
        close_timeout: seconds closing one resource may take before it is aborted.
        on_event: called with each ``PoolEvent`` (its errors are logged, never raised).
        slow_acquire_threshold: emit ``AcquireWaitedLong`` for acquires that waited longer.
        name: shown in logs, errors and stats.

    Raises:
        TypeError, ValueError: for an invalid argument, naming it.
    """

    @overload
    def __init__(
        self,
        connector: Connector[R],
        *,
        min_size: int = ...,
        max_size: int = ...,
        acquire_timeout: float | None = ...,
        max_idle: float | None = ...,
        max_lifetime: float | None = ...,
        check_after_idle: float | None = ...,
        keepalive_interval: float | None = ...,
        connect_retry: Retry | None = ...,
        connect_backoff: Backoff | None = ...,
        reconnect_timeout: float | None = ...,
        reconnect_failed: Callable[[Pool[R]], Any] | None = ...,
        max_uses: int | None = ...,
        connect_timeout: float | None = ...,
        check_timeout: float = ...,
        reset_timeout: float = ...,
        recover_timeout: float = ...,
        leak_timeout: float | None = ...,
        max_waiting: int | None = ...,
        max_connecting: int | None = ...,
        close_timeout: float = ...,
        on_event: Callable[[PoolEvent], Any] | None = ...,
        slow_acquire_threshold: float | None = ...,
        name: str | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self,
        connector: Callable[[], Awaitable[R]],
        *,
        close: Callable[[R], Any] | None = ...,
        check: Callable[[R], Any] | None = ...,
        reset: Callable[[R], Any] | None = ...,
        is_reusable: Callable[[R], bool] | None = ...,
        recover: Callable[[R, BaseException], Any] | None = ...,
        abort: Callable[[R], Any] | None = ...,
        init: Callable[[R], Any] | None = ...,
        min_size: int = ...,
        max_size: int = ...,
        acquire_timeout: float | None = ...,
        max_idle: float | None = ...,
        max_lifetime: float | None = ...,
        check_after_idle: float | None = ...,
        keepalive_interval: float | None = ...,
        connect_retry: Retry | None = ...,
        connect_backoff: Backoff | None = ...,
        reconnect_timeout: float | None = ...,
        reconnect_failed: Callable[[Pool[R]], Any] | None = ...,
        max_uses: int | None = ...,
        connect_timeout: float | None = ...,
        check_timeout: float = ...,
        reset_timeout: float = ...,
        recover_timeout: float = ...,
        leak_timeout: float | None = ...,
        max_waiting: int | None = ...,
        max_connecting: int | None = ...,
        close_timeout: float = ...,
        on_event: Callable[[PoolEvent], Any] | None = ...,
        slow_acquire_threshold: float | None = ...,
        name: str | None = ...,
    ) -> None: ...

    def __init__(
        self,
        connector: Connector[R] | Callable[[], Awaitable[R]],
        *,
        close: Callable[[R], Any] | None = None,
        check: Callable[[R], Any] | None = None,
        reset: Callable[[R], Any] | None = None,
        is_reusable: Callable[[R], bool] | None = None,
        recover: Callable[[R, BaseException], Any] | None = None,
        abort: Callable[[R], Any] | None = None,
        init: Callable[[R], Any] | None = None,
        min_size: int = 0,
        max_size: int = 10,
        acquire_timeout: float | None = 30.0,
        max_idle: float | None = 600.0,
        max_lifetime: float | None = 3600.0,
        check_after_idle: float | None = 0.5,
        keepalive_interval: float | None = None,
        connect_retry: Retry | None = None,
        connect_backoff: Backoff | None = Backoff(),  # noqa: B008  (frozen: safe to share)
        reconnect_timeout: float | None = 300.0,
        reconnect_failed: Callable[[Pool[R]], Any] | None = None,
        max_uses: int | None = None,
        connect_timeout: float | None = 30.0,
        check_timeout: float = 5.0,
        reset_timeout: float = 5.0,
        recover_timeout: float = 5.0,
        leak_timeout: float | None = None,
        max_waiting: int | None = None,
        max_connecting: int | None = 100,
        close_timeout: float = 5.0,
        on_event: Callable[[PoolEvent], Any] | None = None,
        slow_acquire_threshold: float | None = 1.0,
        name: str | None = None,
    ) -> None:
        self._connector = connector = as_connector(
            connector,
            close=close,
            check=check,
            reset=reset,
            is_reusable=is_reusable,
            recover=recover,
            abort=abort,
            init=init,
        )
        min_size, max_size = check_sizes(min_size, max_size)
        acquire_timeout = _validate.timeout("acquire_timeout", acquire_timeout)
        max_idle = _validate.timeout("max_idle", max_idle)
        max_lifetime = _validate.timeout("max_lifetime", max_lifetime)
        check_after_idle = _validate.timeout("check_after_idle", check_after_idle)
        keepalive_interval = _validate.timeout("keepalive_interval", keepalive_interval)
        if connect_retry is not None and not isinstance(connect_retry, Retry):
            raise TypeError(
                f"connect_retry must be an aioconn.Retry or None, got {connect_retry!r}"
            )
        if connect_backoff is not None and not isinstance(connect_backoff, Backoff):
            raise TypeError(
                f"connect_backoff must be an aioconn.Backoff or None, got {connect_backoff!r}"
            )
        reconnect_timeout = _validate.timeout("reconnect_timeout", reconnect_timeout)
        if reconnect_failed is not None and not callable(reconnect_failed):
            raise TypeError(f"reconnect_failed must be callable or None, got {reconnect_failed!r}")
        connect_timeout = _validate.timeout("connect_timeout", connect_timeout)
        bounds = {
            key: _validate.seconds(key, value)
            for key, value in (
                ("check_timeout", check_timeout),
                ("reset_timeout", reset_timeout),
                ("recover_timeout", recover_timeout),
                ("close_timeout", close_timeout),
            )
        }
        leak_timeout = _validate.timeout("leak_timeout", leak_timeout)
        if max_waiting is not None:
            max_waiting = _validate.integer("max_waiting", max_waiting, minimum=0)
        if max_uses is not None:
            max_uses = _validate.integer("max_uses", max_uses, minimum=1)
        if max_connecting is not None:
            max_connecting = _validate.integer("max_connecting", max_connecting, minimum=1)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        self.name = name or f"pool-{id(self):x}"
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable or None, got {on_event!r}")
        self._on_event = on_event
        # The core, the runner and a connector's bind_events get this function, which holds no
        # reference to the pool: a pool dropped without close() is freed at once (and warns).
        self._emit = _emitter(self.name, on_event)
        slow_acquire = _validate.timeout("slow_acquire_threshold", slow_acquire_threshold)

        has_check = getattr(connector, "check", None) is not None
        hooks: Hooks[R] = Hooks(connector, safe=(connection_reusable,))
        # Idle time after which a checkout runs `check` (infinite: never). A balancing
        # connector chooses among the idle connections on every acquire: none is "fresh".
        fresh_window = (
            check_after_idle if has_check and check_after_idle is not None else float("inf")
        )
        if hooks.choose_idle is not None:
            fresh_window = -1.0
        self._core: PoolCore[R] = PoolCore(
            self.name,
            hooks,
            min_size=min_size,
            max_size=max_size,
            max_waiting=max_waiting,
            max_idle=max_idle,
            max_lifetime=max_lifetime,
            keepalive_interval=keepalive_interval,
            fresh_window=fresh_window,
            emit=self._emit,
            max_uses=max_uses,
            backoff=connect_backoff,
            reconnect_timeout=reconnect_timeout,
        )
        self._runner: PoolRunner[R] = PoolRunner(
            self._core,
            connector,
            connect_timeout=connect_timeout,
            check_timeout=bounds["check_timeout"],
            reset_timeout=bounds["reset_timeout"],
            recover_timeout=bounds["recover_timeout"],
            close_timeout=bounds["close_timeout"],
            connect_retry=connect_retry,
            max_connecting=max_connecting,
            acquire_timeout=acquire_timeout,
            leak_timeout=leak_timeout,
            slow_acquire=slow_acquire,
            emit=self._emit,
            reconnect_failed=_bound_to(self, reconnect_failed),
        )
        self._maintenance_period = maintenance_period(max_idle, max_lifetime, keepalive_interval)
        self._maintenance: asyncio.Task[None] | None = None
        bind_events = getattr(connector, "bind_events", None)
        if bind_events is not None:
            bind_events(self._emit, self.name)
        bind_room = getattr(connector, "bind_room", None)
        if bind_room is not None:  # an Endpoints: room under its caps can appear on its own
            bind_room(self._runner.room_freed)
        frame = sys._getframe(1)
        self._created_where = f"{frame.f_code.co_filename}:{frame.f_lineno}"

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self, *, wait: bool = True) -> Self:
        """Open ``min_size`` connections concurrently and start the maintenance task.

        Args:
            wait: wait for the ``min_size`` connections (and fail if one cannot be opened).
                ``False``: return at once and let them open in the background — the pool
                starts even while its server is down, failed connects are retried at every
                maintenance round — and ``await pool.wait()`` when you need them.

        Raises:
            ConnectError: a ``min_size`` connection could not be opened (the pool is closed).
            PoolClosed: ``close()`` was called while it opened, or before.
            RuntimeError: the pool was already opened.
        """
        core, runner = self._core, self._runner
        if core.state != NEW:
            if core.state == OPEN:
                raise RuntimeError(f"{self!r} was already opened")
            raise PoolClosed(f"{self.name} is closed; a closed pool cannot be opened again")
        runner.start(asyncio.get_running_loop(), threading.get_ident())
        _registry.open_pools.add(self)
        core.reset_counters()
        runner.collect_openers = True
        try:
            core.open()
            runner.flush()
        finally:
            runner.collect_openers = False
        openers, runner.openers = runner.openers, []
        if openers and wait:
            try:
                await asyncio.wait(openers)
            except BaseException:
                await self.close()
                raise
            if core.state != OPEN:
                raise PoolClosed(f"{self.name} was closed while opening")
            failures = [
                error
                for error in (t.result() for t in openers if not t.cancelled())
                if error is not None
            ]
            if failures:
                await self.close()
                raise failures[0]
        if core.state != OPEN:
            raise PoolClosed(f"{self.name} was closed while opening")
        self._maintenance = runner.spawn(
            run_maintenance(weakref.ref(runner), self._maintenance_period), background=True
        )
        logger.debug("opened %r", self)
        return self

    async def wait(self, timeout: float | None = 30.0) -> None:
        """Wait until ``min_size`` connections are open (after ``open(wait=False)``).

        Args:
            timeout: seconds to wait at most; ``None``: no limit.

        Raises:
            PoolTimeout: fewer than ``min_size`` connections after ``timeout`` seconds.
            PoolClosed: the pool is closed (or closes meanwhile).
            RuntimeError: the pool was never opened.
        """
        limit = _validate.timeout("timeout", timeout)
        core, runner = self._core, self._runner
        if core.state == NEW or runner.grew is None:
            raise RuntimeError(f"{self.name} is not open; call open() first")
        try:
            async with asyncio.timeout(limit):
                while len(core.slots) < core.min_size:
                    if core.state != OPEN:
                        raise PoolClosed(f"{self.name} is closed")
                    runner.grew.clear()
                    await runner.grew.wait()
        except TimeoutError:
            raise PoolTimeout(
                f"{self.name}: {len(core.slots)} of min_size={core.min_size} connections open"
                f" after {limit} s ({core.connect_failures} connects failed)"
            ) from None
        if core.state != OPEN:
            raise PoolClosed(f"{self.name} is closed")

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, timeout: float | None = 10.0) -> None:
        """Close the pool: refuse acquires, fail waiters, close idle, wait for leases, abort.

        New acquires and current waiters get ``PoolClosed``. Idle connections are closed, and
        so is every connection given back from now on. Connections in use are waited for up to
        ``timeout`` seconds (``None``: no limit); then everything left — leases (``get()``
        ones of the calling task included), connects, checks, resets, recoveries, closes — is
        aborted, each lease logged with where it was acquired and where its holder is now.
        Returns within ``timeout`` plus half a second, whatever the connector does (a
        connector without ``abort`` may still be finishing its last closes, each bounded by
        ``close_timeout``).

        Idempotent: several calls may wait together; a call that is cancelled leaves the pool
        closing, and the next call finishes the job. Called from inside an ``acquire()`` block
        of this same pool, it does not wait for the calling task's own blocks: each closes
        its connection when it ends, and that block's exit waits for the close.
        Called from another event loop after the pool's own loop was closed, it aborts every
        connection at once (nothing can be awaited on a closed loop).

        Args:
            timeout: seconds to wait for connections in use before aborting them; ``None``:
                no limit.

        Raises:
            RuntimeError: called from another event loop while the pool's loop still runs.
        """
        limit = _validate.timeout("timeout", timeout)
        core, runner = self._core, self._runner
        if core.state == NEW:
            core.state = DONE
            return
        if core.state == DONE:
            return
        loop = asyncio.get_running_loop()
        if loop is not runner.loop:
            self._close_from_elsewhere()
            return
        if core.state == OPEN:
            core.begin_close(current_task(loop))
            runner.cancel_background()
            runner.flush()
        else:
            core.close_owner = current_task(loop)
        assert runner.drained is not None
        core.reconcile()  # the caller may be another task: is the pool drained for it?
        runner.flush()
        try:
            async with asyncio.timeout(limit):
                await runner.drained.wait()
        except TimeoutError:
            core.abort_all(runner.describe)
            runner.flush()
        await runner.wind_down(_CLOSE_GRACE)
        self._finish_close()

    def _close_from_elsewhere(self) -> None:
        loop = self._runner.loop
        if loop is not None and not loop.is_closed() and loop.is_running():
            raise RuntimeError(
                f"{self.name} belongs to another event loop, which still runs; call close()"
                " there (asyncio.run_coroutine_threadsafe)"
            )
        logger.warning("%s: closed from another event loop; aborting its connections", self.name)
        core, runner = self._core, self._runner
        if core.state == OPEN:
            core.begin_close(None)
        core.abort_all(runner.describe)
        for _, slot in core.effects:
            if slot is not None:
                runner.call_abort(slot.resource)
        core.effects.clear()
        runner.tasks.clear()
        runner.background.clear()
        self._finish_close()

    def _finish_close(self) -> None:
        core = self._core
        if core.state == DONE:
            return
        core.finish_close()
        _registry.open_pools.discard(self)
        logger.debug("closed %r", self)

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None and core.state == OPEN:
            warnings.warn(
                f"unclosed {self!r}, created at {self._created_where}",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )
            if self._maintenance is not None and not self._maintenance.done():
                self._maintenance.cancel()

    # -- acquire and give back ---------------------------------------------------------------

    def acquire(self, timeout: CallTimeout = DEFAULT) -> Lease[R]:
        """Borrow a resource: ``async with pool.acquire() as conn:``.

        ``await pool.acquire()`` (without ``async with``) is ``await pool.get()``.

        Args:
            timeout: overrides ``acquire_timeout`` for this call (``None``: wait forever;
                ``0``: do not wait — an idle connection now, or ``PoolTimeout`` at once).

        Raises (on entry):
            PoolTimeout: none became available in time.
            PoolClosed: the pool is closed.
            TooManyWaiters: ``max_waiting`` callers already wait.
            ConnectError: opening the connection this caller waited for failed.
            RuntimeError: the pool is not open, or belongs to another event loop.
            TypeError, ValueError: ``timeout`` is not a positive number of seconds or None.
        """
        if timeout is not DEFAULT:
            _validate.wait_timeout("timeout", timeout)
        lease: Lease[R] = Lease()
        lease._runner = self._runner
        lease._timeout = timeout
        return lease

    async def get(self, timeout: CallTimeout = DEFAULT) -> R:
        """Borrow a resource; give it back with ``put``. Prefer ``acquire()``.

        Args:
            timeout: overrides ``acquire_timeout`` for this call (``None``: wait forever;
                ``0``: do not wait — an idle connection now, or ``PoolTimeout`` at once).

        Returns:
            The resource, leased to the caller until ``put``.

        Raises:
            PoolTimeout: none became available in time.
            PoolClosed: the pool is not open.
            TooManyWaiters: ``max_waiting`` callers already wait.
            ConnectError: opening the connection this caller waited for failed.
            TypeError, ValueError: ``timeout`` is not a positive number of seconds or None.
        """
        if timeout is not DEFAULT:
            _validate.wait_timeout("timeout", timeout)  # before the fast path, never by luck
        return await get(self._runner, timeout)

    async def put(self, resource: R, *, discard: bool = False) -> None:
        """Give back a resource from ``get``; ``discard=True`` closes it instead.

        Runs the connector's ``reset`` first, if it has one (a failing, hanging or interrupted
        reset discards the resource). Completes its bookkeeping even if the caller is
        cancelled. A resource can never be given back twice or by a caller that does not
        hold it: the pool's books stay as they were and ``put`` raises.

        Args:
            resource: what ``get()`` returned.
            discard: close it instead of reusing it (counted as ``requested``).

        Raises:
            RuntimeError: the resource was already given back (and perhaps handed to another
                caller meanwhile) or is held by an ``acquire()`` block.
            ValueError: the resource does not come from this pool.
        """
        core, runner = self._core, self._runner
        slot = core.slots.get(id(resource))
        if slot is None or slot.resource is not resource:
            if core.aborted_gets.pop(id(resource), None) is resource:
                return  # close() aborted it already; nothing left to do
            raise ValueError(
                f"{resource!r} was not acquired from {self.name} (or already returned)"
            )
        holder = slot.holder
        if slot.state != LEASED or holder is None:
            raise RuntimeError(f"{resource!r} was already returned to {self.name}")
        if holder.block:
            raise RuntimeError(
                f"{resource!r} is held by an `async with {self.name}.acquire()` block,"
                " which gives it back when it ends; do not put() it"
            )
        owner = slot.owner
        if owner is None:
            raise RuntimeError(
                f"{resource!r} was already returned to {self.name}, and handed to a caller"
                " not yet awake"
            )
        me = asyncio.current_task()
        if slot.returned_by is me and owner is not me and not owner.done():
            # This task gave it back already, and another caller got it meanwhile.
            raise RuntimeError(
                f"{resource!r} was already returned to {self.name} by this task, and is"
                f" held by {owner.get_name()} now"
            )
        slot.returned_by = me
        if discard:
            core.release(slot, "requested")
        elif runner.reset is not None and core.state == OPEN:
            await runner.give_back(slot)
            return
        else:
            core.release(slot, None)
        runner.flush()
        if slot.closer is not None and core.state != OPEN:
            await asyncio.shield(slot.closer)

    # -- maintenance on demand ---------------------------------------------------------------

    def expire(self) -> int:
        """Retire every connection: idle ones now, those in use when they are given back.

        For a server that changed (a failover, new credentials): the connections opened from
        now on are new. Counted as ``Discards.expired``.

        Returns:
            How many idle connections were closed at once.

        Raises:
            PoolClosed: the pool is not open.
        """
        if self._core.state != OPEN:
            raise PoolClosed(f"{self.name} is not open")
        retired = self._core.expire()
        self._runner.flush()
        return retired

    async def check(self) -> int:
        """Check every idle connection now (the connector's ``check``, within
        ``check_timeout``); dead ones are discarded and replaced as needed.

        Without a ``check`` hook, the idle connections the connector's ``is_reusable``
        rejects are discarded. Connections in use are not touched.

        Returns:
            How many idle connections were found dead.

        Raises:
            PoolClosed: the pool is not open.
        """
        core, runner = self._core, self._runner
        if core.state != OPEN:
            raise PoolClosed(f"{self.name} is not open")
        if runner.check is None:
            before = core.discards["not_reusable"]
            core.retire_idle("not_reusable")
            runner.flush()
            return core.discards["not_reusable"] - before
        slots = core.take_idle_for_check()
        runner.flush()
        tasks = [
            runner.spawn(
                runner.keepalive(slot),
                background=True,
                unstarted=functools.partial(runner.report_check, slot, False),
            )
            for slot in slots
        ]
        if not tasks:
            return 0
        # If this caller is cancelled, the checks go on and report to the core themselves.
        await asyncio.wait(tasks)
        return sum(1 for t in tasks if t.cancelled() or t.exception() or not t.result())

    def reset_stats(self) -> None:
        """Zero the counters and distributions of ``stats()`` (the current state stays)."""
        self._core.reset_counters()

    # -- runtime control & introspection -----------------------------------------------------

    def drain(self, endpoint: str) -> None:
        """Stop opening connections to ``endpoint`` and close its idle ones (rolling restarts).

        Its connections in use are closed when returned.

        Args:
            endpoint: the endpoint, as ``host:port`` or ``unix:/path``.

        Raises:
            TypeError: the pool's connector is not an ``aioconn.Endpoints``.
            ValueError: ``endpoint`` is not one of its endpoints.
        """
        self._endpoints_connector("drain").drain(endpoint)
        self._core.retire_idle("drained")
        self._runner.flush()

    def update_endpoints(self, endpoints: Any) -> None:
        """Replace the set of endpoints at run time without dropping connections in use.

        Connections to removed endpoints are closed: idle ones now, in-use ones on return.

        Args:
            endpoints: the new endpoints, as ``aioconn.Endpoints`` takes them.

        Raises:
            TypeError: the pool's connector is not an ``aioconn.Endpoints``, or an endpoint
                is invalid (as the constructor).
        """
        self._endpoints_connector("update_endpoints").update_endpoints(endpoints)
        self._core.retire_idle("drained")
        self._runner.flush()

    def _endpoints_connector(self, what: str) -> Any:
        if not hasattr(self._connector, what):
            raise TypeError(
                f"{what}() needs an aioconn.Endpoints connector, not {self._connector!r}"
            )
        return self._connector

    def resize(self, min_size: int | None = None, max_size: int | None = None) -> None:
        """Change the size limits at run time.

        Lowering ``max_size`` closes surplus idle connections at once and surplus in-use ones
        as they are returned; raising it lets waiters get new connections at once.

        Args:
            min_size: the new ``min_size`` (``None``: unchanged).
            max_size: the new ``max_size`` (``None``: unchanged).

        Raises:
            PoolClosed: the pool is closing or closed.
            TypeError, ValueError: an invalid size, naming it.
        """
        core = self._core
        new_min, new_max = check_sizes(
            core.min_size if min_size is None else min_size,
            core.max_size if max_size is None else max_size,
        )
        if core.state in (CLOSING, DONE):
            raise PoolClosed(f"{self.name} is closed; resize() has nothing to resize")
        if core.state == NEW:
            core.min_size, core.max_size = new_min, new_max
            return
        core.resize(new_min, new_max)
        self._runner.flush()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the pool was opened on (None before ``open()``); use it only there."""
        return self._runner.loop

    @property
    def created_where(self) -> str:
        """``file:line`` of the code that created this pool."""
        return self._created_where

    @property
    def closed(self) -> bool:
        """True once ``close()`` has begun."""
        return self._core.state in (CLOSING, DONE)

    @property
    def min_size(self) -> int:
        """The current ``min_size``."""
        return self._core.min_size

    @property
    def max_size(self) -> int:
        """The current ``max_size``."""
        return self._core.max_size

    def stats(self) -> PoolStats:
        """An immutable snapshot of the pool's state and counters since ``open()``."""
        core = self._core
        return PoolStats(
            name=self.name,
            size=core.size(),
            idle=len(core.idle),
            in_use=core.in_use(),
            opening=core.opening,
            checking=core.checking,
            waiting=core.waiting,
            min_size=core.min_size,
            max_size=core.max_size,
            acquired=core.wait_times.count + core.instant_acquires,
            released=core.hold_times.count,
            created=core.created,
            connect_failures=core.connect_failures,
            timeouts=core.timeouts,
            discarded=Discards(**core.discards),
            acquire_wait=core.wait_times.snapshot(zeros=core.instant_acquires),
            hold_time=core.hold_times.snapshot(),
            connect_time=core.connect_times.snapshot(),
            endpoints=self._endpoint_stats(),
            returning=core.returning,
            unreachable_for=None if core.outage is None else monotonic() - core.outage.since,
        )

    def _endpoint_stats(self) -> tuple[EndpointStats, ...]:
        stats_of = getattr(self._connector, "endpoint_stats", None)
        if stats_of is None or self._core.hooks.endpoint_of is None:
            return ()
        idle: dict[str, int] = {}
        for slot in self._core.idle:
            key = self._core.endpoint(slot.resource) or ""
            idle[key] = idle.get(key, 0) + 1
        return tuple(
            dataclasses.replace(entry, idle=idle.get(entry.endpoint, 0)) for entry in stats_of()
        )

    def check_invariants(self) -> None:
        """Raise ``AssertionError`` if the pool's books are inconsistent.

        For tests: ``aioconn.testing``'s schedule-exploring loop calls it after every loop
        iteration. Cheap enough for that, not for production hot paths (it walks every slot).
        """
        self._core.check_invariants()

    def __repr__(self) -> str:
        core = self._core
        return (
            f"<aioconn.Pool {self.name!r} [{core.state} | {core.in_use()} in use,"
            f" {len(core.idle)} idle, {core.opening} opening, {core.waiting} waiting"
            f" | max_size={core.max_size}]>"
        )
