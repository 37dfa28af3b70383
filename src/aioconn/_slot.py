"""The pool's record of one resource, the states it moves through, and the waiter record."""

from __future__ import annotations

import asyncio
import traceback
from typing import Any, ClassVar, Generic, TypeVar

R = TypeVar("R")

# A slot is in exactly one of these states while the pool owns its resource. Opening has no
# slot yet (the pool counts connects in flight); a discarded slot leaves the pool's books at
# once and its close runs detached (``CLOSED`` marks it, so a late event finds it gone).
IDLE = "idle"
"""In the idle deque, ready for the next acquire."""
LEASED = "leased"
"""Held by a caller: an ``acquire()`` block, a ``get()``, or handed to a waiter not yet awake."""
CHECKING = "checking"
"""Taken aside by the keepalive, or by an acquire that checks it before use."""
RETURNING = "returning"
"""Given back, and being ``reset`` (clean exit) or ``recover``-ed (exit by an exception)."""
CLOSED = "closed"
"""Left the pool: closing or closed."""


class Waiter:
    """A caller of the pool: queued for a slot, then holding one.

    ``Lease`` (the shell's async context manager) is one; the core reads only these fields.
    No ``__init__``: the shell sets what each path needs (an ``__init__`` cost ~50 ns of a
    ~1 µs acquire + release).
    """

    __slots__ = ("aborted", "deadline", "future", "limit", "queued")
    block: ClassVar[bool] = True
    """An ``async with pool.acquire()`` block (``False``: a ``get()``, given back by ``put()``)."""
    future: asyncio.Future[Slot[Any]]
    queued: bool
    """In the waiter queue and counted in ``waiting``."""
    limit: float
    """The acquire timeout this caller waits with (for the ``PoolTimeout`` message)."""
    deadline: float
    """When that timeout ends, on the loop's clock (set only when it has one)."""
    aborted: bool
    """``close()`` aborted the slot this caller held."""

    def __lt__(self, other: object) -> bool:
        return False  # equal deadlines in the timer heap: either order is right


class Slot(Generic[R]):
    """One pooled resource and what the pool knows about it (all times are ``time.monotonic``)."""

    __slots__ = (
        "aborted",
        "acquired_stack",
        "checked_at",
        "closer",
        "created_at",
        "expires_at",
        "holder",
        "idle_since",
        "leak_timer",
        "leased_at",
        "owner",
        "ready",
        "resource",
        "returned_by",
        "state",
        "uses",
    )

    def __init__(self, resource: R, created_at: float, expires_at: float) -> None:
        self.resource = resource
        self.state = IDLE
        self.created_at = created_at
        self.expires_at = expires_at
        self.idle_since = created_at
        self.checked_at = created_at
        # Who holds it while LEASED (the caller's Waiter), else None.
        self.holder: Waiter | None = None
        self.leased_at = 0.0
        self.owner: asyncio.Task[Any] | None = None
        self.leak_timer: asyncio.TimerHandle | None = None
        self.acquired_stack: traceback.StackSummary | None = None
        self.closer: asyncio.Task[Any] | None = None  # closing it, once discarded
        self.returned_by: asyncio.Task[Any] | None = None  # the task of the last put()
        self.uses = 0  # leases given back (counted only with max_uses)
        self.aborted = False  # close() aborted it while a caller held it
        # A done future whose result is the resource: what the fast acquire returns to be
        # awaited (made on its first one, on the pool's loop: see Lease.__aenter__).
        self.ready: asyncio.Future[R] | None = None

    @property
    def given_back(self) -> bool:
        """Its resource belongs to nobody outside the pool: idle, or closed by the pool.

        (A connector's own reset and check run while it is returning or checking: they may use
        it. One that ``close()`` aborted in its holder's hands is closed but not given back.)
        """
        return (self.state == IDLE or self.state == CLOSED) and not self.aborted

    def __repr__(self) -> str:
        return f"<Slot {self.state} {self.resource!r}>"
