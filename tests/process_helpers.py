"""Starting the ``aioconn`` command in a child process that SIGINT (Ctrl-C) can stop."""

from __future__ import annotations

import asyncio
import signal
import sys


async def start_cli(*argv: str, pipe_stderr: bool = True) -> asyncio.subprocess.Process:
    """``python -m aioconn *argv`` with stdout (and stderr) piped and SIGINT at its default.

    A shell without job control starts background jobs with SIGINT ignored, and an ignored
    signal stays ignored across exec: Python then installs no KeyboardInterrupt handler,
    asyncio.run() none of its own, and the SIGINT a test sends is lost (the test hangs). So
    while the child is spawned the parent catches SIGINT, as Python does by default: a caught
    signal is reset to its default in the program exec starts.
    """
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aioconn",
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE if pipe_stderr else None,
        )
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
