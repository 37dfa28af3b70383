"""Shared fixtures: the real servers, a count of this process's open sockets, a GC per test."""

from __future__ import annotations

import gc
import os

import pytest

from servers import fixtures as _servers
from servers.fixtures import postgres_replica, postgres_server, redis_server

__all__ = [
    "postgres_replica",
    "postgres_server",
    "redis_server",
]  # session fixtures, see tests/servers/


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _servers.summary():
        terminalreporter.write_line(f"real server: {line}")
    # What a test recorded with record_property("summary", ...): e.g. the paths an explored
    # test reached over its seeds.
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for name, value in getattr(report, "user_properties", ()):
                if name == "summary":
                    terminalreporter.write_line(str(value))
