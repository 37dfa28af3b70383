"""The pool's async shell: it carries out what the core asks, and bounds every await.

``PoolCore`` decides; this runs the I/O its decisions need — connects, closes, keepalive
checks, resets, recoveries — each in a bounded await, and reports each outcome back to the
core as an event. A connector hook that raises anything (``BaseException`` included) or hangs
ends as a failed event: it never strands a slot or a waiter.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from ._core import (
    ABORT,
    CHECK,
    CLOSE,
    DRAINED,
    NEW,
    OPEN,
    OPEN_ONE,
    OPEN_PROBE,
    RECONNECT_FAILED,
    RETRY,
    PoolCore,
)
from ._leak import describe_holder, watch_for_leak
from ._outage import Outage
from ._pool_config import as_connect_error
from ._slot import Slot, Waiter
from .connection import Connection
from .errors import ConnectError, ConnectTimeout, PoolClosed
from .events import AcquireWaitedLong, ConnectFailed, ConnectionOpened, PoolEvent
from .retry import Retry

__all__ = ["PoolRunner"]

R = TypeVar("R")
logger = logging.getLogger("aioconn.pool")
_monotonic = time.monotonic


def reraise_if_ours(exc: BaseException) -> None:
    """Re-raise what must propagate from a detached task: its own cancellation, interrupts.

    A ``CancelledError`` the task did not get (a connector raising one by itself) is a
    failure like any other, not a reason to stop.
    """
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        raise exc
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise exc


class PoolRunner(Generic[R]):
    """The async half of one pool (``Pool`` holds one; ``Lease`` uses it)."""

    def __init__(
        self,
        core: PoolCore[R],
        connector: Any,
        *,
        connect_timeout: float | None,
        check_timeout: float,
        reset_timeout: float,
        recover_timeout: float,
        close_timeout: float,
        connect_retry: Retry | None,
        max_connecting: int | None,
        acquire_timeout: float | None,
        leak_timeout: float | None,
        slow_acquire: float | None,
        emit: Callable[[PoolEvent], None],
        reconnect_failed: Callable[[], object] | None = None,
    ) -> None:
        self.core = core
        self.name = core.name
        self.connector = connector
        self.check: Callable[[R], Awaitable[Any]] | None = getattr(connector, "check", None)
        self.reset: Callable[[R], Awaitable[Any]] | None = getattr(connector, "reset", None)
        core.resets = self.reset is not None
        self.recover: Callable[[R, BaseException], Awaitable[Any]] | None = getattr(
            connector, "recover", None
        )
        self.abort: Callable[[R], Any] | None = getattr(connector, "abort", None)
        self.init: Callable[[R], Awaitable[Any]] | None = getattr(connector, "init", None)
        self.connect_timeout = connect_timeout
        self.check_timeout = check_timeout
        self.reset_timeout = reset_timeout
        self.recover_timeout = recover_timeout
        self.close_timeout = close_timeout
        self.connect_retry = connect_retry
        self.max_connecting = max_connecting
        self.acquire_timeout = acquire_timeout
        self.leak_timeout = leak_timeout
        # Lease.__aenter__'s fast path may skip three questions, all fixed for the pool's life:
        # no idle time makes a checkout run `check`, no is_reusable hook, no leak watch.
        self.plain_checkout = (
            core.fresh_window == float("inf")
            and core.is_reusable_hook is None
            and leak_timeout is None
        )
        self.slow_acquire = slow_acquire
        self.emit = emit
        self.reconnect_failed = reconnect_failed  # the user's callback, bound to the pool
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = 0  # the thread that opened the pool: the fast path runs only there
        self.monotonic_loop = False  # loop.time() is time.monotonic() (asyncio's own loops)
        self.new_future: Callable[[], asyncio.Future[Any]] = asyncio.Future
        # What a fast clean exit returns to be awaited: done, with None (Lease.__aexit__).
        self.exited: asyncio.Future[None]  # set by start(), before any lease
        self.gate: asyncio.Semaphore | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.background: set[asyncio.Task[Any]] = set()  # cancelled by close(): all but closers
        self.openers: list[asyncio.Task[BaseException | None]] = []  # collected by open()
        self.collect_openers = False
        self.drained: asyncio.Event | None = None
        self.grew: asyncio.Event | None = None  # set whenever a connect succeeds (Pool.wait)
        self.closers: dict[asyncio.Task[Any], Slot[R]] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = float("inf")
        self.retry_timer: asyncio.TimerHandle | None = None  # an outage's next step
        self.retry_at = float("inf")

    def start(self, loop: asyncio.AbstractEventLoop, thread: int) -> None:
        self.loop = loop
        self.thread = thread
        self.monotonic_loop = type(loop).time is asyncio.BaseEventLoop.time
        # A waiter's future, made without the frame of asyncio's own create_future (~20 ns of a
        # contended acquire); a loop with a create_future of its own (uvloop's) is asked.
        if type(loop).create_future is asyncio.BaseEventLoop.create_future:
            self.new_future = functools.partial(asyncio.Future, loop=loop)
        else:
            self.new_future = loop.create_future
        if self.max_connecting is not None:
            self.gate = asyncio.Semaphore(self.max_connecting)
        self.drained = asyncio.Event()
        self.grew = asyncio.Event()
        self.exited = loop.create_future()
        self.exited.set_result(None)

    def ready(self, resource: R) -> asyncio.Future[R]:
        """A done future with ``resource``: what Lease.__aenter__'s fast path returns."""
        assert self.loop is not None
        future: asyncio.Future[R] = self.loop.create_future()
        future.set_result(resource)
        return future

    # -- carrying out the core's effects ----------------------------------------------------

    def flush(self) -> None:
        """Carry out the effects the core asked for (it may ask for more meanwhile)."""
        core = self.core
        while core.effects:
            batch, core.effects = core.effects, []
            for kind, slot in batch:
                if kind in (OPEN_ONE, OPEN_PROBE):
                    # The core set probing when it asked: no connect has ended since.
                    probe = core.probing if kind == OPEN_PROBE else None
                    task = self.spawn(
                        self.open_one(probe),
                        background=True,
                        unstarted=functools.partial(self.open_unstarted, probe),
                    )
                    if self.collect_openers:
                        self.openers.append(task)
                elif kind == RETRY:
                    self.arm_retry()
                elif kind == CLOSE:
                    assert slot is not None
                    self.start_close(slot)
                elif kind == ABORT:
                    assert slot is not None
                    self.abort_resource(slot)
                elif kind == CHECK:
                    assert slot is not None
                    self.spawn(
                        self.keepalive(slot),
                        background=True,
                        unstarted=functools.partial(self.report_check, slot, False),
                    )
                elif kind == DRAINED and self.drained is not None:
                    self.drained.set()
                elif kind == RECONNECT_FAILED:
                    self.call_reconnect_failed()

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        background: bool,
        unstarted: Callable[[], object] | None = None,
    ) -> asyncio.Task[Any]:
        """Run ``coro`` in a task the pool tracks (and ``close()`` ends).

        A task cancelled before its first step never runs its body, so none of the body's own
        ``except BaseException`` bookkeeping: ``unstarted`` then reports to the core instead.
        """
        started: list[bool] = []
        inner = coro
        if unstarted is not None:
            coro = _started(inner, started)
        # Strong references: the loop keeps only weak ones to tasks.
        task: asyncio.Task[Any] = asyncio.ensure_future(coro, loop=self.loop)
        if unstarted is not None:

            def fall_back(_: object) -> None:
                if not started:
                    inner.close()  # never awaited: close it quietly
                    unstarted()

            task.add_done_callback(fall_back)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if background:
            self.background.add(task)
            task.add_done_callback(self.background.discard)
        return task

    def room_freed(self) -> None:
        """The connector gained room to open outside a pool event (``Endpoints.bind_room``)."""
        self.core.room_freed()
        self.flush()

    def open_unstarted(self, probe: Outage | None) -> None:
        self.core.connect_failed(None, probe)
        self.flush()

    def arm_retry(self) -> None:
        """Wake the core when the outage's backoff step ends (one timer, re-armed if sooner)."""
        outage = self.core.outage
        if outage is None or self.loop is None or outage.retry_at >= self.retry_at:
            return
        if self.retry_timer is not None:
            self.retry_timer.cancel()
        self.retry_at = outage.retry_at
        # The core keeps time.monotonic(); the loop's clock may differ (uvloop): a delay, 1 ms
        # long so that a coarse loop clock does not fire it early (the core would ask again).
        delay = max(0.0, outage.retry_at - _monotonic()) + 0.001
        self.retry_timer = self.loop.call_later(delay, self.on_retry)

    def on_retry(self) -> None:
        self.retry_timer = None
        self.retry_at = float("inf")
        self.core.retry_due()  # fired early by the loop's clock: the core asks again (RETRY)
        self.flush()

    def cancel_retry(self) -> None:
        if self.retry_timer is not None:
            self.retry_timer.cancel()
            self.retry_timer = None
            self.retry_at = float("inf")

    def call_reconnect_failed(self) -> None:
        """Run the pool's ``reconnect_failed`` callback; an async one runs in a task."""
        callback = self.reconnect_failed
        if callback is None:
            return
        try:
            result = callback()
        except Exception:
            logger.exception("%s: the reconnect_failed callback raised", self.name)
            return
        if asyncio.iscoroutine(result):
            self.spawn(self.await_callback(result), background=True)

    async def await_callback(self, result: Coroutine[Any, Any, Any]) -> None:
        try:
            await result
        except Exception:
            logger.exception("%s: the reconnect_failed callback raised", self.name)

    def report_check(self, slot: Slot[R], alive: bool) -> None:
        self.core.check_done(slot, alive)
        self.flush()

    def report_returned(self, slot: Slot[R], failure: str | None) -> None:
        self.core.returned(slot, failure)
        self.flush()

    def close_unstarted(self, slot: Slot[R]) -> None:
        self.call_abort(slot.resource)
        self.core.close_done()
        self.flush()

    # -- opening ----------------------------------------------------------------------------

    async def open_one(self, probe: Outage | None = None) -> BaseException | None:
        """Open one resource for the pool; the core decides where it goes. Returns the error.

        ``probe``: the outage this connect is the one probe of (a backoff step), or None.
        """
        core = self.core
        started = _monotonic()
        try:
            if self.gate is None:
                resource = await self.connect()
            else:
                async with self.gate:
                    started = _monotonic()
                    resource = await self.connect()
        except BaseException as exc:
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
                core.connect_failed(None, probe)  # the pool cancelled it (closing)
                self.flush()
                raise
            error = self.connect_error(exc)
            logger.warning("%s", error)
            if isinstance(exc, Exception):
                self.emit(ConnectFailed(self.name, exc, None))
            core.connect_failed(error, probe)
            self.flush()
            reraise_if_ours(exc)
            return error
        if id(resource) in core.slots:
            error = self.connect_error(
                RuntimeError(
                    f"{self.name}: the connector returned {resource!r}, which the pool already"
                    " holds; connect() must return a new resource each time"
                )
            )
            core.connect_failed(error, probe)
            self.flush()
            return error
        took = _monotonic() - started
        slot = core.connect_done(resource, took, probe)
        if isinstance(resource, Connection):
            resource._adopt(slot, self.name)  # I/O after a release now raises
        if self.grew is not None:
            self.grew.set()
        self.emit(ConnectionOpened(self.name, resource, core.endpoint(resource), took))
        self.flush()
        return None

    async def connect(self) -> R:
        """One ``connector.connect()`` bounded by ``connect_timeout``, through ``connect_retry``."""
        if self.connect_retry is None:
            return await self.connect_once()
        result: R = await self.connect_retry.call(
            self.connect_once, retry_on=(Exception,), description=f"{self.name} connect"
        )
        return result

    async def connect_once(self) -> R:
        if self.connect_timeout is None:
            return await self.connect_and_init()
        try:
            async with asyncio.timeout(self.connect_timeout):
                return await self.connect_and_init()
        except TimeoutError as exc:
            if isinstance(exc, ConnectTimeout):
                raise
            raise ConnectTimeout(
                f"{self.name}: connect did not finish within"
                f" connect_timeout={self.connect_timeout} s"
            ) from None

    async def connect_and_init(self) -> R:
        """``connect()``, then the connector's on-connect ``init`` (one bounded step)."""
        resource: R = await self.connector.connect()
        if self.init is not None:
            try:
                await self.init(resource)
            except BaseException:
                # Never handed out: close it here (at once if the connector can abort).
                if self.abort is not None:
                    self.call_abort(resource)
                else:
                    self.spawn(self.close_unborn(resource), background=False)
                raise
        return resource

    async def close_unborn(self, resource: R) -> None:
        """Close a resource whose ``init`` failed, within ``close_timeout``."""
        try:
            async with asyncio.timeout(self.close_timeout):
                await self.connector.close(resource)
        except Exception:
            logger.info("%s: closing %r after its init failed also failed", self.name, resource)

    def connect_error(self, exc: BaseException) -> BaseException:
        """A connect failure as a waiter should see it."""
        if isinstance(exc, Exception):
            return as_connect_error(exc, self.name)
        error = ConnectError(f"{self.name}: opening a connection failed: {exc!r}")
        error.__cause__ = exc
        return error

    # -- closing one resource -----------------------------------------------------------------

    async def close_resource(self, slot: Slot[R]) -> None:
        """Close a discarded resource within ``close_timeout``, else abort it."""
        resource = slot.resource
        try:
            async with asyncio.timeout(self.close_timeout):
                await self.connector.close(resource)
        except TimeoutError:
            logger.warning(
                "%s: closing %r took over close_timeout=%s s",
                self.name,
                resource,
                self.close_timeout,
            )
            self.call_abort(resource)
        except Exception:
            logger.exception("%s: closing %r failed", self.name, resource)
            self.call_abort(resource)
        except BaseException as exc:
            self.call_abort(resource)
            self.core.close_done()
            self.flush()
            reraise_if_ours(exc)
            return
        self.core.close_done()
        self.flush()

    def start_close(self, slot: Slot[R]) -> None:
        task = self.spawn(
            self.close_resource(slot),
            background=False,
            unstarted=lambda: self.close_unstarted(slot),
        )
        slot.closer = task
        self.closers[task] = slot
        task.add_done_callback(self.closers.pop)

    def abort_resource(self, slot: Slot[R]) -> None:
        """Close at once, synchronously when the connector can abort; else in a task."""
        if self.abort is None:
            self.start_close(slot)
            return
        self.call_abort(slot.resource)
        self.core.close_done()

    def call_abort(self, resource: R) -> None:
        if self.abort is None:
            return
        try:
            self.abort(resource)
        except Exception:
            logger.exception("%s: aborting %r failed", self.name, resource)

    # -- checks, resets, recovery ---------------------------------------------------------------

    async def checked(self, resource: R, limit: float | None) -> bool:
        """Run ``check`` within ``check_timeout`` (and ``limit``); False if it fails or hangs."""
        assert self.check is not None
        bound = self.check_timeout if limit is None else min(self.check_timeout, limit)
        try:
            async with asyncio.timeout(bound):
                return bool(await self.check(resource))
        except TimeoutError:
            logger.info("%s: check of %r took over %s s", self.name, resource, bound)
            return False
        except Exception as exc:
            logger.info("%s: check of %r failed: %r", self.name, resource, exc)
            return False

    async def keepalive(self, slot: Slot[R]) -> bool:
        """Check an idle slot the core took aside; the core puts it back or discards it."""
        try:
            alive = await self.checked(slot.resource, None)
        except BaseException as exc:
            self.core.check_done(slot, False)
            self.flush()
            reraise_if_ours(exc)
            return False
        self.core.check_done(slot, alive)
        self.flush()
        return alive

    async def give_back(self, slot: Slot[R]) -> None:
        """A clean return through ``reset`` (bounded); a reset that fails discards the slot."""
        assert self.reset is not None
        core = self.core
        core.begin_return(slot)
        self.flush()
        failure: str | None = None
        try:
            async with asyncio.timeout(self.reset_timeout):
                await self.reset(slot.resource)
        except TimeoutError:
            logger.info(
                "%s: reset of %r took over %s s", self.name, slot.resource, self.reset_timeout
            )
            failure = "reset_failed"
        except Exception as exc:
            logger.info("%s: reset of %r failed: %r", self.name, slot.resource, exc)
            failure = "reset_failed"
        except BaseException:
            core.returned(slot, "reset_failed")
            self.flush()
            raise
        core.returned(slot, failure)
        self.flush()

    def start_recover(self, slot: Slot[R], exc: BaseException) -> None:
        """A block ended by ``exc``: recover the resource detached from the caller."""
        self.core.begin_return(slot)
        self.flush()
        self.spawn(
            self.recovered(slot, exc),
            background=True,
            unstarted=lambda: self.report_returned(slot, "recover_failed"),
        )

    async def recovered(self, slot: Slot[R], exc: BaseException) -> None:
        assert self.recover is not None
        try:
            async with asyncio.timeout(self.recover_timeout):
                ok = bool(await self.recover(slot.resource, exc))
        except TimeoutError:
            logger.info(
                "%s: recovery of %r took over %s s", self.name, slot.resource, self.recover_timeout
            )
            ok = False
        except Exception as error:
            logger.info("%s: recovery of %r failed: %r", self.name, slot.resource, error)
            ok = False
        except BaseException as error:
            self.core.returned(slot, "recover_failed")
            self.flush()
            reraise_if_ours(error)
            return
        del exc  # the caller's traceback: let it go
        self.core.returned(slot, None if ok else "recover_failed")
        self.flush()

    # -- waiting --------------------------------------------------------------------------------

    def enqueue(self, lease: Waiter, limit: float | None, started: float, elapsed: float) -> Any:
        """Queue ``lease``; returns the future the core resolves with a slot or an error."""
        loop = self.loop
        assert loop is not None
        future = self.new_future()
        deadline = None
        if limit is not None:
            lease.limit = limit
            # asyncio's own loops keep time with time.monotonic: no second clock read.
            deadline = started + limit if self.monotonic_loop else loop.time() + limit - elapsed
        self.core.enqueue(lease, future, deadline)
        if deadline is not None and deadline < self.timer_at:
            self.arm_timer()
        if self.core.effects:
            self.flush()
        return future

    def arm_timer(self) -> None:
        """One timer for every queued waiter, set for the earliest deadline."""
        deadline = self.core.next_deadline()
        if self.timer is not None:
            if deadline is not None and deadline >= self.timer_at:
                return
            self.timer.cancel()
            self.timer = None
            self.timer_at = float("inf")
        if deadline is not None:
            assert self.loop is not None
            self.timer = self.loop.call_at(deadline, self.on_timer)
            self.timer_at = deadline

    def on_timer(self) -> None:
        self.timer = None
        self.timer_at = float("inf")
        assert self.loop is not None
        self.core.expire_due(self.loop.time())
        self.flush()
        self.arm_timer()

    def waiter_gone(self, lease: Waiter) -> None:
        self.core.waiter_gone(lease)
        if self.core.effects:
            self.flush()

    def woke(self, slot: Slot[R], lease: Waiter, owner: asyncio.Task[Any], started: float) -> None:
        """A queued caller woke with ``slot``: record the wait, watch for a leak."""
        waited = self.core.lease_to(slot, lease, owner, started)
        if self.slow_acquire is not None and waited > self.slow_acquire:
            self.waited_long(waited)
        if self.leak_timeout is not None:
            self.watch(slot)

    def waited_long(self, waited: float) -> None:
        assert self.slow_acquire is not None
        self.emit(AcquireWaitedLong(self.name, waited, self.slow_acquire))

    def watch(self, slot: Slot[R]) -> None:
        assert self.loop is not None
        assert self.leak_timeout is not None
        watch_for_leak(self.loop, slot, self.leak_timeout, self.name, self.emit)

    async def acquire_slow(
        self, lease: Waiter, owner: asyncio.Task[Any], timeout: float | None
    ) -> Slot[R]:
        """Take an idle slot (checked if need be) or queue for one; it comes back leased."""
        core = self.core
        started = _monotonic()
        elapsed = 0.0
        while core.idle and not core.waiting:
            slot, needs_check = core.take_idle(lease, started + elapsed)
            self.flush()
            if slot is None:
                break
            if needs_check:
                limit = None if timeout is None else max(0.0, timeout - elapsed)
                held = await self.check_for(slot, lease, limit)
                elapsed = _monotonic() - started
                if not held:
                    if core.state != OPEN:
                        raise core_closed(core.name)
                    if timeout is not None and elapsed >= timeout:
                        raise core.timeout_error(timeout)
                    continue
            self.woke(slot, lease, owner, started)
            return slot
        future = self.enqueue(lease, timeout, started, elapsed)
        try:
            handed: Slot[R] = await future
        except BaseException:
            self.waiter_gone(lease)
            raise
        self.woke(handed, lease, owner, started)
        return handed

    async def check_for(self, slot: Slot[R], lease: Waiter, limit: float | None) -> bool:
        """Check a slot ``take_idle`` set aside for ``lease``; True if ``lease`` now holds it."""
        try:
            alive = await self.checked(slot.resource, limit)
        except BaseException:
            self.core.checkout_checked(slot, lease, False)
            self.flush()
            raise
        held = self.core.checkout_checked(slot, lease, alive)
        self.flush()
        return held

    async def acquire_now(self, lease: Waiter, owner: asyncio.Task[Any]) -> Slot[R]:
        """``timeout=0``: an idle slot (checked if need be), or ``PoolTimeout`` at once."""
        core = self.core
        started = _monotonic()
        while core.idle and not core.waiting:
            slot, needs_check = core.take_idle(lease, _monotonic())
            self.flush()
            if slot is None:
                break
            if needs_check and not await self.check_for(slot, lease, None):
                continue
            self.woke(slot, lease, owner, started)
            return slot
        if core.state != OPEN:
            raise core_closed(self.name)
        raise core.timeout_error(0)

    # -- close ----------------------------------------------------------------------------------

    def cancel_background(self) -> None:
        """Stop opening, checking and recovering: the pool is closing."""
        self.cancel_retry()
        for task in list(self.background):
            task.cancel()

    async def wind_down(self, grace: float) -> None:
        """After close() aborted what was left: end the pool's tasks, waiting at most ``grace``."""
        ending = []
        for task in list(self.tasks):
            slot = self.closers.get(task)
            ending.append(task)
            if slot is not None:
                if self.abort is None:
                    continue  # nothing closes faster: let it run on, within close_timeout
                self.call_abort(slot.resource)
            task.cancel()
        if ending:
            _, pending = await asyncio.wait(ending, timeout=grace)
            for task in pending:
                logger.warning("%s: %r ignored cancellation; leaving it", self.name, task)

    def misuse_error(self) -> Exception:
        """Why an acquire cannot run here: not open, closed, or another loop or thread."""
        state = self.core.state
        if state == NEW:
            return RuntimeError(
                f"{self.name} is not open; use `async with pool` or `await pool.open()`"
            )
        if state != OPEN:
            return PoolClosed(f"{self.name} is closed")
        return RuntimeError(
            f"{self.name} belongs to another event loop than the running one;"
            " a pool can only be used from the loop that opened it"
        )

    def describe(self, slot: Slot[R]) -> str:
        return describe_holder(slot)

    def release_lost(self, lease: Waiter, slot: Slot[R]) -> None:
        """A block ended holding a slot that is no longer its own."""
        if getattr(lease, "aborted", False):
            return  # close() aborted it already; nothing left to do
        raise RuntimeError(f"{slot.resource!r} was already returned to {self.name}")


def core_closed(name: str) -> Exception:
    return PoolClosed(f"{name} is closed")


async def _started(coro: Coroutine[Any, Any, Any], started: list[bool]) -> Any:
    """Run ``coro``, noting in ``started`` that the task got its first step."""
    started.append(True)
    return await coro
