"""``Lease``: what ``pool.acquire()`` returns — an async context manager, and awaitable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from threading import get_ident
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ._core import OPEN
from ._slot import IDLE, LEASED, Slot, Waiter
from ._tasks import current_task
from .connection import DEFAULT, CallTimeout
from .stats import BATCH

if TYPE_CHECKING:
    from ._runner import PoolRunner

R = TypeVar("R")


class Lease(Waiter, Generic[R]):
    """``async with pool.acquire() as resource:`` — gets on entry, gives back on exit.

    The exit gives the resource back when the block ends normally (after the connector's
    ``reset``, if it has one). When the block ends by any exception — cancellation, a
    timeout, an ``OSError``, a driver's error or a ``ValueError`` of your own — the protocol
    state is unknown: the resource is discarded, unless the connector has ``recover``, which
    then runs detached from the caller and decides whether it may be reused.

    ``await pool.acquire()`` (without ``async with``) is ``await pool.get()``: give the
    resource back with ``pool.put()``.
    """

    __slots__ = ("_runner", "_slot", "_timeout")
    # No __init__: Pool.acquire() sets the fields (a Python __init__ cost ~50 ns of a ~1 µs
    # acquire + release: S1 in docs/benchmarks.md).
    _runner: PoolRunner[R]
    _timeout: CallTimeout
    _slot: Slot[R]

    # __aenter__ and __aexit__ are not coroutine functions (see the end of the class): their
    # fast paths complete without awaiting and return an awaitable that is already done
    # instead of paying for a coroutine object each (~100 ns of a ~0.9 µs acquire + release).
    # Awaiting a done future never suspends: no cancellation can land in it, as none could in
    # a coroutine that never awaits. Everything else is `_enter`'s and `_exit`'s, awaited.

    def _enter_now(self) -> Awaitable[R]:
        """``__aenter__``: the slot's ``ready`` future (its result is the resource) when a
        fresh idle slot is leased at once, else the ``_enter()`` coroutine."""
        runner = self._runner
        core = runner.core
        # The fast path, inlined (a call cost ~30 ns of a ~0.9 µs acquire + release): a fresh
        # idle slot while nobody queues, leased without awaiting. The core's reconcile step
        # would do nothing after it (idle slots exist only in an open pool; nobody waits; the
        # size does not change), so it is skipped. It runs only in the thread that opened the
        # pool, inside a task of the pool's loop: the current task of that loop is then ours.
        # (get_running_loop() would say so too, at ~120 ns on 3.11; get_ident() costs ~25.)
        idle = core.idle
        if (
            idle
            and not core.waiting
            and get_ident() == runner.thread
            and (owner := current_task(runner.loop)) is not None
        ):
            slot = idle.pop()
            now = monotonic()
            plain = runner.plain_checkout  # no check window, is_reusable or leak_timeout
            if slot.expires_at > now and (
                plain
                or (
                    now - slot.idle_since <= core.fresh_window
                    # never raises: the core wraps a hook that could (core._never_raising)
                    and (core.is_reusable_hook is None or core.is_reusable_hook(slot.resource))
                )
            ):
                core.instant_acquires += 1
                slot.state = LEASED
                slot.holder = self
                slot.leased_at = now
                slot.owner = owner
                if not plain and runner.leak_timeout is not None:
                    runner.watch(slot)
                self._slot = slot
                ready = slot.ready
                if ready is None:
                    ready = slot.ready = runner.ready(slot.resource)
                return ready
            idle.append(slot)  # not fresh: the slow path checks or retires it
        return self._enter()

    async def _enter(self) -> R:
        """Every acquire but the fast one: misuse checks, then wait, check or open."""
        runner = self._runner
        core = runner.core
        idle = core.idle
        # In the thread that opened the pool, a current task of the pool's loop means that loop
        # runs us (the exact check, get_running_loop(), costs ~120 ns on 3.11).
        if get_ident() != runner.thread or (owner := current_task(runner.loop)) is None:
            raise runner.misuse_error()
        timeout = self._timeout
        limit = runner.acquire_timeout if timeout is DEFAULT else timeout
        if limit == 0:  # never queue: an idle one now, or PoolTimeout
            slot = await runner.acquire_now(self, owner)
        elif idle and not core.waiting:  # idle but not fresh, or a balancer to ask
            slot = await runner.acquire_slow(self, owner, limit)
        else:  # queue: inlined here, as another coroutine cost ~0.3 µs per contended acquire
            # PoolRunner.enqueue and PoolCore.lease_to, inlined too (~25 ns a call).
            started = monotonic()
            future = runner.new_future()
            deadline = None
            if limit is not None:
                self.limit = limit
                # asyncio's own loops keep time with time.monotonic: no second clock read.
                if runner.monotonic_loop:
                    deadline = started + limit
                else:
                    assert runner.loop is not None
                    deadline = runner.loop.time() + limit
            if core.fast_enqueue:
                # PoolCore.enqueue, inlined (the call cost ~450 CPU instructions of a ~46,000
                # contended cycle): an open pool with no max_waiting. Keep them in step.
                self.future = future
                self.queued = True
                core.waiters.append(self)
                core.waiting += 1
                if deadline is not None:
                    self.deadline = deadline
                    timed = core.timed
                    while timed and not timed[0].queued:
                        timed.popleft()
                    if timed and deadline < timed[-1].deadline:
                        core.push_deadline(self, deadline)
                    else:
                        timed.append(self)
                # enqueue's test, reordered: its first half is what fails when all are busy.
                if (
                    (core.idle or len(core.slots) + core.opening < core.max_size)
                    and core.waiting > core.opening
                ) or (core.refill or core.oversized):
                    core.reconcile()
            else:
                core.enqueue(self, future, deadline)
            if deadline is not None and deadline < runner.timer_at:
                runner.arm_timer()
            if core.effects:
                runner.flush()
            try:
                slot = await future
            except BaseException:
                runner.waiter_gone(self)
                raise
            now = monotonic()
            waited = now - started
            core.wait_times.pending.append(waited)  # as in lease_to
            slot.leased_at = now
            slot.owner = owner
            if runner.slow_acquire is not None and waited > runner.slow_acquire:
                runner.waited_long(waited)
            if runner.leak_timeout is not None:
                runner.watch(slot)
        self._slot = slot
        return slot.resource

    def _exit_now(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        """``__aexit__``: the runner's done future ``exited`` after a clean return to a waiter
        or to idle, else the ``_exit()`` coroutine."""
        slot = self._slot
        runner = self._runner
        core = runner.core
        if exc is not None or slot.holder is not self or not core.fast_return:
            return self._exit(exc)
        # PoolCore.release's clean return, inlined (the call cost ~25 ns of a ~0.8 µs
        # acquire + release): in an open pool of the usual shape (no reset, max_uses,
        # on_release or rebalance hook, no resize in progress: core.fast_return), an unexpired,
        # reusable slot goes to the longest waiter, else idle. reconcile() would do nothing
        # after it (see release). Anything else goes through release(), which decides the same.
        now = monotonic()
        if slot.expires_at <= now:
            return self._exit(None)
        # never raises: the core wraps a hook that could (core._never_raising)
        if core.is_reusable_hook is not None and not core.is_reusable_hook(slot.resource):
            return self._exit(None, "not_reusable")  # release() need not ask the hook again
        slot.holder = None
        slot.owner = None
        if slot.leak_timer is not None:
            slot.leak_timer.cancel()
            slot.leak_timer = None
        pending = core.hold_times.pending  # as in release
        pending.append(now - slot.leased_at)
        if len(pending) >= BATCH:
            core.fold_times()
        waiters = core.waiters
        while waiters:  # PoolCore._hand_over, inlined
            lease = waiters.popleft()
            if lease.queued:
                lease.queued = False
                core.waiting -= 1
                if lease.future.done():  # cancelled; its task has yet to run
                    continue
                slot.state = LEASED
                slot.holder = lease
                if core.on_acquire_hook is not None:
                    core.on_acquire_hook(slot.resource)
                lease.future.set_result(slot)
                return runner.exited
        slot.state = IDLE
        slot.idle_since = now
        core.idle.append(slot)
        return runner.exited

    async def _exit(self, exc: BaseException | None, reason: str | None = None) -> None:
        """Every exit but the fast clean return: ``reset``, discard, recover, a closing pool.

        ``reason``: why a clean exit may not reuse the slot, when the caller knows already.
        """
        slot = self._slot
        if slot.holder is not self:
            self._runner.release_lost(self, slot)  # close() aborted it (or a second exit)
            return
        runner = self._runner
        core = runner.core
        if exc is None:
            if core.resets and core.state == OPEN:
                await runner.give_back(slot)
                return
            if core.release(slot, reason):
                return  # back to idle or to the next waiter: nothing left to do
        elif runner.recover is not None and core.state == OPEN:
            runner.start_recover(slot, exc)  # detached: the caller is not delayed
            return
        else:
            # Any exception leaves the protocol state unknown: never hand it to another caller.
            core.release(slot, "error" if isinstance(exc, Exception) else "interrupted")
        if core.effects:
            runner.flush()
        if slot.closer is not None and core.state != OPEN:
            # Released into a closing pool: wait (bounded by close_timeout) until it is closed.
            await asyncio.shield(slot.closer)

    if TYPE_CHECKING:
        # What type checkers see: an async context manager like any other (so a Lease is an
        # AbstractAsyncContextManager), and `async with` awaits what they return either way.

        async def __aenter__(self) -> R: ...

        async def __aexit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None: ...

    else:
        __aenter__ = _enter_now
        __aexit__ = _exit_now

    def __await__(self) -> Generator[Any, None, R]:
        """``await pool.acquire()``: the same as ``await pool.get()``."""
        return get(self._runner, self._timeout).__await__()


class GetLease(Lease[R]):
    """The lease of ``pool.get()``: given back by ``pool.put()``, never by a block's exit."""

    __slots__ = ()
    block: ClassVar[bool] = False


async def get(runner: PoolRunner[R], timeout: CallTimeout) -> R:
    """``pool.get()``: lease a resource to the caller until ``pool.put()``."""
    lease: GetLease[R] = GetLease()
    lease._runner = runner
    lease._timeout = timeout
    return await lease.__aenter__()  # the fast path's done future, or _enter()
