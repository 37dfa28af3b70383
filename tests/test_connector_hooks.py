"""The optional connector hooks given as arguments: ``init=`` on every built-in connector,
``abort=`` and ``recover=`` on FactoryConnector; and the drivers' lazy imports."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from aioconn import Connection, FactoryConnector, TCPConnector, UnixConnector
from aioconn.drivers._base import require
from aioconn.testing import EchoServer


async def test_tcp_connector_init_runs_on_the_new_connection(echo_server: EchoServer) -> None:
    greeted: list[bytes] = []

    async def hello(conn: Connection) -> None:
        await conn.send(b"HELLO\n")
        greeted.append(await conn.readline())

    connector = TCPConnector(echo_server.host, echo_server.port, init=hello)
    conn = await connector.connect()
    try:
        await connector.init(conn)
    finally:
        await connector.close(conn)
    assert greeted == [b"HELLO\n"]


def test_absent_hooks_are_none_so_a_pool_skips_them(tmp_path: Any) -> None:
    assert TCPConnector("127.0.0.1", 1).init is None
    assert UnixConnector(tmp_path / "s.sock").init is None

    async def make() -> object:
        return object()

    bare = FactoryConnector(make)
    hooks: tuple[object, ...] = (bare.init, bare.recover, bare.abort)
    assert hooks == (None, None, None)


async def test_factory_hooks_run_sync_or_async() -> None:
    log: list[str] = []

    async def make() -> list[str]:
        return log

    async def init(resource: list[str]) -> None:
        resource.append("init")

    def recover(resource: list[str], exc: BaseException) -> bool:
        resource.append(f"recover {type(exc).__name__}")
        return isinstance(exc, TimeoutError)

    connector = FactoryConnector(
        make, init=init, recover=recover, abort=lambda resource: resource.append("abort")
    )
    resource = await connector.connect()
    await connector.init(resource)
    assert await connector.recover(resource, TimeoutError())
    assert not await connector.recover(resource, ValueError())
    connector.abort(resource)
    assert log == ["init", "recover TimeoutError", "recover ValueError", "abort"]


@pytest.mark.parametrize("name", ["init", "recover", "abort"])
def test_a_hook_that_is_not_callable_is_named(name: str) -> None:
    async def make() -> object:
        return object()

    kwargs: dict[str, Any] = {name: "nope"}
    with pytest.raises(TypeError, match=f"{name} must be callable or None, got 'nope'"):
        FactoryConnector(make, **kwargs)


def test_tcp_connector_init_must_be_callable() -> None:
    with pytest.raises(TypeError, match="init must be callable or None, got 1"):
        TCPConnector("127.0.0.1", 1, init=1)  # type: ignore[arg-type]  # the mistake under test


def test_a_missing_driver_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r"pip install 'aioconn\[nodriver\]'"):
        require("aioconn_no_such_driver", "nodriver", "NoConnector")


def test_importing_the_drivers_imports_no_driver() -> None:
    code = (
        "import sys, aioconn.drivers; "
        "loaded = {'asyncpg', 'psycopg', 'aiosqlite'} & set(sys.modules); "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
