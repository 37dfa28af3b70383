"""The pool's synchronous core: slots, the FIFO waiter queue and the counters — no awaits, no I/O.

Every event the pool sees is one method here (acquire, release, discard, connect done or
failed, waiter gone, timeout, check done, resize, close, maintenance tick), and every one ends
in ``reconcile()``, the one place that restores the invariants:

- no caller waits while a slot is idle, or while there is room to open, unless an open is
  in flight for it;
- size (idle + leased + checking + returning + opening) never exceeds ``max_size`` (an
  ``Endpoints`` connector's caps are asked through ``has_room``), except a ``resize`` down
  whose surplus leaves as it comes back;
- each resource is in exactly one state, and idle only while the pool is open;
- a closing pool completes when nothing is left.

What the async shell (``pool.py``) must do comes out as effects, appended to ``effects``:
open a connection, close or abort one, check one, wake ``close()``. Handing a slot to a waiter
is done here, by resolving the waiter's future: the hand-over and the books change together.
``check_invariants`` states the invariants as code, for tests to run after every loop iteration.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from heapq import heapify, heappop, heappush
from typing import Any, Generic, TypeVar

from ._outage import Backoff, Outage
from ._slot import CHECKING, CLOSED, IDLE, LEASED, RETURNING, Slot, Waiter
from .errors import PoolClosed, PoolTimeout, TooManyWaiters
from .events import (
    ConnectionDiscarded,
    PoolEvent,
    ReconnectFailed,
    ServerReachable,
    ServerUnreachable,
)
from .stats import BATCH, Discards, SummaryRecorder

__all__ = ["PoolCore"]

R = TypeVar("R")
logger = logging.getLogger("aioconn.pool")
_monotonic = time.monotonic

# Pool states.
NEW, OPEN, CLOSING, DONE = "new", "open", "closing", "closed"

# Effects: (kind, slot or None).
OPEN_ONE = "open"
OPEN_PROBE = "probe"  # the one connect of an outage's backoff step
RETRY = "retry"  # an outage's next step is due at outage.retry_at: wake the core then
RECONNECT_FAILED = "reconnect_failed"  # call the pool's reconnect_failed callback
CLOSE = "close"
ABORT = "abort"
CHECK = "check"
DRAINED = "drained"

_LIFETIME_JITTER = 0.1  # retire up to 10 % early so connections opened together expire apart
EXPIRED = float("-inf")  # expires_at of a slot retired by expire(): discarded as "expired"


class Hooks(Generic[R]):
    """The connector's synchronous hooks the core calls (each optional)."""

    __slots__ = (
        "choose_idle",
        "endpoint_of",
        "has_room",
        "is_reusable",
        "on_acquire",
        "on_release",
        "rebalance",
    )

    def __init__(self, connector: object, safe: tuple[object, ...] = ()) -> None:
        """``safe``: ``is_reusable`` functions known never to raise (the shell's own)."""
        self.is_reusable: Callable[[R], bool] | None = _never_raising(
            getattr(connector, "is_reusable", None), safe
        )
        # A balancing connector (aioconn.Endpoints) picks which idle connection serves an
        # acquire, counts what each endpoint has in use, and says whether any has room.
        self.choose_idle: Callable[[list[R], bool], int | None] | None = getattr(
            connector, "choose_idle", None
        )
        self.has_room: Callable[[], bool] | None = getattr(connector, "has_room", None)
        self.on_acquire: Callable[[R], None] | None = getattr(connector, "on_acquire", None)
        self.on_release: Callable[[R], None] | None = getattr(connector, "on_release", None)
        self.endpoint_of: Callable[[R], str] | None = getattr(connector, "endpoint_of", None)
        # Asked on a return while callers queue (a saturated pool never has an idle connection
        # to trade): True retires the connection, and the connector steers the connect that
        # replaces it to another endpoint (a restored one, or one below its share).
        self.rebalance: Callable[[R], bool] | None = getattr(connector, "rebalance", None)


def _never_raising(
    is_reusable: Callable[[R], bool] | None, safe: tuple[object, ...]
) -> Callable[[R], bool] | None:
    """``is_reusable`` made safe to call on the hot paths: raising means "no" (and is logged).

    One of ``safe`` (the built-in connectors' ``connection_reusable``) cannot raise: it is used
    as it is, with no wrapper to pay for on every return.
    """
    if is_reusable is None or is_reusable in safe:
        return is_reusable

    def guarded(resource: R) -> bool:
        try:
            return bool(is_reusable(resource))
        except Exception as exc:
            logger.warning("is_reusable(%r) raised %r; not reusing it", resource, exc)
            return False

    return guarded


class PoolCore(Generic[R]):
    """The books of one pool. Not thread-safe: only the pool's loop calls it."""

    def __init__(
        self,
        name: str,
        hooks: Hooks[R],
        *,
        min_size: int,
        max_size: int,
        max_waiting: int | None,
        max_idle: float | None,
        max_lifetime: float | None,
        keepalive_interval: float | None,
        fresh_window: float,
        emit: Callable[[PoolEvent], None],
        max_uses: int | None = None,
        backoff: Backoff | None = None,
        reconnect_timeout: float | None = None,
    ) -> None:
        self.name = name
        self.hooks = hooks
        self.resets = False  # the connector has reset: a clean return goes through the runner
        # The hooks the hot paths call, one attribute away (not two).
        self.is_reusable_hook = hooks.is_reusable
        self.on_release_hook = hooks.on_release
        self.on_acquire_hook = hooks.on_acquire
        self.rebalance_hook = hooks.rebalance
        self.min_size = min_size
        self.max_size = max_size
        self.max_waiting = max_waiting
        self.max_idle = max_idle
        self.max_lifetime = max_lifetime
        self.keepalive_interval = keepalive_interval
        self.max_uses = max_uses
        # A clean return needs no hook and no count (Lease.__aexit__'s inlined path): no
        # max_uses, no on_release, no rebalance. Fixed for the pool's life.
        self.plain_return = (
            max_uses is None and hooks.on_release is None and hooks.rebalance is None
        )
        # While connects fail (an outage), at most one connect per backoff step: the probe.
        self.backoff = backoff
        self.reconnect_timeout = reconnect_timeout
        self.outage: Outage | None = None
        self.failed_in_row = 0  # connects failed since the last success
        self.first_failed_at = 0.0  # when the first of them failed
        # The outage whose probe is in flight (counted in opening). A probe still in flight
        # when another connect ends its outage is a plain connect from then on.
        self.probing: Outage | None = None
        # Idle time after which a checkout runs `check` (infinite: never; -1: always ask).
        self.fresh_window = fresh_window
        self.emit = emit
        self.state = NEW
        self.slots: dict[int, Slot[R]] = {}  # every resource the pool owns, by id()
        self.idle: deque[Slot[R]] = deque()  # the right end was returned last
        self.waiters: deque[Waiter] = deque()  # FIFO; entries no longer `queued` are skipped
        # Deadlines of queued waiters, in two lanes. With one acquire timeout they come in
        # nondecreasing order: those go to a FIFO (O(1) in and out, no tuple per waiter, and
        # served waiters leave it from the front as new ones queue). One that would come before
        # the last (a caller with a shorter timeout) goes to a heap of (deadline, waiter).
        self.timed: deque[Waiter] = deque()  # nondecreasing waiter.deadline
        self.timed_heap: list[tuple[float, Waiter]] = []
        self.waiting = 0  # waiters still queued
        self.opening = 0  # connects in flight (or waiting for their turn)
        self.checking = 0
        self.returning = 0
        self.closing = 0  # closes in flight: outside the size, but close() waits for them
        self.oversized = False  # resize() lowered max_size below the size
        # Lease.__aexit__'s inlined clean return may run: open, plain_return, no reset and not
        # oversized. One flag for the four, kept by _update_fast_return wherever state or
        # oversized change (resets is set once, before the pool opens).
        self.fast_return = False
        # Lease.__aenter__'s inlined enqueue may run: open, and no max_waiting (kept alike).
        self.fast_enqueue = False
        # Open up to min_size at the next reconcile: set by open(), resize() and the maintenance
        # tick, not by a failed connect (a dead server would get a connect storm otherwise).
        self.refill = False
        self.close_owner: object = None  # the task whose own acquire() blocks close() exempts
        self.effects: list[tuple[str, Slot[R] | None]] = []
        # Resources of get() callers that close() aborted: their put() is then a no-op.
        self.aborted_gets: dict[int, R] = {}
        self.rng = random.Random()
        self.reset_counters()

    def reset_counters(self) -> None:
        """Zero the counters (the state stays)."""
        self.instant_acquires = 0  # acquires that waited are counted by wait_times
        self.created = 0
        self.connect_failures = 0
        self.timeouts = 0
        self.discards = dict.fromkeys(Discards.__dataclass_fields__, 0)
        self.wait_times = SummaryRecorder()
        self.hold_times = SummaryRecorder()
        self.connect_times = SummaryRecorder()

    def _update_fast_return(self) -> None:
        """Recompute ``fast_return`` and ``fast_enqueue``; call after any change of ``state``
        or ``oversized``."""
        self.fast_return = (
            self.state == OPEN and self.plain_return and not self.resets and not self.oversized
        )
        self.fast_enqueue = self.state == OPEN and self.max_waiting is None

    # -- derived counts --------------------------------------------------------------------

    def size(self) -> int:
        """Idle + leased + checking + returning + opening."""
        return len(self.slots) + self.opening

    def in_use(self) -> int:
        return len(self.slots) - len(self.idle) - self.checking - self.returning

    def _has_room(self) -> bool:
        if self.hooks.has_room is None:
            return True
        try:
            return self.hooks.has_room()
        except Exception:
            logger.exception("%s: has_room failed; assuming room", self.name)
            return True

    def reusable(self, slot: Slot[R]) -> bool:
        """The connector's ``is_reusable`` (guarded: a hook that raises means no)."""
        is_reusable = self.is_reusable_hook
        return is_reusable is None or is_reusable(slot.resource)

    # -- acquire ---------------------------------------------------------------------------

    def take_idle(self, lease: Waiter, now: float) -> tuple[Slot[R] | None, bool]:
        """Lease an idle slot to ``lease`` if one may serve now (nobody queues first).

        Dead ones are discarded on the way. Returns the slot (or None) and whether it must be
        checked before use; a slot to check is CHECKING until ``checkout_checked``.
        """
        hooks = self.hooks
        slot: Slot[R] | None = None
        needs_check = False
        while self.idle and not self.waiting:
            if hooks.choose_idle is None:
                slot = self.idle.pop()
            else:
                can_open = self.size() < self.max_size and self._has_room()
                index = hooks.choose_idle([s.resource for s in self.idle], can_open)
                if index is None:
                    break  # the connector wants a new connection (to another endpoint)
                slot = self.idle[index]
                del self.idle[index]
            reason = self._checkout_verdict(slot, now)
            if reason is not None:
                self._discard(slot, reason)
                slot = None
                continue
            needs_check = now - slot.idle_since > self.fresh_window
            if needs_check:
                slot.state = CHECKING
                slot.holder = lease
                self.checking += 1
            else:
                self._lease(slot, lease)
            break
        self.reconcile()
        return slot, needs_check

    def checkout_checked(self, slot: Slot[R], lease: Waiter, alive: bool) -> bool:
        """The check of a slot taken by ``take_idle`` ended; True if ``lease`` now holds it."""
        if slot.state != CHECKING or slot.holder is not lease:
            return False  # close() aborted it meanwhile
        self.checking -= 1
        slot.holder = None
        if alive and self.state == OPEN:
            slot.checked_at = _monotonic()
            self._lease(slot, lease)
            result = True
        else:
            self._discard(slot, "check_failed" if alive is False else "pool_closed")
            result = False
        self.reconcile()
        return result

    def enqueue(self, lease: Waiter, future: Any, deadline: float | None) -> None:
        """Queue ``lease`` (FIFO) with ``future``, to be resolved with a slot or an error.

        ``deadline`` is on the loop's clock (None: no limit); ``expire_due`` enforces it.
        Raises what an acquire that cannot queue raises (closed, too many waiters).
        ``Lease.__aenter__`` inlines this while ``fast_enqueue`` holds: keep them in step.
        """
        if self.state != OPEN:
            raise PoolClosed(f"{self.name} is closed")
        if self.max_waiting is not None and self.waiting >= self.max_waiting:
            raise TooManyWaiters(
                f"{self.name}: {self.waiting} callers already wait (max_waiting={self.max_waiting})"
            )
        lease.future = future
        lease.queued = True
        self.waiters.append(lease)
        self.waiting += 1
        if deadline is not None:
            lease.deadline = deadline
            timed = self.timed
            # Served waiters leave the lanes lazily: the FIFO's from its front here (waiters
            # are served in the order they queue, so that is where they are), the rest in bulk
            # when they outnumber the queued ones (amortised O(1) per enqueue; see _unqueue),
            # and from the front when the timer fires.
            while timed and not timed[0].queued:
                timed.popleft()
            if not timed or deadline >= timed[-1].deadline:
                timed.append(lease)
            else:
                self.push_deadline(lease, deadline)
        # reconcile()'s own early exit, checked here: every contended acquire comes this way,
        # nearly always with nothing to open or hand over (a call cost ~25 ns).
        if (
            self.refill
            or self.oversized
            or (
                self.waiting > self.opening
                and (self.idle or len(self.slots) + self.opening < self.max_size)
            )
        ):
            self.reconcile()

    def push_deadline(self, lease: Waiter, deadline: float) -> None:
        """Put a deadline earlier than the FIFO lane's last into the heap lane."""
        heap = self.timed_heap
        if len(heap) > 2 * self.waiting + 64:
            self.timed_heap = heap = [entry for entry in heap if entry[1].queued]
            heapify(heap)
        heappush(heap, (deadline, lease))

    def next_deadline(self) -> float | None:
        """The earliest deadline of a queued waiter (served ones are dropped on the way)."""
        timed, heap = self.timed, self.timed_heap
        while timed and not timed[0].queued:
            timed.popleft()
        while heap and not heap[0][1].queued:
            heappop(heap)
        if timed:
            first = timed[0].deadline
            return heap[0][0] if heap and heap[0][0] < first else first
        return heap[0][0] if heap else None

    def expire_due(self, now: float) -> None:
        """Fail the queued waiters whose deadline has passed with ``PoolTimeout``."""
        while True:
            # Re-read each round: _unqueue may replace the lanes (its bulk cleanup).
            timed, heap = self.timed, self.timed_heap
            while timed and not timed[0].queued:
                timed.popleft()
            while heap and not heap[0][1].queued:
                heappop(heap)
            # The earlier of the two fronts first: timeouts fire in deadline order.
            if timed and timed[0].deadline <= now and not (heap and heap[0][0] < timed[0].deadline):
                lease = timed.popleft()
            elif heap and heap[0][0] <= now:
                lease = heappop(heap)[1]
            else:
                break
            if lease.queued:
                self._unqueue(lease)
                if not lease.future.done():
                    lease.future.set_exception(self.timeout_error(lease.limit))
        self.reconcile()

    def timeout_error(self, limit: float) -> PoolTimeout:
        self.timeouts += 1
        return PoolTimeout(
            f"{self.name}: no connection within {limit} s"
            f" (max_size={self.max_size}, in_use={self.in_use()}, idle={len(self.idle)},"
            f" opening={self.opening}, waiting={self.waiting})"
        )

    def waiter_gone(self, lease: Waiter) -> None:
        """A queued caller stopped waiting (cancelled, or its future failed).

        Still queued: counted out. Handed a slot meanwhile: the slot is passed on unused.
        """
        if lease.queued:
            self._unqueue(lease)
        elif (
            lease.future.done()
            and not lease.future.cancelled()
            and lease.future.exception() is None
        ):
            slot: Slot[R] = lease.future.result()
            if slot.state == LEASED and slot.holder is lease:
                logger.debug("%s: waiter gave up after hand-off; passing it on", self.name)
                self._unlease(slot)
                self._put_back(slot, slot.idle_since)
        self.reconcile()

    def _unqueue(self, lease: Waiter) -> None:
        lease.queued = False
        self.waiting -= 1
        # Given-up entries stay in the deque and the heap until reached: drop them in bulk
        # when they outnumber the live ones, so memory follows the queue, not the history.
        if len(self.waiters) > 2 * self.waiting + 64:
            self.waiters = deque(w for w in self.waiters if w.queued)
        if len(self.timed) > 2 * self.waiting + 64:
            self.timed = deque(w for w in self.timed if w.queued)  # still in deadline order
        if len(self.timed_heap) > 2 * self.waiting + 64:
            self.timed_heap = [entry for entry in self.timed_heap if entry[1].queued]
            heapify(self.timed_heap)

    def lease_to(self, slot: Slot[R], lease: Waiter, owner: Any, started: float) -> float:
        """A queued caller woke with ``slot``: record its wait. Returns the clock reading."""
        now = _monotonic()
        waited = now - started
        self.wait_times.pending.append(waited)  # folded with the holds: see fold_times
        slot.leased_at = now
        slot.owner = owner
        return waited

    def fold_times(self) -> None:
        """Bucket the pending wait and hold times (``SummaryRecorder.fold``).

        Every return records a hold, and appends to ``hold_times.pending`` inline; whoever does
        calls this once ``BATCH`` are pending. Waits are appended without a check (every
        contended acquire pays it): a wait is recorded when a lease begins and every lease ends
        in a return or in ``close()``, so at most ``BATCH`` plus the leases outstanding are
        pending.
        """
        self.wait_times.fold()
        self.hold_times.fold()

    def _lease(self, slot: Slot[R], lease: Waiter) -> None:
        slot.state = LEASED
        slot.holder = lease
        if self.hooks.on_acquire is not None:
            self.hooks.on_acquire(slot.resource)

    def _hand_over(self, slot: Slot[R]) -> bool:
        """Give ``slot`` to the longest queued waiter; False if nobody waits."""
        waiters = self.waiters
        while waiters:
            lease = waiters.popleft()
            if lease.queued:
                lease.queued = False
                self.waiting -= 1
                if lease.future.done():  # cancelled; its task has yet to run waiter_gone
                    continue
                slot.state = LEASED  # _lease, inlined (every contended return comes here)
                slot.holder = lease
                if self.hooks.on_acquire is not None:
                    self.hooks.on_acquire(slot.resource)
                lease.future.set_result(slot)
                return True
        return False

    # -- release ---------------------------------------------------------------------------

    def release(self, slot: Slot[R], reason: str | None) -> bool:
        """A holder gave ``slot`` back: reuse it (``reason`` None) or discard it for ``reason``.

        The caller has made sure ``slot`` is leased to it. Returns True when the slot went
        straight to a waiter or to idle: no effect to carry out, no close to wait for.
        """
        # _unlease, inlined (this is the hot path of every return).
        slot.holder = None
        slot.owner = None
        if slot.leak_timer is not None:
            slot.leak_timer.cancel()
            slot.leak_timer = None
        if self.on_release_hook is not None:
            self.on_release_hook(slot.resource)
        now = _monotonic()
        # SummaryRecorder.add, inlined: the call cost ~100 ns of a ~1 µs acquire + release.
        pending = self.hold_times.pending
        pending.append(now - slot.leased_at)
        if len(pending) >= BATCH:
            self.fold_times()
        if self.max_uses is not None:
            slot.uses += 1
            if slot.uses >= self.max_uses and reason is None:
                reason = "max_uses"
        if (
            reason is None
            and self.state == OPEN
            and slot.expires_at > now
            and not self.oversized
            # is_reusable_hook never raises (see _never_raising).
            and (self.is_reusable_hook is None or self.is_reusable_hook(slot.resource))
            and (self.rebalance_hook is None or not self.waiting)  # else _return_verdict asks
        ):
            # The common return, inlined: to the longest waiter, else idle. Either way
            # reconcile() would do nothing — a hand-over leaves fewer waiters and the same
            # size, an idle return happens only when nobody waits, and a refill is due only
            # inside open(), resize() and the maintenance tick — so it is skipped.
            waiters = self.waiters
            while waiters:
                lease = waiters.popleft()
                if lease.queued:
                    lease.queued = False
                    self.waiting -= 1
                    if lease.future.done():  # cancelled; its task has yet to run
                        continue
                    slot.state = LEASED
                    slot.holder = lease
                    if self.hooks.on_acquire is not None:
                        self.hooks.on_acquire(slot.resource)
                    lease.future.set_result(slot)
                    return True
            slot.state = IDLE
            slot.idle_since = now
            self.idle.append(slot)
            return True
        slot.state = CLOSED  # in no state until decided below (never seen by others)
        if reason is None:
            reason = self._return_verdict(slot, now)
        if reason is None:
            self._put_back(slot, now)
        else:
            self._discard(slot, reason)
        self.reconcile()
        return False

    def _return_verdict(self, slot: Slot[R], now: float) -> str | None:
        if self.state != OPEN:
            return "pool_closed"
        if slot.expires_at <= now:
            return "expired" if slot.expires_at == EXPIRED else "max_lifetime"
        if self.max_uses is not None and slot.uses >= self.max_uses:
            return "max_uses"
        if not self.reusable(slot):
            return "not_reusable"
        if self.oversized:
            if self.size() > self.max_size:  # the size counts this slot too
                return "resized"
            self.oversized = False
            self._update_fast_return()
        # Only when a waiter gets a new connect for it: the pool must not shrink by a move.
        if (
            self.waiting > self.opening
            and self.rebalance_hook is not None
            and self._rebalances(slot)
        ):
            return "rebalanced"
        return None

    def _rebalances(self, slot: Slot[R]) -> bool:
        assert self.rebalance_hook is not None
        try:
            return bool(self.rebalance_hook(slot.resource))
        except Exception:
            logger.exception("%s: rebalance(%r) failed; keeping it", self.name, slot.resource)
            return False

    def begin_return(self, slot: Slot[R]) -> None:
        """A holder gave ``slot`` back, to be reset or recovered first (RETURNING)."""
        self._unlease(slot)
        pending = self.hold_times.pending
        pending.append(_monotonic() - slot.leased_at)
        if len(pending) >= BATCH:
            self.fold_times()
        if self.max_uses is not None:
            slot.uses += 1
        slot.state = RETURNING
        self.returning += 1
        self.reconcile()

    def returned(self, slot: Slot[R], failure: str | None) -> None:
        """The reset or recovery of a RETURNING slot ended: ``failure`` None means clean."""
        if slot.state != RETURNING:
            return  # close() aborted it meanwhile
        self.returning -= 1
        now = _monotonic()
        reason = failure if failure is not None else self._return_verdict(slot, now)
        if reason is None:
            self._put_back(slot, now)
        else:
            self._discard(slot, reason)
        self.reconcile()

    def _unlease(self, slot: Slot[R]) -> None:
        slot.state = CLOSED  # in no state until the caller decides (never seen by others)
        slot.holder = None
        slot.owner = None
        if slot.leak_timer is not None:
            slot.leak_timer.cancel()
            slot.leak_timer = None
        if self.hooks.on_release is not None:
            self.hooks.on_release(slot.resource)

    def _put_back(self, slot: Slot[R], idle_since: float) -> None:
        """A clean slot: to the longest waiter, else idle (or discarded if the pool shrank)."""
        if self._hand_over(slot):
            return
        if self.state != OPEN:
            self._discard(slot, "pool_closed")
        elif self.size() > self.max_size:
            self._discard(slot, "resized")
        else:
            slot.state = IDLE
            slot.idle_since = idle_since
            self.idle.append(slot)

    # -- leaving the pool ------------------------------------------------------------------

    def discard(self, slot: Slot[R], reason: str, *, abort: bool = False) -> None:
        """Event: the shell discards a slot it holds (put(discard=True), a failed check)."""
        if slot.state == LEASED:
            self._unlease(slot)
        elif slot.state == CHECKING:
            self.checking -= 1
        elif slot.state == RETURNING:
            self.returning -= 1
        elif slot.state == IDLE:
            self.idle.remove(slot)
        self._discard(slot, reason, abort=abort)
        self.reconcile()

    def _discard(self, slot: Slot[R], reason: str, *, abort: bool = False) -> None:
        """Count a slot out of the books and ask the shell to close (or abort) it."""
        slot.state = CLOSED
        slot.holder = None
        if slot.leak_timer is not None:
            slot.leak_timer.cancel()
            slot.leak_timer = None
        self.discards[reason] += 1
        self.slots.pop(id(slot.resource), None)
        self.closing += 1
        self.effects.append((ABORT if abort else CLOSE, slot))
        self.emit(ConnectionDiscarded(self.name, slot.resource, self._endpoint(slot), reason))

    def _endpoint(self, slot: Slot[R]) -> str | None:
        return self.endpoint(slot.resource)

    def endpoint(self, resource: R) -> str | None:
        """The endpoint of ``resource`` (with an ``Endpoints`` connector), for events."""
        if self.hooks.endpoint_of is None:
            return None
        try:
            return self.hooks.endpoint_of(resource)
        except Exception:  # only labels an event or a stat: never worth failing the event
            logger.debug("%s: endpoint_of(%r) raised", self.name, resource, exc_info=True)
            return None

    def room_freed(self) -> None:
        """Event: the connector has room to open again outside any event of ours (an
        ``Endpoints`` connection began to close, or one attempt of its connect failed)."""
        self.reconcile()

    def close_done(self) -> None:
        """Event: a discarded slot's close (or abort) ended; an endpoint may have room again."""
        self.closing -= 1
        self.reconcile()

    def _checkout_verdict(self, slot: Slot[R], now: float) -> str | None:
        """Why an idle slot must not be handed out, or None if it may."""
        if slot.expires_at <= now:
            return "expired" if slot.expires_at == EXPIRED else "max_lifetime"
        if not self.reusable(slot):
            return "not_reusable"
        return None

    # -- opening ---------------------------------------------------------------------------

    def connect_done(
        self, resource: R, connect_time: float, probe: Outage | None = None
    ) -> Slot[R]:
        """Event: a connect succeeded with a resource the pool does not hold yet.

        Any success ends an outage: the server answers again. ``probe``: the outage this
        connect was the probe of (``core.probing`` when it started), or None.
        """
        self.opening -= 1
        if probe is not None and probe is self.probing:
            self.probing = None
        self.created += 1
        now = _monotonic()
        self.failed_in_row = 0
        if self.outage is not None:
            self._outage_ended(self.outage, now)
        self.connect_times.add(connect_time)
        expires = float("inf")
        if self.max_lifetime is not None:
            expires = now + self.max_lifetime * (1 - _LIFETIME_JITTER * self.rng.random())
        slot = Slot(resource, now, expires)
        slot.state = CLOSED
        self.slots[id(resource)] = slot
        self._put_back(slot, now)
        self.reconcile()
        return slot

    def connect_failed(self, error: BaseException | None, probe: Outage | None = None) -> None:
        """Event: a connect failed with ``error`` (None: cancelled by the pool itself).

        The longest waiter gets the error: a caller learns that the server is down instead
        of waiting out its timeout. With a ``backoff``, the failure begins an outage (or, for
        the probe, lengthens it): reconcile then opens one probe per step, and fails at once
        the waiters nothing in flight can serve. Without one, the others still waiting get a
        new connect from reconcile.
        """
        self.opening -= 1
        # Only the current outage's probe decides its next step (see connect_done).
        is_probe = probe is not None and probe is self.probing
        if is_probe:
            self.probing = None
        if error is not None:
            self.connect_failures += 1
            waiters = self.waiters
            while waiters:
                lease = waiters.popleft()
                if lease.queued:
                    lease.queued = False
                    self.waiting -= 1
                    if not lease.future.done():
                        lease.future.set_exception(error)
                        break
            if self.backoff is not None:
                self._outage_failed(error, is_probe)
        self.reconcile()

    def _outage_failed(self, error: BaseException, probe: bool) -> None:
        assert self.backoff is not None
        self.failed_in_row += 1
        now = _monotonic()
        if self.failed_in_row == 1:
            self.first_failed_at = now
        outage = self.outage
        if outage is None:
            if self.failed_in_row < self.backoff.after:
                return  # a blip, maybe: the next waiter tries at once
            outage = self.outage = Outage(now, self.first_failed_at, self.failed_in_row - 1)
            outage.failed(error, now, self.backoff, self.rng, wait=True)
            logger.warning(
                "%s: connects fail; backing off, next attempt in %.3g s",
                self.name,
                outage.retry_at - now,
            )
            self.emit(ServerUnreachable(self.name, error))
        else:
            # Only the probe decides the next step: connects that began before the outage
            # are counted, but must not push the probe further away.
            outage.failed(error, now, self.backoff, self.rng, wait=probe)
        limit = self.reconnect_timeout
        if limit is not None and not outage.reported and now - outage.since >= limit:
            outage.reported = True
            logger.error(
                "%s: connects have failed for %.3g s (reconnect_timeout=%s, %d failures);"
                " still trying: %s",
                self.name,
                now - outage.since,
                limit,
                outage.failures,
                error,
            )
            self.emit(ReconnectFailed(self.name, now - outage.since, outage.failures, error))
            self.effects.append((RECONNECT_FAILED, None))

    def _outage_ended(self, outage: Outage, now: float) -> None:
        self.outage = None
        self.probing = None  # a probe still in flight is a plain connect now
        self.refill = True  # back to min_size now that connects succeed
        logger.info(
            "%s: connects succeed again after %.3g s (%d failed)",
            self.name,
            now - outage.since,
            outage.failures,
        )
        self.emit(ServerReachable(self.name, now - outage.since, outage.failures))

    def retry_due(self) -> None:
        """Event: an outage's backoff step ended (the shell's timer): a probe may start."""
        self.reconcile()

    # -- keepalive and maintenance ----------------------------------------------------------

    def tick(self, now: float, can_check: bool) -> None:
        """Event: the maintenance round. Retire expired or dead idle slots, start keepalive
        checks (``can_check``: the connector has ``check``), refill to ``min_size``."""
        if self.state != OPEN:
            return
        keep: deque[Slot[R]] = deque()
        excess = self.size() - self.min_size
        while self.idle:  # the left end holds the longest idle
            slot = self.idle.popleft()
            reason = self._checkout_verdict(slot, now)
            if (
                reason is None
                and excess > 0
                and self.max_idle is not None
                and now - slot.idle_since > self.max_idle
            ):
                reason = "max_idle"
            if reason is not None:
                excess -= 1
                self._discard(slot, reason)
            elif (
                can_check
                and self.keepalive_interval is not None
                and now - max(slot.idle_since, slot.checked_at) >= self.keepalive_interval
            ):
                slot.state = CHECKING
                self.checking += 1
                self.effects.append((CHECK, slot))
            else:
                keep.append(slot)
        self.idle.extend(keep)
        self.refill = True
        self.reconcile()

    def check_done(self, slot: Slot[R], alive: bool) -> None:
        """Event: a keepalive check of ``slot`` ended."""
        if slot.state != CHECKING or slot.holder is not None:
            return  # close() aborted it meanwhile
        self.checking -= 1
        now = _monotonic()
        verdict = self._checkout_verdict(slot, now) if alive else "check_failed"
        if verdict is None and self.state == OPEN:
            slot.checked_at = now
            slot.state = CLOSED
            self._put_back(slot, slot.idle_since)
        else:
            self._discard(slot, verdict or "pool_closed")
        self.reconcile()

    def resize(self, min_size: int, max_size: int) -> None:
        """Event: new size limits. Surplus idle slots leave now, surplus leased ones on return."""
        self.min_size, self.max_size = min_size, max_size
        while self.idle and self.size() > max_size:
            self._discard(self.idle.popleft(), "resized")
        self.oversized = self.size() > max_size
        self._update_fast_return()
        self.refill = True
        self.reconcile()

    def expire(self) -> int:
        """Event: retire every connection — idle ones now, the others when they come back.

        Returns how many were discarded at once.
        """
        retired = 0
        while self.idle:
            self._discard(self.idle.pop(), "expired")
            retired += 1
        for slot in self.slots.values():
            slot.expires_at = EXPIRED
        self.refill = True  # back to min_size with new connections
        self.reconcile()
        return retired

    def take_idle_for_check(self) -> list[Slot[R]]:
        """Event: ``Pool.check()`` takes every idle slot aside to check it now."""
        taken = list(self.idle)
        self.idle.clear()
        for slot in taken:
            slot.state = CHECKING
            self.checking += 1
        self.reconcile()
        return taken

    def retire_idle(self, reason: str) -> None:
        """Event: discard the idle slots the connector no longer wants (drained endpoints)."""
        keep: deque[Slot[R]] = deque()
        for slot in self.idle:
            if self.reusable(slot):
                keep.append(slot)
            else:
                self._discard(slot, reason)
        self.idle = keep
        self.reconcile()

    # -- closing ---------------------------------------------------------------------------

    def open(self) -> None:
        """Event: ``open()`` began."""
        self.state = OPEN
        self._update_fast_return()
        self.refill = True
        self.reconcile()

    def begin_close(self, owner: object) -> None:
        """Event: ``close()`` began: no new work, waiters fail, idle slots close."""
        self.state = CLOSING
        self._update_fast_return()
        self.close_owner = owner
        closed = PoolClosed(f"{self.name} is closed")
        while self.waiters:
            lease = self.waiters.popleft()
            if lease.queued:
                lease.queued = False
                if not lease.future.done():
                    lease.future.set_exception(closed)
        self.waiting = 0
        self.timed.clear()
        self.timed_heap.clear()
        while self.idle:
            self._discard(self.idle.pop(), "pool_closed")
        self.reconcile()

    def exempt(self, slot: Slot[R]) -> bool:
        """A slot close() need not wait for: an ``acquire()`` block of the closing task."""
        holder = slot.holder
        return (
            slot.state == LEASED
            and holder is not None
            and holder.block
            and slot.owner is not None
            and slot.owner is self.close_owner
        )

    def drained(self) -> bool:
        """Closing, and nothing is left but the closing task's own blocks."""
        return (
            self.state != OPEN
            and self.opening == 0
            and self.closing == 0
            and all(self.exempt(slot) for slot in self.slots.values())
        )

    def abort_all(self, describe: Callable[[Slot[R]], str]) -> int:
        """Event: close() ran out of time: abort every slot left but the exempt ones."""
        aborted = 0
        for slot in list(self.slots.values()):
            if self.exempt(slot):
                continue
            if slot.state == LEASED:
                logger.warning(
                    "%s: closing aborted a connection still in use: %s", self.name, describe(slot)
                )
                holder = slot.holder
                self._unlease(slot)
                slot.aborted = True  # its holder's next I/O: "closed", not "given back"
                if holder is not None:
                    holder.aborted = True
                    if not holder.block:  # a get(): its put() will find the resource gone
                        self.aborted_gets[id(slot.resource)] = slot.resource
            elif slot.state == CHECKING:
                self.checking -= 1
            elif slot.state == RETURNING:
                self.returning -= 1
            self._discard(slot, "aborted", abort=True)
            aborted += 1
        self.reconcile()
        return aborted

    def finish_close(self) -> None:
        """Event: close() is done; whatever is left is forgotten."""
        self.state = DONE
        self._update_fast_return()
        self.opening = 0
        self.closing = 0

    # -- the one step that restores the invariants -------------------------------------------

    def reconcile(self) -> None:
        """Restore the invariants after an event (see the module docstring)."""
        if self.state != OPEN:
            if self.state == CLOSING and self.drained():
                self.effects.append((DRAINED, None))
            return
        if self.outage is not None:
            self._reconcile_outage(self.outage)
            return
        if not self.refill and not self.oversized:
            if self.waiting <= self.opening:
                return  # every waiter has an open in flight, no refill is due, no surplus
            if not self.idle and len(self.slots) + self.opening >= self.max_size:
                return  # waiters, but no idle slot to give and no room to open one
        # Surplus idle slots above a lowered max_size.
        while self.idle and self.size() > self.max_size:
            self._discard(self.idle.popleft(), "resized")
        # Open for waiters nobody opens for yet, and up to min_size when a refill is due.
        # Then no caller waits while a slot is idle, beyond those an open is in flight for (a
        # balancing connector may want a new connection to another endpoint for them). A dead
        # idle slot discarded on the way makes room: open again.
        refill, self.refill = self.refill, False
        while True:
            while (
                (self.waiting > self.opening or (refill and self.size() < self.min_size))
                and self.size() < self.max_size
                and self._has_room()
            ):
                self.opening += 1
                self.effects.append((OPEN_ONE, None))
            if not (self.waiting > self.opening and self.idle):
                return
            self._hand_idle_over()

    def _hand_idle_over(self) -> None:
        """The newest idle slot to the longest waiter (or discarded, if it may not serve)."""
        slot = self.idle.pop()
        reason = self._checkout_verdict(slot, _monotonic())
        if reason is not None:
            self._discard(slot, reason)
        else:
            self._hand_over(slot)

    def _reconcile_outage(self, outage: Outage) -> None:
        """Reconcile while connects fail: one probe per backoff step, waiters fail fast.

        The invariants change: callers may wait with room to open only while some resource
        in flight (leased, checking, returning, or the probe) may yet serve them — one after
        another, each return serving the next; when nothing is, they fail at once with
        ``ServerDown``. At most one connect starts per step (the probe); a refill to
        ``min_size`` is due until the outage ends.
        """
        while self.idle and self.size() > self.max_size:
            self._discard(self.idle.popleft(), "resized")
        while self.waiting > self.opening and self.idle:
            self._hand_idle_over()
        if (
            (self.waiting > self.opening or self.size() < self.min_size)
            and self.probing is None
            and self.size() < self.max_size
            and self._has_room()
        ):
            if _monotonic() >= outage.retry_at:
                self.probing = outage
                self.opening += 1
                self.effects.append((OPEN_PROBE, None))
            else:
                self.effects.append((RETRY, None))
        if self.waiting and len(self.slots) == len(self.idle) and not self.opening:
            now = _monotonic()
            waiters = self.waiters
            while waiters:
                lease = waiters.popleft()
                if lease.queued:
                    lease.queued = False
                    if not lease.future.done():
                        lease.future.set_exception(outage.error(self.name, now))
            self.waiting = 0

    def check_invariants(self) -> None:
        """Raise AssertionError if the books are inconsistent (for tests)."""
        live = [w for w in self.waiters if w.queued]
        assert len(live) == self.waiting, f"waiting={self.waiting}, queued={len(live)}"
        assert min(self.waiting, self.opening, self.closing) >= 0, "a negative count"
        states: dict[str, int] = {}
        for key, slot in self.slots.items():
            assert key == id(slot.resource), slot
            assert slot.state in (IDLE, LEASED, CHECKING, RETURNING), slot
            states[slot.state] = states.get(slot.state, 0) + 1
            if slot.state == LEASED:
                assert slot.holder is not None, slot
        assert states.get(IDLE, 0) == len(self.idle), (states, len(self.idle))
        assert len({id(s) for s in self.idle}) == len(self.idle), "a slot idle twice"
        for slot in self.idle:
            assert slot.state == IDLE, slot
            assert self.slots.get(id(slot.resource)) is slot, slot
        assert states.get(CHECKING, 0) == self.checking, (states, self.checking)
        assert states.get(RETURNING, 0) == self.returning, (states, self.returning)
        holders = [s.holder for s in self.slots.values() if s.state == LEASED]
        assert len({id(h) for h in holders}) == len(holders), "one caller holds two slots"
        assert self.probing is None or self.probing is self.outage, "a probe without its outage"
        assert self.fast_return == (
            self.state == OPEN and self.plain_return and not self.resets and not self.oversized
        ), "fast_return out of date"
        assert self.fast_enqueue == (self.state == OPEN and self.max_waiting is None), (
            "fast_enqueue out of date"
        )
        assert self.probing is None or self.opening >= 1, "a probe not counted as opening"
        if self.state == OPEN:
            if self.waiting > self.opening:
                assert not self.idle, f"{self.waiting} wait while {len(self.idle)} idle"
            if self.outage is not None:
                in_flight = len(self.slots) - len(self.idle) + self.opening
                assert not self.waiting or in_flight, (
                    f"{self.waiting} wait during an outage with nothing in flight to serve them"
                )
            elif self.waiting:
                assert (
                    self.opening >= self.waiting
                    or self.size() >= self.max_size
                    or (not self._has_room())
                ), f"{self.waiting} wait, {self.opening} opening, size {self.size()}"
            if not self.oversized:
                assert self.size() <= self.max_size, (self.size(), self.max_size)
        else:
            assert not self.idle, len(self.idle)
            assert not self.waiting, self.waiting
