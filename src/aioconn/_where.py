"""Where the caller's code is: a stack of the user's own frames, for leak reports.

A report should show the code that opened a connection, not the machinery around it: the
frames of aioconn itself at the inner end, and those of asyncio, pytest and pluggy (the event
loop and test runner that called the user's code) at the outer end, are left out.
"""

from __future__ import annotations

import os
import sys
import traceback
from types import FrameType

__all__ = ["BACKGROUND", "caller_site", "format_stack", "user_frames", "user_stack"]

BACKGROUND = "an aioconn background task (a pool opening connections)"
"""The creation site of a connection that aioconn's own background work opened."""

# Modules of the machinery that calls user code: the stack is cut at the first of them.
_RUNNERS = ("asyncio.", "_pytest.", "pluggy.", "pytest_asyncio.", "concurrent.futures.")
_OWN = "aioconn."
_RUNNER_PACKAGES = ("asyncio", "_pytest", "pluggy", "pytest_asyncio")


def _module(frame: FrameType) -> str:
    name: object = frame.f_globals.get("__name__", "")
    return f"{name}." if isinstance(name, str) else "."


def caller_site(frame: FrameType | None) -> str:
    """``file:line`` of the user's code that called into aioconn at ``frame``, or
    ``BACKGROUND`` when aioconn's own background work did (cheap: runs for every connection)."""
    while frame is not None and _module(frame).startswith(_OWN):
        frame = frame.f_back
    if frame is None or _module(frame).startswith(_RUNNERS):
        return BACKGROUND
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def user_stack(frame: FrameType | None = None, *, limit: int = 32) -> traceback.StackSummary:
    """The user's frames leading to ``frame`` (default: the caller), **outermost first**.

    Frames of aioconn at the inner end are skipped; collection stops at the first frame of
    asyncio, pytest, pluggy or pytest-asyncio, so what remains starts at the test function or
    the task's coroutine. Empty when aioconn's own background work is the caller. Lines are
    looked up only when the stack is formatted.
    """
    if frame is None:
        frame = sys._getframe(1)
    while frame is not None and _module(frame).startswith(_OWN):
        frame = frame.f_back
    frames: list[tuple[FrameType, int]] = []
    while frame is not None and len(frames) < limit:
        if _module(frame).startswith(_RUNNERS):
            break
        frames.append((frame, frame.f_lineno))
        frame = frame.f_back
    frames.reverse()
    return traceback.StackSummary.extract(iter(frames), lookup_lines=False)


def _machinery_dirs() -> tuple[str, ...]:
    """The directories of the packages whose frames are machinery, as far as imported."""
    dirs = []
    for name in (*_RUNNER_PACKAGES, "aioconn"):
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            dirs.append(os.path.dirname(path) + os.sep)
    return tuple(dirs)


def user_frames(stack: list[traceback.FrameSummary]) -> list[traceback.FrameSummary]:
    """The user's part of a recorded stack (outermost first), such as a task's
    ``_source_traceback``: without the frames of aioconn, asyncio, pytest or pluggy at the
    inner end (``create_task`` itself), starting after the last such frame above them."""

    dirs = _machinery_dirs()

    def machinery(frame: traceback.FrameSummary) -> bool:
        return frame.filename.startswith(dirs)

    end = len(stack)
    while end and machinery(stack[end - 1]):
        end -= 1
    start = end
    while start and not machinery(stack[start - 1]):
        start -= 1
    return stack[start:end]


def format_stack(stack: traceback.StackSummary, indent: str = "  ") -> str:
    """``stack`` as a traceback's lines (most recent call last), each prefixed by ``indent``."""
    text = "".join(stack.format())
    return "".join(f"{indent}{line}\n" for line in text.splitlines())
