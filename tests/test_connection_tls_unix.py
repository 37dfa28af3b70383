"""TLS with certificates made at test time (trustme), and Unix-socket connections."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

import aioconn
from aioconn import ConnectError, ConnectTimeout
from aioconn.testing import EchoServer
from conftest import open_socket_count


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
async def tls_server(server_ctx: ssl.SSLContext) -> AsyncIterator[EchoServer]:
    async with EchoServer(ssl=server_ctx) as server:
        yield server


async def all_closed(server: EchoServer, baseline: int) -> None:
    async with asyncio.timeout(5):
        await server.wait_open_count(0)
    assert open_socket_count() == baseline


# -- TLS ------------------------------------------------------------------------------------------


async def test_tls_round_trip(tls_server: EchoServer, client_ctx: ssl.SSLContext) -> None:
    baseline = open_socket_count()
    async with aioconn.connect(
        "127.0.0.1", tls_server.port, ssl=client_ctx, server_hostname="localhost"
    ) as conn:
        await conn.send(b"secret\n")
        assert await conn.readline() == b"secret\n"
        await conn.send_frame(b"framed")
        assert await conn.read_frame() == b"framed"
        assert conn.reusable is True

        assert conn.tls_version == "TLSv1.3"
        assert conn.cipher is not None
        name, protocol, bits = conn.cipher
        assert protocol == "TLSv1.3"
        assert name.startswith("TLS_")
        assert bits >= 128
        cert = conn.peer_certificate
        assert cert is not None
        assert cert["subjectAltName"] == (("DNS", "localhost"), ("IP Address", "127.0.0.1"))
        assert conn.peername == ("127.0.0.1", tls_server.port)
        assert conn.target == f"127.0.0.1:{tls_server.port}"
        assert tls_server.bytes_received == 7 + 4 + 6
    assert conn.closed is True
    await all_closed(tls_server, baseline)
    assert tls_server.opened == 1


async def test_tls_verifies_ip_address_by_default(
    tls_server: EchoServer, client_ctx: ssl.SSLContext
) -> None:
    # server_hostname defaults to the host, here an IP address matched against the IP SAN.
    async with aioconn.connect("127.0.0.1", tls_server.port, ssl=client_ctx) as conn:
        await conn.send(b"ip\n")
        assert await conn.readline() == b"ip\n"
        assert conn.tls_version == "TLSv1.3"


async def test_tls_wrong_hostname_fails_verification(
    tls_server: EchoServer, client_ctx: ssl.SSLContext
) -> None:
    with pytest.raises(ConnectError) as caught:
        await aioconn.connect(
            "127.0.0.1", tls_server.port, ssl=client_ctx, server_hostname="wrong.example"
        )
    error = caught.value
    assert not isinstance(error, ConnectTimeout)
    cause = error.__cause__
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert (
        cause.verify_message == "Hostname mismatch, certificate is not valid for 'wrong.example'."
    )
    assert [name for name, _ in error.attempts] == [f"127.0.0.1:{tls_server.port}"]
    assert "certificate verify failed" in str(error)
    assert tls_server.opened == 0  # the server never got a usable connection


async def test_tls_default_context_rejects_untrusted_certificate(tls_server: EchoServer) -> None:
    with pytest.raises(ConnectError) as caught:
        await aioconn.connect("127.0.0.1", tls_server.port, ssl=True)
    cause = caught.value.__cause__
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert cause.verify_code == 20
    assert cause.verify_message == "unable to get local issuer certificate"
    assert tls_server.opened == 0


# -- Unix sockets ---------------------------------------------------------------------------------


async def test_unix_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    async with EchoServer(path=path) as server:
        baseline = open_socket_count()
        async with aioconn.connect_unix(path) as conn:
            await conn.send(b"local\n")
            assert await conn.readline() == b"local\n"
            await conn.send_frame(b"frame")
            assert await conn.read_frame() == b"frame"
            assert conn.target == f"unix:{path}"
            assert conn.peername == str(path)
            assert conn.tls_version is None
            assert repr(conn) == f"<aioconn.Connection unix:{path} [open]>"
            assert conn.reusable is True
            assert server.bytes_received == 6 + 4 + 5
        assert conn.closed is True
        await all_closed(server, baseline)
        assert server.opened == 1


async def test_unix_connection_class_method(tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    async with EchoServer(path=str(path)) as server:
        conn = aioconn.Connection.unix(str(path), read_timeout=5)
        assert repr(conn) == f"<aioconn.Connection unix:{path} [new]>"
        async with conn:
            await conn.send(b"x\n")
            assert await conn.readline() == b"x\n"
        async with asyncio.timeout(5):
            await server.wait_open_count(0)


async def test_unix_missing_socket_names_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.sock"
    with pytest.raises(ConnectError) as caught:
        await aioconn.connect_unix(path)
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    assert caught.value.attempts == ((f"unix:{path}", str(caught.value.__cause__)),)
    assert str(caught.value).startswith(f"could not connect to unix:{path}: ")


async def test_tls_over_unix_socket(
    tmp_path: Path, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    path = tmp_path / "tls.sock"
    async with EchoServer(path=path, ssl=server_ctx) as server:
        baseline = open_socket_count()
        async with aioconn.connect_unix(path, ssl=client_ctx, server_hostname="localhost") as conn:
            await conn.send(b"both\n")
            assert await conn.readline() == b"both\n"
            assert conn.tls_version == "TLSv1.3"
        await all_closed(server, baseline)
