"""The pool's record of one resource: its timestamps, its lease, and leak-tracking state."""

from __future__ import annotations

import asyncio
import traceback
from typing import Generic, TypeVar

R = TypeVar("R")

GOT = object()
"""``Slot.lease`` of a resource leased by ``Pool.get()``, or handed to a waiter not yet awake."""


class Slot(Generic[R]):
    """One pooled resource and what the pool knows about it (all times are ``time.monotonic``)."""

    __slots__ = (
        "acquired_stack",
        "checked_at",
        "created_at",
        "expires_at",
        "idle_since",
        "leak_timer",
        "lease",
        "leased_at",
        "owner",
        "resource",
    )

    def __init__(self, resource: R, created_at: float, expires_at: float) -> None:
        self.resource = resource
        self.created_at = created_at
        self.expires_at = expires_at
        self.idle_since = created_at
        self.checked_at = created_at
        # Who holds it: None while idle (or being opened, checked or closed), else the
        # ``Lease`` of an ``acquire()`` block, or ``GOT`` for ``get()`` and hand-offs in flight.
        self.lease: object | None = None
        self.leased_at = 0.0
        self.owner: asyncio.Task[object] | None = None
        self.leak_timer: asyncio.TimerHandle | None = None
        self.acquired_stack: traceback.StackSummary | None = None
