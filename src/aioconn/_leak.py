"""Leak detection: a timer per lease that reports who holds a connection too long, and where."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from ._slot import LEASED, Slot
from ._where import user_stack
from .errors import LeakWarning
from .events import LeakSuspected, PoolEvent

logger = logging.getLogger("aioconn.pool")


def watch_for_leak(
    loop: asyncio.AbstractEventLoop,
    slot: Slot[Any],
    timeout: float,
    pool_name: str,
    emit: Callable[[PoolEvent], None],
) -> None:
    """Remember where ``slot`` was acquired and report it if still held after ``timeout`` s.

    The pool cancels the timer (``slot.leak_timer``) whenever the slot stops being leased.
    """
    # The caller's own frames, outermost first, without aioconn's or asyncio's.
    slot.acquired_stack = user_stack(sys._getframe(1), limit=16)
    slot.leak_timer = loop.call_later(timeout, report_leak, slot, timeout, pool_name, emit)


def report_leak(
    slot: Slot[Any], timeout: float, pool_name: str, emit: Callable[[PoolEvent], None]
) -> None:
    """The leak timer fired: log, emit ``LeakSuspected`` and warn ``LeakWarning``."""
    slot.leak_timer = None
    if slot.state != LEASED:
        return
    message = (
        f"{pool_name}: connection held for more than leak_timeout={timeout} s:"
        f" {describe_holder(slot)}"
    )
    logger.warning("%s", message)
    emit(LeakSuspected(pool_name, slot.resource, message))
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
