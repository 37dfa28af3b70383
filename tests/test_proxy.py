"""ChaosProxy itself: forwarding, counters, events, hold/release, switches, live toxics, CLI."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator

import pytest

from aioconn.cli import main
from aioconn.testing import (
    ChaosProxy,
    EchoServer,
    ProxyStats,
    bandwidth,
    latency,
    limit_data,
    slicer,
    timeout,
)
from conftest import open_socket_count
from process_helpers import start_cli

Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def proxy(echo_server: EchoServer) -> AsyncIterator[ChaosProxy]:
    async with ChaosProxy(echo_server.host, echo_server.port, seed=1234) as proxy:
        yield proxy


@contextlib.asynccontextmanager
async def client(proxy: ChaosProxy) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):  # a reset connection reports it here too
            await writer.wait_closed()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    assert await reader.readexactly(len(data)) == data


# -- forwarding and counters ---------------------------------------------------------------


async def test_forwards_both_ways_and_counts_exactly(proxy: ChaosProxy) -> None:
    async with client(proxy) as (reader, writer):
        await echo(reader, writer, b"hello")
        assert proxy.stats == ProxyStats(
            open=1,
            accepted=1,
            closed=0,
            upstream_bytes=5,
            downstream_bytes=5,
            upstream_read=5,
            downstream_read=5,
        )
        async with client(proxy) as (reader2, writer2):
            await echo(reader2, writer2, b"world!")
            assert proxy.stats.open == 2
    stats = await proxy.wait_for(closed=2)
    assert stats == ProxyStats(
        open=0,
        accepted=2,
        closed=2,
        upstream_bytes=11,
        downstream_bytes=11,
        upstream_read=11,
        downstream_read=11,
    )


async def test_wait_for_follows_accepted_open_and_closed(
    proxy: ChaosProxy, echo_server: EchoServer
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client(proxy)) for _ in range(3)]
        stats = await proxy.wait_for(accepted=3, open=3)
        assert (stats.accepted, stats.open, stats.closed) == (3, 3, 0)
        await echo_server.wait_open_count(3)
        clients[0][1].close()
        stats = await proxy.wait_for(closed=1, open=2)
        assert (stats.accepted, stats.open, stats.closed) == (3, 2, 1)
    stats = await proxy.wait_for(open=0)
    assert (stats.accepted, stats.open, stats.closed) == (3, 0, 3)
    await echo_server.wait_open_count(0)


async def test_wait_for_needs_a_counter_and_fails_when_the_proxy_closes(
    echo_server: EchoServer,
) -> None:
    async with ChaosProxy(echo_server.host, echo_server.port) as proxy:
        with pytest.raises(TypeError, match="at least one counter"):
            await proxy.wait_for()
        waiter = asyncio.ensure_future(proxy.wait_for(accepted=1))
        await asyncio.sleep(0)  # let it register
    with pytest.raises(RuntimeError, match="closed"):
        await waiter
    with pytest.raises(RuntimeError, match="closed"):
        await proxy.wait_for(accepted=1)


async def test_close_closes_every_link_and_socket(echo_server: EchoServer) -> None:
    baseline = open_socket_count()
    async with ChaosProxy(echo_server.host, echo_server.port) as proxy:
        proxy.add(latency(60))  # data parked inside a toxic must not keep anything alive
        clients = [await asyncio.open_connection(proxy.host, proxy.port) for _ in range(3)]
        for _, writer in clients:
            writer.write(b"x")
        await proxy.wait_for(downstream_read=3)
        assert open_socket_count() == baseline + 1 + 4 * 3  # listener; client, 2 proxy, server
    assert proxy.stats.closed == 3
    names = [task.get_name() for task in asyncio.all_tasks()]
    assert not [name for name in names if name.startswith(("aioconn proxy", "link "))]
    for reader, writer in clients:
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
    await echo_server.wait_open_count(0)
    assert open_socket_count() == baseline
    await proxy.close()  # idempotent


async def test_seed_is_exposed_and_picked_when_not_given(echo_server: EchoServer) -> None:
    assert ChaosProxy(echo_server.host, echo_server.port, seed=5).seed == 5
    seed = ChaosProxy(echo_server.host, echo_server.port).seed
    assert isinstance(seed, int)
    assert 0 <= seed < 2**32


async def test_repr_shows_state_counts_and_toxics(proxy: ChaosProxy) -> None:
    proxy.add(latency(0.01))
    async with client(proxy) as (reader, writer):
        await echo(reader, writer, b"x")
        assert repr(proxy) == (
            f"<ChaosProxy 127.0.0.1:{proxy.port} -> 127.0.0.1:{proxy.upstream_port} "
            "[enabled | open=1 accepted=1 closed=0 | toxics: latency_downstream]>"
        )


# -- failures at either end ----------------------------------------------------------------


async def test_unreachable_upstream_resets_the_client() -> None:
    with socket.socket() as sock:  # a loopback port with nothing listening on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with ChaosProxy("127.0.0.1", port) as proxy, client(proxy) as (reader, _):
        with pytest.raises(ConnectionResetError):
            await reader.read(1)
        stats = await proxy.wait_for(closed=1)
        assert (stats.accepted, stats.open) == (1, 0)


async def test_upstream_reset_reaches_the_client(
    proxy: ChaosProxy, echo_server: EchoServer
) -> None:
    async with client(proxy) as (reader, writer):
        await echo(reader, writer, b"x")
        assert echo_server.reset_all() == 1
        with pytest.raises(ConnectionResetError):
            await reader.read(1)
    assert (await proxy.wait_for(closed=1)).open == 0


# -- hold and release ----------------------------------------------------------------------


async def test_hold_upstream_buffers_until_release(
    proxy: ChaosProxy, echo_server: EchoServer
) -> None:
    proxy.hold("upstream")
    async with client(proxy) as (reader, writer):
        writer.write(b"abc")
        stats = await proxy.wait_for(upstream_read=3)
        assert stats.upstream_bytes == 0
        assert echo_server.bytes_received == 0
        proxy.release("upstream")
        assert await reader.readexactly(3) == b"abc"
        assert proxy.stats.upstream_bytes == 3


async def test_hold_downstream_keeps_the_eof_behind_the_data(
    proxy: ChaosProxy, echo_server: EchoServer
) -> None:
    proxy.hold("downstream")
    async with client(proxy) as (reader, writer):
        writer.write(b"abc")
        writer.write_eof()
        await echo_server.wait_until(lambda: echo_server.closed == 1)  # replied and hung up
        stats = await proxy.wait_for(downstream_read=3)
        assert stats.downstream_bytes == 0
        assert not reader.at_eof()
        proxy.release("downstream")
        assert await reader.read() == b"abc"  # then EOF
    assert (await proxy.wait_for(closed=1)).downstream_bytes == 3


async def test_hold_rejects_an_unknown_direction(proxy: ChaosProxy) -> None:
    with pytest.raises(ValueError, match="direction"):
        proxy.hold("sideways")  # type: ignore[arg-type]  # the mistake under test


# -- disable and enable --------------------------------------------------------------------


async def test_disable_closes_links_and_refuses_new_clients_until_enable(
    proxy: ChaosProxy,
) -> None:
    port = proxy.port
    async with client(proxy) as (reader, writer):
        await echo(reader, writer, b"a")
        proxy.disable()
        assert not proxy.enabled
        assert await reader.read() == b""
    await proxy.wait_for(closed=1)
    with pytest.raises(ConnectionRefusedError):  # like a downed server: no TCP connection at all
        await asyncio.open_connection(proxy.host, proxy.port)
    assert (proxy.stats.accepted, proxy.stats.refused) == (1, 0)  # the kernel refused it
    proxy.enable()
    assert proxy.port == port
    async with client(proxy) as (reader, writer):
        await echo(reader, writer, b"b")
    stats = await proxy.wait_for(closed=2)
    assert (stats.accepted, stats.refused, stats.open) == (2, 0, 0)


def _bind_without_reuse(port: int) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))


async def test_a_disabled_proxy_keeps_its_port(proxy: ChaosProxy) -> None:
    async with client(proxy) as (reader, writer):  # leaves an accepted socket on the port
        await echo(reader, writer, b"a")
    await proxy.wait_for(closed=1)
    for _ in range(2):  # the switches are idempotent
        proxy.disable()
    with pytest.raises(OSError, match="Address already in use"):
        _bind_without_reuse(proxy.port)
    for _ in range(2):
        proxy.enable()
    async with client(proxy) as (reader, writer):
        await echo(reader, writer, b"b")
    await proxy.close()
    _bind_without_reuse(proxy.port)  # released only by close()


async def test_a_proxy_disabled_before_start_refuses_from_the_start(
    echo_server: EchoServer,
) -> None:
    proxy = ChaosProxy(echo_server.host, echo_server.port)
    proxy.disable()
    async with proxy:
        assert proxy.port != 0
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(proxy.host, proxy.port)
        proxy.enable()
        async with client(proxy) as (reader, writer):
            await echo(reader, writer, b"c")


async def test_disable_and_enable_in_a_tight_loop_leak_no_socket(proxy: ChaosProxy) -> None:
    before = open_socket_count()
    for _ in range(50):
        proxy.disable()
        proxy.enable()
    assert open_socket_count() == before
    async with client(proxy) as (reader, writer):
        await echo(reader, writer, b"d")


async def test_disable_while_a_link_connects_upstream_closes_it(proxy: ChaosProxy) -> None:
    async with client(proxy) as (reader, _):
        await proxy.wait_for(accepted=1)  # the link has just started connecting upstream
        proxy.disable()
        assert await reader.read() == b""
    stats = await proxy.wait_for(closed=1)
    assert (stats.accepted, stats.open, stats.upstream_bytes) == (1, 0, 0)


# -- toxics, live --------------------------------------------------------------------------


async def test_update_changes_a_toxic_on_an_open_link(proxy: ChaosProxy) -> None:
    loop = asyncio.get_running_loop()
    async with client(proxy) as (reader, writer):
        handle = proxy.add(latency(0.3))
        start = loop.time()
        await echo(reader, writer, b"a")
        assert loop.time() - start >= 0.3
        handle.update(delay=0.0)
        assert handle.toxic == latency(0.0, name="latency_downstream")
        start = loop.time()
        await echo(reader, writer, b"b")
        assert loop.time() - start < 0.3


async def test_remove_lets_data_through_again(proxy: ChaosProxy) -> None:
    async with client(proxy) as (reader, writer):
        await echo(reader, writer, b"a")
        handle = proxy.add(timeout(0))
        writer.write(b"b")
        assert (await proxy.wait_for(downstream_read=2)).downstream_bytes == 1  # "b" dropped
        proxy.remove(handle)
        assert not handle.active
        assert proxy.toxics == ()
        await echo(reader, writer, b"c")
        handle.remove()  # idempotent


async def test_update_toxicity_to_zero_turns_a_toxic_off(proxy: ChaosProxy) -> None:
    async with client(proxy) as (reader, writer):
        handle = proxy.add(timeout(0))
        writer.write(b"b")
        assert (await proxy.wait_for(downstream_read=1)).downstream_bytes == 0
        handle.update(toxicity=0.0)
        await echo(reader, writer, b"c")


async def test_removing_latency_releases_a_delayed_chunk_at_once(proxy: ChaosProxy) -> None:
    loop = asyncio.get_running_loop()
    async with client(proxy) as (reader, writer):
        handle = proxy.add(latency(30))
        start = loop.time()
        writer.write(b"x")
        await proxy.wait_for(downstream_read=1)
        assert proxy.stats.downstream_bytes == 0
        handle.remove()
        assert await reader.readexactly(1) == b"x"
        assert loop.time() - start < 10


async def test_timeout_added_live_closes_after_its_delay(proxy: ChaosProxy) -> None:
    loop = asyncio.get_running_loop()
    async with client(proxy) as (reader, writer):
        await echo(reader, writer, b"a")
        start = loop.time()
        proxy.add(timeout(0.2))
        assert await reader.read() == b""
        assert 0.2 <= loop.time() - start < 2.2


async def test_toxic_context_manager_scopes_one_toxic(proxy: ChaosProxy) -> None:
    async with proxy.toxic(limit_data(0, direction="upstream")) as handle:
        assert proxy.toxics == (handle,)
        async with client(proxy) as (reader, writer):
            writer.write(b"x")
            assert await reader.read() == b""
    assert not proxy.toxics
    assert not handle.active
    async with client(proxy) as (reader, writer):
        await echo(reader, writer, b"x")


async def test_chain_runs_toxics_in_the_order_added(proxy: ChaosProxy) -> None:
    # limit_data sees the byte before timeout drops it, so the link closes; the other way
    # round the byte would vanish and the link stay open.
    proxy.add(limit_data(0, direction="upstream"))
    proxy.add(timeout(0, direction="upstream"))
    assert [handle.name for handle in proxy.toxics] == ["limit_data_upstream", "timeout_upstream"]
    async with client(proxy) as (reader, writer), asyncio.timeout(5):
        writer.write(b"x")
        assert await reader.read() == b""


async def test_names_are_unique_and_parameters_checked(proxy: ChaosProxy) -> None:
    handle = proxy.add(latency(0.1))
    with pytest.raises(ValueError, match="already installed"):
        proxy.add(latency(0.2))
    proxy.add(latency(0.2, name="second"))
    with pytest.raises(ValueError, match="cannot change"):
        handle.update(direction="upstream")
    with pytest.raises(TypeError):
        handle.update(nbytes=3)
    with pytest.raises(ValueError, match="delay"):
        handle.update(delay=-1)
    handle.remove()
    with pytest.raises(RuntimeError, match="removed"):
        handle.update(delay=0.5)
    with pytest.raises(ValueError, match="toxicity"):
        latency(0.1, toxicity=1.5)
    with pytest.raises(ValueError, match="direction"):
        latency(0.1, direction="sideways")  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(ValueError, match="size_variation"):
        slicer(4, 4)
    with pytest.raises(ValueError, match="bytes_per_second"):
        bandwidth(0)
    with pytest.raises(TypeError, match="toxic"):
        proxy.add("latency")  # type: ignore[arg-type]  # the mistake under test


# -- the command line ----------------------------------------------------------------------


async def test_cli_proxy_forwards_with_latency_until_interrupted(echo_server: EchoServer) -> None:
    process = await start_cli(
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        f"127.0.0.1:{echo_server.port}",
        "--latency",
        "0.05",
        "--seed",
        "3",
        pipe_stderr=False,
    )
    try:
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode()
        assert line.startswith("chaos proxy listening on 127.0.0.1:"), line
        assert f"-> 127.0.0.1:{echo_server.port} (seed 3)" in line
        port = int(line.split()[4].rpartition(":")[2])
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        start = loop.time()
        await echo(reader, writer, b"ping")
        assert loop.time() - start >= 0.05
        writer.close()
        await writer.wait_closed()
    finally:
        process.send_signal(signal.SIGINT)
        await process.communicate()  # to EOF: the pipe transport closes only then
    assert process.returncode == 0


def test_cli_proxy_rejects_a_bad_address(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["proxy", "--listen", "nowhere", "--upstream", "127.0.0.1:1"])
    assert exited.value.code == 2
    assert "HOST:PORT" in capsys.readouterr().err
