"""Each ChaosProxy toxic, measured on the wire through real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import pytest

import aioconn
from aioconn.testing import (
    ChaosProxy,
    EchoServer,
    bandwidth,
    latency,
    limit_data,
    reset_peer,
    slicer,
    slow_close,
    timeout,
)

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


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"
    return loop.time() - start


# -- latency -------------------------------------------------------------------------------


async def test_latency_delays_every_round_trip(proxy: ChaosProxy) -> None:
    proxy.add(latency(0.1))
    async with client(proxy) as (reader, writer):
        for _ in range(3):
            assert 0.1 <= await round_trip(reader, writer) < 1.1


async def test_latency_in_both_directions_adds_up(proxy: ChaosProxy) -> None:
    proxy.add(latency(0.05, direction="upstream"))
    proxy.add(latency(0.1, direction="downstream"))
    async with client(proxy) as (reader, writer):
        assert 0.15 <= await round_trip(reader, writer) < 1.15


async def test_latency_jitter_stays_within_its_bounds(proxy: ChaosProxy) -> None:
    proxy.add(latency(0.1, jitter=0.05))
    async with client(proxy) as (reader, writer):
        for _ in range(4):
            assert 0.05 <= await round_trip(reader, writer) < 1.15


# -- bandwidth -----------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["upstream", "downstream"])
async def test_bandwidth_paces_bytes_to_the_rate(proxy: ChaosProxy, direction: str) -> None:
    proxy.add(bandwidth(20_000, direction="upstream" if direction == "upstream" else "downstream"))
    payload = bytes(range(256)) * 24  # 6144 bytes: at least 0.3072 s at 20 000 B/s
    loop = asyncio.get_running_loop()
    async with client(proxy) as (reader, writer):
        start = loop.time()
        writer.write(payload)
        assert await reader.readexactly(len(payload)) == payload
        elapsed = loop.time() - start
    assert len(payload) / 20_000 <= elapsed < 2.5


# -- slicer --------------------------------------------------------------------------------


class _ChunkRecorder(asyncio.Protocol):
    """An upstream server's connection that records the size of every recv()."""

    def __init__(
        self, transports: list[asyncio.BaseTransport], expected: int, complete: asyncio.Event
    ) -> None:
        self.transports, self.expected, self.complete = transports, expected, complete
        self.sizes: list[int] = []
        self.data = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        self.sizes.append(len(data))
        self.data += data
        if len(self.data) >= self.expected:
            self.complete.set()


@pytest.mark.parametrize(
    ("average", "variation", "total"),
    [(10, 3, 200), (10, 0, 100)],
)
async def test_slicer_fragments_what_the_receiver_reads(
    average: int, variation: int, total: int
) -> None:
    loop = asyncio.get_running_loop()
    complete = asyncio.Event()
    transports: list[asyncio.BaseTransport] = []
    recorders: list[_ChunkRecorder] = []

    def new_recorder() -> _ChunkRecorder:
        recorders.append(_ChunkRecorder(transports, total, complete))
        return recorders[-1]

    server = await loop.create_server(new_recorder, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    payload = bytes(i % 251 for i in range(total))
    try:
        async with ChaosProxy("127.0.0.1", port, seed=7) as proxy:
            proxy.add(slicer(average, variation, delay=0.01, direction="upstream"))
            async with client(proxy) as (_, writer):
                writer.write(payload)
                await complete.wait()
    finally:
        server.close()
        for transport in transports:
            transport.close()
        await server.wait_closed()
    [recorder] = recorders
    sizes = recorder.sizes
    received = recorder.data
    assert bytes(received) == payload
    assert all(average - variation <= size <= average + variation for size in sizes), sizes
    assert len(sizes) >= total // (average + variation)
    if variation == 0:
        assert sizes == [average] * (total // average)
    else:
        assert len(set(sizes)) > 1  # the sizes do vary


# -- limit_data ----------------------------------------------------------------------------


async def test_limit_data_downstream_delivers_exactly_n_bytes_then_eof(proxy: ChaosProxy) -> None:
    proxy.add(limit_data(10))
    async with client(proxy) as (reader, writer):
        writer.write(bytes(range(100)))
        assert await reader.read() == bytes(range(10))  # read() reads up to EOF
    stats = await proxy.wait_for(closed=1)
    assert stats.downstream_bytes == 10
    assert stats.upstream_bytes == 100


async def test_limit_data_upstream_lets_the_server_see_n_bytes(
    proxy: ChaosProxy, echo_server: EchoServer
) -> None:
    proxy.add(limit_data(5, direction="upstream"))
    async with client(proxy) as (reader, writer):
        writer.write(bytes(range(100)))
        assert await reader.read() == b""
    await echo_server.wait_until(lambda: echo_server.closed == 1)
    assert echo_server.bytes_received == 5
    assert (await proxy.wait_for(closed=1)).upstream_bytes == 5


# -- timeout -------------------------------------------------------------------------------


async def test_timeout_zero_is_a_black_hole(proxy: ChaosProxy) -> None:
    proxy.add(timeout(0))
    async with aioconn.connect(proxy.host, proxy.port, read_timeout=0.2) as conn:
        await conn.send(b"ping")
        await proxy.wait_for(downstream_read=4)  # the echo reached the proxy...
        with pytest.raises(aioconn.ReadTimeout):
            await conn.recv()  # ...and not the client
        stats = proxy.stats
        assert stats.upstream_bytes == 4
        assert stats.downstream_bytes == 0
        assert stats.open == 1  # never closed


async def test_timeout_closes_the_link_after_its_delay(proxy: ChaosProxy) -> None:
    proxy.add(timeout(0.3))
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with client(proxy) as (reader, writer):
        writer.write(b"ping")
        assert await reader.read() == b""  # nothing arrives, then EOF
        elapsed = loop.time() - start
    assert 0.3 <= elapsed < 2.3
    stats = await proxy.wait_for(closed=1)
    assert stats.downstream_bytes == 0


# -- reset_peer ----------------------------------------------------------------------------


async def test_reset_peer_resets_the_client_instead_of_replying(proxy: ChaosProxy) -> None:
    proxy.add(reset_peer())
    async with client(proxy) as (reader, writer):
        writer.write(b"ping")
        with pytest.raises(ConnectionResetError):
            await reader.read(100)
    stats = await proxy.wait_for(closed=1)
    assert (stats.upstream_bytes, stats.downstream_read, stats.downstream_bytes) == (4, 4, 0)


async def test_reset_peer_after_a_delay_resets_after_that_delay(proxy: ChaosProxy) -> None:
    async with client(proxy) as (reader, writer):
        await round_trip(reader, writer)  # idle or not, a link is reset only once data comes
        proxy.add(reset_peer(0.2))
        loop = asyncio.get_running_loop()
        start = loop.time()
        writer.write(b"ping")
        with pytest.raises(ConnectionResetError):
            await reader.read(100)
        elapsed = loop.time() - start
    assert 0.2 <= elapsed < 2.2
    assert proxy.stats.downstream_bytes == 4  # the first round trip only


# -- slow_close ----------------------------------------------------------------------------


async def test_slow_close_delays_the_eof(proxy: ChaosProxy, echo_server: EchoServer) -> None:
    proxy.add(slow_close(0.3))
    loop = asyncio.get_running_loop()
    async with client(proxy) as (reader, writer):
        await round_trip(reader, writer)
        start = loop.time()
        writer.write_eof()
        await echo_server.wait_until(lambda: echo_server.closed == 1)
        assert not reader.at_eof()  # the server is gone; its FIN is held back
        assert await reader.read() == b""
        elapsed = loop.time() - start
    assert 0.3 <= elapsed < 2.3


# -- toxicity ------------------------------------------------------------------------------


async def _links_hit(proxy: ChaosProxy, connections: int) -> list[int]:
    """Link ids (1-based, in connection order) on which an upstream limit_data(0) applied."""
    hit = []
    for link_id in range(1, connections + 1):
        async with client(proxy) as (reader, writer):
            writer.write(b"x")
            if await reader.read(1) == b"":
                hit.append(link_id)
    return hit


@pytest.mark.parametrize(("toxicity", "expected"), [(0.0, []), (1.0, [1, 2, 3, 4, 5, 6])])
async def test_toxicity_zero_never_applies_and_one_always_does(
    proxy: ChaosProxy, toxicity: float, expected: list[int]
) -> None:
    proxy.add(limit_data(0, direction="upstream", toxicity=toxicity))
    assert await _links_hit(proxy, 6) == expected


async def test_toxicity_applies_to_a_subset_fixed_by_the_seed(proxy: ChaosProxy) -> None:
    proxy.add(limit_data(0, direction="upstream", toxicity=0.5))
    hit = await _links_hit(proxy, 16)
    # The documented rule: link n is hit when Random(f"{seed}/{n}/{name}").random() < toxicity.
    expected = [
        n
        for n in range(1, 17)
        if random.Random(f"{proxy.seed}/{n}/limit_data_upstream").random() < 0.5
    ]
    assert hit == expected
    assert 0 < len(hit) < 16
