"""Leak detection: a timer per lease that reports who holds a connection too long, and where."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
import warnings
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Any

from ._slot import Slot
from .errors import LeakWarning
from .events import LeakSuspected

if TYPE_CHECKING:
    from .pool import Pool

logger = logging.getLogger("aioconn.pool")


def watch_for_leak(pool: Pool[Any], slot: Slot[Any], timeout: float) -> None:
    """Remember where ``slot`` was acquired and report it if still held after ``timeout`` s."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("aioconn."):
        frame = frame.f_back  # start at the caller's code, not in the pool's own frames
    slot.acquired_stack = traceback.StackSummary.extract(traceback.walk_stack(frame), limit=16)
    assert pool._loop is not None
    slot.leak_timer = pool._loop.call_later(timeout, report_leak, weakref.ref(pool), slot)


def report_leak(pool_ref: weakref.ref[Pool[Any]], slot: Slot[Any]) -> None:
    """The leak timer fired: log, emit ``LeakSuspected`` and warn ``LeakWarning``."""
    pool = pool_ref()
    slot.leak_timer = None
    if pool is None:
        return
    message = (
        f"{pool.name}: connection held for more than leak_timeout={pool._leak_timeout} s:"
        f" {describe_holder(slot)}"
    )
    logger.warning("%s", message)
    pool._emit(LeakSuspected(pool.name, slot.resource, message))
    # Where warnings are errors, raising inside a loop callback helps nobody; it is logged above.
    with contextlib.suppress(LeakWarning):
        warnings.warn(LeakWarning(message), stacklevel=1)


def describe_holder(slot: Slot[Any]) -> str:
    """Where a leased resource was acquired, and where its holder is now, for logs."""
    parts = [repr(slot.resource)]
    if slot.acquired_stack is not None:
        parts.append("acquired at:\n" + "".join(slot.acquired_stack.format()).rstrip())
    owner = slot.owner
    if owner is not None and not owner.done():
        frames = owner.get_stack(limit=20)
        summary = traceback.StackSummary.extract(
            ((frame, frame.f_lineno) for frame in frames), lookup_lines=True
        )
        parts.append(f"held by {owner.get_name()}, now at:\n" + "".join(summary.format()).rstrip())
    elif owner is not None:
        parts.append(f"held by {owner.get_name()} (finished without releasing it)")
    return "\n".join(parts)
