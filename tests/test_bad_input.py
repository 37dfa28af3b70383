"""Bad arguments fail at once with TypeError/ValueError, and the message names the parameter."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import aioconn
from aioconn import Connection, KeepAlive, Retry
from aioconn.testing import EchoServer

BAD_TIMEOUTS: list[tuple[object, type[Exception]]] = [
    (0, ValueError),
    (0.0, ValueError),
    (-1, ValueError),
    (-0.5, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (-math.inf, ValueError),
    ("1", TypeError),
    (True, TypeError),
]


@pytest.mark.parametrize("port", [-1, 65536, 100_000])
def test_port_out_of_range(port: int) -> None:
    with pytest.raises(ValueError, match=r"^port must be in 0\.\.65535, got"):
        aioconn.connect("127.0.0.1", port)
    with pytest.raises(ValueError, match=r"^port must be in 0\.\.65535"):
        Connection("127.0.0.1", port)


@pytest.mark.parametrize("port", ["80", 80.0, None, True])
def test_port_not_int(port: Any) -> None:
    with pytest.raises(TypeError, match=r"^port must be an int, got"):
        aioconn.connect("127.0.0.1", port)


@pytest.mark.parametrize("host", ["", "   "])
def test_empty_host(host: str) -> None:
    with pytest.raises(ValueError, match=r"^host must not be empty"):
        aioconn.connect(host, 80)


@pytest.mark.parametrize("host", [None, b"127.0.0.1", 127, ("127.0.0.1",)])
def test_host_not_str(host: Any) -> None:
    with pytest.raises(TypeError, match=r"^host must be a str, got"):
        aioconn.connect(host, 80)


@pytest.mark.parametrize(
    "name", ["connect_timeout", "close_timeout", "read_timeout", "write_timeout"]
)
@pytest.mark.parametrize(("value", "error"), BAD_TIMEOUTS)
def test_bad_timeouts(name: str, value: object, error: type[Exception]) -> None:
    kwargs: dict[str, Any] = {name: value}
    with pytest.raises(error, match=rf"^{name} must be a "):
        aioconn.connect("127.0.0.1", 80, **kwargs)
    with pytest.raises(error, match=rf"^{name} must be a "):
        aioconn.connect_unix("/tmp/x.sock", **kwargs)


def test_close_timeout_cannot_be_none() -> None:
    with pytest.raises(TypeError, match=r"^close_timeout must be a number of seconds, got None"):
        aioconn.connect("127.0.0.1", 80, close_timeout=None)  # type: ignore[arg-type]  # the bad input under test


@pytest.mark.parametrize("name", ["connect_timeout", "read_timeout", "write_timeout"])
def test_optional_timeouts_accept_none(name: str) -> None:
    kwargs: dict[str, Any] = {name: None}
    conn = Connection("127.0.0.1", 80, **kwargs)
    assert repr(conn) == "<aioconn.Connection 127.0.0.1:80 [new]>"


@pytest.mark.parametrize("ssl", ["yes", 1, object()])
def test_ssl_wrong_type(ssl: Any) -> None:
    with pytest.raises(TypeError, match=r"^ssl must be None, a bool or an ssl\.SSLContext, got"):
        aioconn.connect("127.0.0.1", 443, ssl=ssl)


@pytest.mark.parametrize("ssl", [None, False])
def test_server_hostname_without_ssl(ssl: bool | None) -> None:
    with pytest.raises(ValueError, match=r"^server_hostname is only meaningful with ssl"):
        aioconn.connect("127.0.0.1", 443, ssl=ssl, server_hostname="localhost")
    with pytest.raises(ValueError, match=r"^server_hostname is only meaningful with ssl"):
        aioconn.connect_unix("/tmp/x.sock", ssl=ssl, server_hostname="localhost")


def test_server_hostname_empty() -> None:
    with pytest.raises(ValueError, match=r"^server_hostname must be a non-empty str"):
        aioconn.connect("127.0.0.1", 443, ssl=True, server_hostname="")


@pytest.mark.parametrize(("limit", "error"), [(0, ValueError), (-1, ValueError), ("10", TypeError)])
def test_bad_limit(limit: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"^limit must be "):
        aioconn.connect("127.0.0.1", 80, limit=limit)


@pytest.mark.parametrize("keepalive", ["yes", 1, 60.0, None])
def test_keepalive_wrong_type(keepalive: Any) -> None:
    with pytest.raises(TypeError, match=r"^keepalive must be a bool or aioconn\.KeepAlive, got"):
        aioconn.connect("127.0.0.1", 80, keepalive=keepalive)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"idle": 0}, "keepalive.idle"),
        ({"interval": -1}, "keepalive.interval"),
        ({"count": 0}, "keepalive.count"),
    ],
)
def test_keepalive_bad_settings(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be "):
        KeepAlive(**kwargs)


@pytest.mark.parametrize("local_addr", [("127.0.0.1",), "127.0.0.1:0", ("127.0.0.1", "0")])
def test_local_addr_wrong_shape(local_addr: Any) -> None:
    with pytest.raises(TypeError, match=r"^local_addr must be a \(host, port\) tuple"):
        aioconn.connect("127.0.0.1", 80, local_addr=local_addr)


def test_retry_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"^retry must be an aioconn\.Retry or None"):
        aioconn.connect("127.0.0.1", 80, retry=3)  # type: ignore[arg-type]  # the bad input under test


@pytest.mark.parametrize("path", ["", b"/tmp/x.sock", None])
def test_unix_path_bad(path: Any) -> None:
    with pytest.raises((TypeError, ValueError), match=r"^path must be "):
        aioconn.connect_unix(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"attempts": 0}, ValueError, r"^attempts must be >= 1, got 0"),
        ({"attempts": -3}, ValueError, r"^attempts must be >= 1"),
        ({"attempts": 2.0}, TypeError, r"^attempts must be an int"),
        ({"initial_delay": 0}, ValueError, r"^initial_delay must be a positive"),
        ({"max_delay": math.inf}, ValueError, r"^max_delay must be a positive"),
        (
            {"initial_delay": 1.0, "max_delay": 0.5},
            ValueError,
            r"^max_delay must be >= initial_delay",
        ),
        ({"jitter": 1.5}, ValueError, r"^jitter must be in 0\.\.1, got 1\.5"),
        ({"jitter": -0.1}, ValueError, r"^jitter must be a finite number >= 0"),
        ({"multiplier": 0.5}, ValueError, r"^multiplier must be >= 1, got 0\.5"),
        ({"multiplier": math.nan}, ValueError, r"^multiplier must be a finite number"),
        ({"deadline": 0}, ValueError, r"^deadline must be a positive"),
    ],
)
def test_bad_retry(kwargs: dict[str, Any], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        Retry(**kwargs)


# -- per-call arguments on an open connection ---------------------------------------------------

IoCall = Callable[[aioconn.Connection], Awaitable[object]]
# Deliberately wrong argument types: the connection is typed Any so mypy lets them through.
BadCall = Callable[[Any], Awaitable[object]]

ZERO_TIMEOUT_CALLS: list[tuple[str, IoCall]] = [
    ("send", lambda c: c.send(b"x", timeout=0)),
    ("recv", lambda c: c.recv(timeout=0)),
    ("readexactly", lambda c: c.readexactly(1, timeout=0)),
    ("readline", lambda c: c.readline(timeout=0)),
    ("readuntil", lambda c: c.readuntil(b"|", timeout=-1)),
    ("send_frame", lambda c: c.send_frame(b"x", timeout=math.nan)),
    ("read_frame", lambda c: c.read_frame(timeout=math.inf)),
]


@pytest.mark.parametrize(
    ("method", "call"), ZERO_TIMEOUT_CALLS, ids=[m for m, _ in ZERO_TIMEOUT_CALLS]
)
async def test_per_call_timeout_invalid(echo_server: EchoServer, method: str, call: IoCall) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        with pytest.raises(ValueError, match=r"^timeout must be a positive finite number"):
            await call(conn)
        # Rejected before any I/O: the connection is still clean and usable.
        assert conn.broken is False
        assert conn.reusable is True
        assert echo_server.bytes_received == 0
        await conn.send(b"ok\n")
        assert await conn.readline() == b"ok\n"


BAD_ARGUMENT_CALLS: list[tuple[str, BadCall, type[Exception], str]] = [
    ("recv-0", lambda c: c.recv(max_bytes=0), ValueError, r"^max_bytes must be >= 1, got 0"),
    ("recv-neg", lambda c: c.recv(-5), ValueError, r"^max_bytes must be >= 1"),
    ("recv-float", lambda c: c.recv(1.5), TypeError, r"^max_bytes must be an int"),
    ("readexactly-neg", lambda c: c.readexactly(-1), ValueError, r"^n must be >= 0, got -1"),
    ("readuntil-empty", lambda c: c.readuntil(b""), ValueError, r"^separator must be non-empty"),
    (
        "readuntil-str",
        lambda c: c.readuntil("\n"),
        ValueError,
        r"^separator must be non-empty bytes",
    ),
    ("send-str", lambda c: c.send("str"), TypeError, r"^data must be bytes-like, got str"),
    ("send-int", lambda c: c.send(3), TypeError, r"^data must be bytes-like, got int"),
]


@pytest.mark.parametrize(
    ("name", "call", "error", "pattern"),
    BAD_ARGUMENT_CALLS,
    ids=[n for n, *_ in BAD_ARGUMENT_CALLS],
)
async def test_bad_io_arguments(
    echo_server: EchoServer, name: str, call: BadCall, error: type[Exception], pattern: str
) -> None:
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        with pytest.raises(error, match=pattern):
            await call(conn)
        assert conn.broken is False
        assert conn.reusable is True
        assert echo_server.bytes_received == 0
