"""The aioconn pytest plugin (entry point ``pytest11``): loopback fixtures for users' tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._echo import EchoServer


@pytest.fixture
async def echo_server() -> AsyncIterator[EchoServer]:
    """An ``EchoServer`` on 127.0.0.1 and a free port, stopped after the test."""
    async with EchoServer() as server:
        yield server
