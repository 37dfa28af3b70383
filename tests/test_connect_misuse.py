"""Using ``connect()``'s result without ``await`` or ``async with`` says what to write instead."""

from __future__ import annotations

from typing import Any

import pytest

import aioconn
from aioconn.testing import EchoServer


async def test_forgotten_await_on_connect_names_the_fix(echo_server: EchoServer) -> None:
    pending: Any = aioconn.connect("127.0.0.1", echo_server.port)
    with pytest.raises(AttributeError) as caught:
        await pending.send(b"hi\n")
    assert str(caught.value) == (
        "connect() returns an awaitable, not a Connection, so it has no attribute 'send':"
        " write `conn = await aioconn.connect(...)` or `async with aioconn.connect(...) as conn:`"
    )
    assert echo_server.opened == 0  # nothing was opened behind the caller's back


async def test_forgotten_await_on_connect_unix_names_the_fix(tmp_path: Any) -> None:
    pending: Any = aioconn.connect_unix(tmp_path / "s.sock")
    with pytest.raises(AttributeError, match=r"^connect_unix\(\) returns an awaitable.*'readline'"):
        pending.readline  # noqa: B018 - the attribute access itself is what fails
    assert not hasattr(pending, "closed")


async def test_connect_result_still_awaits_and_enters(echo_server: EchoServer) -> None:
    conn = await aioconn.connect("127.0.0.1", echo_server.port)
    await conn.close()
    async with aioconn.connect("127.0.0.1", echo_server.port) as entered:
        await entered.send(b"x\n")
        assert await entered.readline() == b"x\n"
