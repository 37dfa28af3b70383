"""S3 (echo RPC through a pool), S4 (one connection) and S5's opening of 1,000 connections.

All talk to the echo server of ``echo_server.py``, in its own process on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioconn

from .checks import CheckFailed, Holds, NotApplicable
from .contenders import Contender, s3_split_contenders
from .harness import Case, Metrics, interleave, run_once
from .plan import Plan
from .resources import Echo, exchange_aioconn, exchange_streams
from .stats import percentile

LINE = 64  # bytes per request, newline included
LOOPS = ("asyncio", "uvloop")


@dataclass(frozen=True)
class Address:
    host: str
    port: int


@contextlib.contextmanager
def echo_server(latency: float = 0.0) -> Iterator[Address]:
    """Start ``echo_server.py`` in a child process; stop it (stdin EOF, then kill) on exit.

    With ``latency`` > 0 the address is that of a ChaosProxy in front of it, in the same child
    process, which delays every reply by ``latency`` seconds.
    """
    script = Path(__file__).with_name("echo_server.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--latency", repr(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        words = process.stdout.readline().split()
        if len(words) != 3 or words[0] != "LISTENING":
            raise RuntimeError(f"echo server did not start (said {' '.join(words)!r})")
        yield Address(words[1], int(words[2]))
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _lines(worker: int, count: int) -> list[bytes]:
    return [(b"%04d %08d " % (worker, n)).ljust(LINE - 1, b".") + b"\n" for n in range(count)]


# -- S3: echo RPC through a pool of real connections --------------------------------------------


@dataclass(frozen=True)
class RawStreams:
    """The limit of S3: no pool, one dedicated raw-stream connection per worker."""

    key: str = "raw"
    label: str = "raw streams, 1 connection per worker (limit)"
    is_floor: bool = False


async def s3_echo(
    contender: Contender | RawStreams, address: Address, workers: int, requests: int, size: int
) -> Metrics:
    echo = Echo(address.host, address.port)
    latencies: list[float] = []
    clock = time.perf_counter
    if isinstance(contender, RawStreams):
        connections = [await echo.create() for _ in range(workers)]

        async def worker(n: int) -> None:
            pair = connections[n]
            for line in _lines(n, requests):
                asked = clock()
                reply = await exchange_streams(pair, line)
                latencies.append(clock() - asked)
                if reply != line:
                    raise CheckFailed(f"raw streams: sent {line!r}, got {reply!r}")

        async def close() -> None:
            for pair in connections:
                await echo.close(pair)

    else:
        pool = await contender.open(echo, size)
        acquire, exchange = pool.acquire, pool.exchange
        holds = Holds(size, contender.label)

        async def worker(n: int) -> None:
            for line in _lines(n, requests):
                asked = clock()
                async with acquire() as connection:
                    holds.take(connection)
                    reply = await exchange(connection, line)
                    holds.give(connection)
                latencies.append(clock() - asked)
                if reply != line:
                    raise CheckFailed(f"{contender.label}: sent {line!r}, got {reply!r}")

        close = pool.close
    try:
        started = clock()
        await asyncio.gather(*(worker(n) for n in range(workers)))
        elapsed = clock() - started
        echo.check_alive(workers if isinstance(contender, RawStreams) else size, contender.label)
    finally:
        await close()
    latencies.sort()
    if len(latencies) != workers * requests:
        raise CheckFailed(f"{contender.label}: {len(latencies)} replies, {workers * requests} sent")
    return {
        "rate": workers * requests / elapsed,
        "lat_p50": percentile(latencies, 0.50),
        "lat_p99": percentile(latencies, 0.99),
        "lat_max": latencies[-1],
    }


def run_s3(plan: Plan, contenders: list[Contender], address: Address) -> list[Case]:
    everyone: list[Any] = [*contenders, RawStreams(), *s3_split_contenders()]
    cases = []
    for loop in LOOPS:
        case = Case("S3", f"echo RPC, {loop}")
        interleave(
            case,
            everyone,
            plan.heavy_rounds,
            lambda c, _, loop=loop: run_once(
                lambda: s3_echo(c, address, plan.s3_workers, plan.s3_requests, plan.s3_pool),
                loop=loop,
                budget=plan.budget,
            ),
        )
        cases.append(case)
    return cases


# -- S4: one connection, aioconn.Connection against raw streams ---------------------------------


@dataclass(frozen=True)
class Single:
    key: str
    label: str
    is_floor: bool = False


S4_CONTENDERS = [
    Single("raw", "raw StreamWriter.write/drain + StreamReader.readline", is_floor=True),
    Single("aioconn", "aioconn Connection.send + readline"),
]


async def s4_single(contender: Single, address: Address, requests: int) -> Metrics:
    lines = _lines(0, requests)
    if contender.key == "aioconn":
        connection: Any = await aioconn.connect(address.host, address.port)
        exchange: Any = exchange_aioconn
    else:
        echo = Echo(address.host, address.port)
        connection = await echo.create()
        exchange = exchange_streams
    try:
        cpu = time.process_time()
        started = time.perf_counter()
        for line in lines:
            if await exchange(connection, line) != line:
                raise CheckFailed(f"{contender.label}: a reply did not match its request")
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        if contender.key == "aioconn":
            await connection.close()
        else:
            await echo.close(connection)
    return {
        "rate": requests / elapsed,
        "us_per_request": elapsed / requests * 1e6,
        "cpu_us_per_request": cpu / requests * 1e6,
    }


def run_s4(plan: Plan, address: Address) -> list[Case]:
    cases = []
    for loop in LOOPS:
        case = Case("S4", f"one connection, {loop}")
        interleave(
            case,
            S4_CONTENDERS,
            plan.rounds,
            lambda c, _, loop=loop: run_once(
                lambda: s4_single(c, address, plan.s4_requests), loop=loop, budget=plan.budget
            ),
        )
        cases.append(case)
    return cases


# -- S5: opening 1,000 connections -------------------------------------------------------------


S5_OPEN_CONTENDERS = [
    Single("sequential", "aioconn.connect, one after another", is_floor=True),
    Single("pool", "aioconn Pool(min_size=N, max_size=N).open(), max_connecting=100"),
    Single("gather", "asyncio.gather(asyncio.open_connection x N) (reference)"),
]

# Through the ChaosProxy (listen backlog 100), the reference opens 100 at a time as the pool
# does: 1,000 connects at once would overflow the backlog and wait for the kernel's 1 s retry.
S5_LATENCY_CONTENDERS = [
    *S5_OPEN_CONTENDERS[:2],
    Single("gather100", "asyncio.open_connection + greeting, 100 at a time (reference)"),
]
OPEN_AT_ONCE = 100

HELLO = b"HELLO\n"  # the handshake of the latency case: one round trip, as a protocol's greeting


async def _hello(connection: aioconn.Connection) -> None:
    await connection.send(HELLO)
    if await connection.readline() != HELLO:
        raise CheckFailed("the handshake's reply did not match")


async def _raw_hello(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(HELLO)
    await writer.drain()
    if await reader.readline() != HELLO:
        raise CheckFailed("the handshake's reply did not match")
    return reader, writer


async def s5_open(contender: Single, address: Address, count: int, handshake: bool) -> Metrics:
    """Open ``count`` connections; with ``handshake``, each makes one round trip once open
    (the pool's ``init`` hook, as a protocol's greeting), so a latency on the way counts."""
    host, port = address.host, address.port
    opened: list[Any] = []
    started = time.perf_counter()
    if contender.key == "pool":
        connector = aioconn.TCPConnector(host, port, init=_hello if handshake else None)
        pool: aioconn.Pool[aioconn.Connection] = aioconn.Pool(
            connector, min_size=count, max_size=count
        )
        await pool.open()
        elapsed = time.perf_counter() - started
        size = pool.stats().idle
        await pool.close()
    elif contender.key == "sequential":
        for _ in range(count):
            connection = await aioconn.connect(host, port)
            opened.append(connection)
            if handshake:
                await _hello(connection)
        elapsed = time.perf_counter() - started
        size = len(opened)
        for connection in opened:
            await connection.close()
    else:
        if handshake:
            gate = asyncio.Semaphore(OPEN_AT_ONCE if contender.key == "gather100" else count)

            async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
                async with gate:
                    return await _raw_hello(host, port)

            pairs = await asyncio.gather(*(one() for _ in range(count)))
        else:
            pairs = await asyncio.gather(
                *(asyncio.open_connection(host, port) for _ in range(count))
            )
        elapsed = time.perf_counter() - started
        size = len(pairs)
        for _, writer in pairs:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for _, w in pairs), return_exceptions=True)
    if size != count:
        raise CheckFailed(f"{contender.label}: {size} connections open, expected {count}")
    return {"seconds": elapsed}


def check_fd_limit(count: int) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 256:
        raise NotApplicable(f"ulimit -n is {soft}; opening {count} connections needs more")


def run_s5_open(plan: Plan, address: Address, latency: float = 0.0) -> list[Case]:
    """Open ``plan.s5_open`` connections to ``address``; with ``latency`` (the address is then a
    ChaosProxy adding it), each connection also makes one round trip."""
    name = f"open {plan.s5_open:,} connections"
    if latency:
        name += f", {latency * 1e3:g} ms latency (ChaosProxy) + 1 round trip each"
    case = Case("S5", name)
    handshake = latency > 0

    def measure(contender: Single, _: int) -> Metrics:
        check_fd_limit(plan.s5_open)
        return run_once(
            lambda: s5_open(contender, address, plan.s5_open, handshake),
            budget=max(plan.budget, 30.0) if handshake else plan.budget,
        )

    contenders = S5_LATENCY_CONTENDERS if handshake else S5_OPEN_CONTENDERS
    interleave(case, contenders, plan.heavy_rounds, measure)
    return [case]
