"""Shared fixtures: a loopback echo server and a count of this process's open sockets."""

from __future__ import annotations

import gc
import os

import pytest


def open_socket_count() -> int:
    """Sockets this process holds open right now, read from /proc/self/fd."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except FileNotFoundError:  # the fd listing itself closed meanwhile
            pass
    return count


@pytest.fixture(autouse=True)
def _collect_garbage() -> object:
    # Unclosed transports warn from __del__; collecting here makes the test that leaked fail.
    yield None
    gc.collect()
