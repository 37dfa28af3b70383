"""``Lease``: what ``pool.acquire()`` returns — an async context manager, and awaitable."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from math import floor as _floor
from math import log2 as _log2
from threading import get_ident
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ._core import OPEN
from ._slot import IDLE, LEASED, Slot, Waiter
from ._tasks import current_task
from .connection import DEFAULT, CallTimeout
from .stats import _BUCKETS, _FLOOR, _OFFSET, _SCALE

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

    async def __aenter__(self) -> R:
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
            if (
                slot.expires_at > now
                and now - slot.idle_since <= core.fresh_window
                # never raises: the core wraps a hook that could (core._never_raising)
                and (core.is_reusable_hook is None or core.is_reusable_hook(slot.resource))
            ):
                core.instant_acquires += 1
                slot.state = LEASED
                slot.holder = self
                slot.leased_at = now
                slot.owner = owner
                if runner.leak_timeout is not None:
                    runner.watch(slot)
                self._slot = slot
                return slot.resource
            idle.append(slot)  # not fresh: the slow path checks or retires it
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
            loop = runner.loop
            assert loop is not None
            future = runner.new_future()
            deadline = None
            if limit is not None:
                self.limit = limit
                # asyncio's own loops keep time with time.monotonic: no second clock read.
                deadline = started + limit if runner.monotonic_loop else loop.time() + limit
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
                if (
                    core.refill
                    or core.oversized
                    or (
                        core.waiting > core.opening
                        and (core.idle or len(core.slots) + core.opening < core.max_size)
                    )
                ):
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
            # SummaryRecorder.add, inlined (as in lease_to).
            record = core.wait_times
            record.total += waited
            if waited > record.max:
                record.max = waited
            index = _floor(_log2(waited) * _SCALE + _OFFSET) if waited > _FLOOR else 0
            record.buckets[index if index < _BUCKETS else _BUCKETS - 1] += 1
            slot.leased_at = now
            slot.owner = owner
            if runner.slow_acquire is not None and waited > runner.slow_acquire:
                runner.waited_long(waited)
            if runner.leak_timeout is not None:
                runner.watch(slot)
        self._slot = slot
        return slot.resource

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
            # PoolCore.release's clean return, inlined (the call cost ~25 ns of a ~0.8 µs
            # acquire + release): in an open pool of the usual shape (no max_uses, no
            # on_release or rebalance hook, no resize in progress: core.fast_return), an
            # unexpired, reusable slot goes to the longest waiter, else idle. reconcile() would
            # do nothing after it (see release). Anything else goes through release(), which
            # decides the same way.
            now = monotonic()
            reason = None
            if core.fast_return and slot.expires_at > now:
                # never raises: the core wraps a hook that could (core._never_raising)
                if core.is_reusable_hook is None or core.is_reusable_hook(slot.resource):
                    slot.holder = None
                    slot.owner = None
                    if slot.leak_timer is not None:
                        slot.leak_timer.cancel()
                        slot.leak_timer = None
                    # SummaryRecorder.add, inlined (as in release).
                    held = now - slot.leased_at
                    hold = core.hold_times
                    hold.total += held
                    if held > hold.max:
                        hold.max = held
                    index = _floor(_log2(held) * _SCALE + _OFFSET) if held > _FLOOR else 0
                    hold.buckets[index if index < _BUCKETS else _BUCKETS - 1] += 1
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
                            return
                    slot.state = IDLE
                    slot.idle_since = now
                    core.idle.append(slot)
                    return
                reason = "not_reusable"  # release() need not ask the hook again
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
    return await lease.__aenter__()
