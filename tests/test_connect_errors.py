"""Connect failures name the address and say why; deadlines hold; Retry's schedule and loop."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aioconn
from aioconn import ConnectError, ConnectTimeout, Retry
from conftest import open_socket_count

SLACK = 2.0  # seconds of scheduling delay tolerated on a loaded machine (debug mode is slow)

# -- loopback-only fixtures -----------------------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port whose SYNs go unanswered: listen(0) with a full accept queue."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port: int = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(2):
                filler = socket.socket()
                fillers.append(filler)
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            yield port
        finally:
            for filler in fillers:
                filler.close()


@pytest.fixture
async def no_tls_server() -> AsyncIterator[int]:
    """A TCP server that accepts and never answers a TLS ClientHello."""
    handlers: set[asyncio.Task[None]] = set()
    stopping = False

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            while await reader.read(65536):
                pass
        except OSError:
            pass
        except asyncio.CancelledError:
            # asyncio 3.11's start_server reports a cancelled handler to the loop as an error:
            # end quietly when the cancel is our own teardown's.
            if not stopping:
                raise
        finally:
            writer.transport.abort()
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        stopping = True
        server.close()
        for task in list(handlers):
            task.cancel()
        if handlers:
            await asyncio.wait(list(handlers))
        await server.wait_closed()


class RetryLog(logging.Handler):
    """Collects aioconn.retry's "retrying" records and runs a hook on each one."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self.hooks: list[Callable[[], object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        for hook in self.hooks:
            hook()


@pytest.fixture
def retry_log() -> Iterator[RetryLog]:
    logger = logging.getLogger("aioconn.retry")
    handler = RetryLog()
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


# -- connect failures -----------------------------------------------------------------------------


async def test_closed_port_fails_fast_naming_the_address(closed_port: int) -> None:
    baseline = open_socket_count()
    started = time.monotonic()
    with pytest.raises(ConnectError) as caught:
        await aioconn.connect("127.0.0.1", closed_port)
    assert time.monotonic() - started < SLACK
    error = caught.value
    assert type(error) is ConnectError
    assert isinstance(error, ConnectionError)
    address = f"127.0.0.1:{closed_port}"
    assert isinstance(error.__cause__, ConnectionRefusedError)
    assert error.attempts == ((address, str(error.__cause__)),)
    assert str(error) == f"could not connect to {address} ({address}: {error.__cause__})"
    assert open_socket_count() == baseline


async def test_closed_port_ipv6_names_bracketed_address() -> None:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(ConnectError) as caught:
            await aioconn.connect("::1", port)
    assert [name for name, _ in caught.value.attempts] == [f"[::1]:{port}"]
    assert str(caught.value).startswith(f"could not connect to [::1]:{port} ([::1]:{port}: ")


async def test_closed_port_with_async_with_never_enters(closed_port: int) -> None:
    entered = False
    with pytest.raises(ConnectError):
        async with aioconn.connect("127.0.0.1", closed_port):
            entered = True
    assert entered is False


async def test_failed_connect_leaves_connection_closed(closed_port: int) -> None:
    conn = aioconn.Connection("127.0.0.1", closed_port)
    with pytest.raises(ConnectError):
        await conn.connect()
    assert conn.closed is True
    with pytest.raises(RuntimeError, match=r"already called"):
        await conn.connect()


async def test_black_hole_obeys_connect_timeout(black_hole: int) -> None:
    baseline = open_socket_count()
    started = time.monotonic()
    with pytest.raises(ConnectTimeout) as caught:
        await aioconn.connect("127.0.0.1", black_hole, connect_timeout=0.2)
    elapsed = time.monotonic() - started
    assert 0.2 - 0.05 <= elapsed < 0.2 + SLACK
    error = caught.value
    assert isinstance(error, ConnectError)
    assert isinstance(error, TimeoutError)
    assert error.attempts == ((f"127.0.0.1:{black_hole}", "timed out"),)
    assert str(error) == (
        f"could not connect to 127.0.0.1:{black_hole} within connect_timeout=0.2 s"
    )
    assert open_socket_count() == baseline  # the half-open attempt was closed


async def test_unanswered_tls_handshake_obeys_connect_timeout(no_tls_server: int) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectTimeout) as caught:
        await aioconn.connect("127.0.0.1", no_tls_server, ssl=True, connect_timeout=0.2)
    assert time.monotonic() - started < 0.2 + SLACK
    assert caught.value.attempts == ((f"127.0.0.1:{no_tls_server}", "timed out"),)


# -- Retry: the schedule --------------------------------------------------------------------------


def test_caps_grow_by_multiplier_up_to_max_delay() -> None:
    retry = Retry(attempts=6, initial_delay=0.1, max_delay=0.5, multiplier=2.0)
    assert list(retry.caps()) == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    assert list(Retry(attempts=4, initial_delay=1.0, max_delay=9.0, multiplier=3.0).caps()) == [
        1.0,
        3.0,
        9.0,
    ]
    assert list(Retry(attempts=4, initial_delay=0.5, max_delay=5, multiplier=1).caps()) == [
        0.5,
        0.5,
        0.5,
    ]
    assert list(Retry(attempts=1).caps()) == []
    assert list(Retry(attempts=1).delays()) == []


def test_zero_jitter_is_deterministic() -> None:
    retry = Retry(attempts=5, initial_delay=0.25, max_delay=1.0, jitter=0.0)
    assert list(retry.delays()) == [0.25, 0.5, 1.0, 1.0]
    assert list(retry.delays()) == [0.25, 0.5, 1.0, 1.0]


def test_full_jitter_with_seeded_rng() -> None:
    retry = Retry(attempts=8, initial_delay=0.1, max_delay=2.0, jitter=1.0, rng=random.Random(42))
    caps = list(retry.caps())
    delays = list(retry.delays())
    assert len(delays) == 7
    for delay, cap in zip(delays, caps, strict=True):
        assert 0 <= delay <= cap
    # Same seed, same schedule: a delay is the cap shrunk by a uniform fraction of jitter.
    rng = random.Random(42)
    assert delays == [cap - cap * rng.random() for cap in caps]
    again = Retry(attempts=8, initial_delay=0.1, max_delay=2.0, jitter=1.0, rng=random.Random(42))
    assert list(again.delays()) == delays


def test_partial_jitter_keeps_a_floor() -> None:
    retry = Retry(attempts=50, initial_delay=1.0, max_delay=1.0, jitter=0.25, rng=random.Random(3))
    delays = list(retry.delays())
    assert len(delays) == 49
    assert all(0.75 <= d <= 1.0 for d in delays)
    assert len(set(delays)) == 49  # really random, not a constant


@settings(deadline=None)  # pure computation; no per-example deadline on a loaded machine
@given(
    attempts=st.integers(1, 12),
    initial=st.floats(0.001, 1.0),
    spread=st.floats(1.0, 100.0),
    multiplier=st.floats(1.0, 4.0),
    jitter=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
)
def test_schedule_bounds(
    attempts: int, initial: float, spread: float, multiplier: float, jitter: float, seed: int
) -> None:
    retry = Retry(
        attempts=attempts,
        initial_delay=initial,
        max_delay=initial * spread,
        multiplier=multiplier,
        jitter=jitter,
        rng=random.Random(seed),
    )
    caps = list(retry.caps())
    delays = list(retry.delays())
    assert len(caps) == len(delays) == attempts - 1
    for i, cap in enumerate(caps):
        expected = min(initial * multiplier**i, initial * spread)
        assert cap == pytest.approx(expected, rel=1e-9)
        assert cap <= retry.max_delay
    assert caps == sorted(caps)
    for delay, cap in zip(delays, caps, strict=True):
        assert cap * (1 - jitter) - 1e-12 <= delay <= cap
        assert delay >= 0


# -- Retry.call -----------------------------------------------------------------------------------


def fast(attempts: int) -> Retry:
    """A policy with 1 ms pauses: retries happen, the test stays fast."""
    return Retry(attempts=attempts, initial_delay=0.001, max_delay=0.001)


async def test_call_retries_then_succeeds(retry_log: RetryLog) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionRefusedError(f"refused #{calls}")
        return "ok"

    assert await fast(5).call(flaky, description="flaky op") == "ok"
    assert calls == 3
    assert len(retry_log.messages) == 2
    assert retry_log.messages[0].startswith("flaky op failed (attempt 1 of 5: refused #1)")


async def test_call_gives_up_after_attempts() -> None:
    errors: list[OSError] = []

    async def failing() -> None:
        errors.append(OSError(f"failure {len(errors) + 1}"))
        raise errors[-1]

    started = time.monotonic()
    with pytest.raises(OSError, match=r"^failure 4$") as caught:
        await fast(4).call(failing)
    assert caught.value is errors[-1]
    assert len(errors) == 4
    assert time.monotonic() - started < SLACK


async def test_call_does_not_retry_other_errors() -> None:
    calls = 0

    async def wrong() -> None:
        nonlocal calls
        calls += 1
        raise KeyError("not retryable")

    with pytest.raises(KeyError):
        await fast(5).call(wrong)
    assert calls == 1

    calls = 0
    with pytest.raises(KeyError):
        await fast(5).call(wrong, retry_on=(ValueError,))
    assert calls == 1


async def test_call_retries_only_what_retry_on_names() -> None:
    calls = 0

    async def op() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first")
        return calls

    assert await fast(2).call(op, retry_on=(ValueError,)) == 2


async def test_call_deadline_shorter_than_first_pause_gives_up_at_once() -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise OSError("nope")

    retry = Retry(attempts=10, initial_delay=1.0, max_delay=1.0, jitter=0, deadline=0.5)
    started = time.monotonic()
    with pytest.raises(OSError, match="nope"):
        await retry.call(failing)
    assert calls == 1  # a 1 s pause would end past the 0.5 s deadline: no retry
    assert time.monotonic() - started < 0.9  # it did not pause the 1 s


async def test_call_deadline_stops_before_attempts_run_out() -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise OSError("nope")

    retry = Retry(attempts=1000, initial_delay=0.01, max_delay=0.01, jitter=0, deadline=0.05)
    started = time.monotonic()
    with pytest.raises(OSError, match="nope"):
        await retry.call(failing)
    # Each pause is >= 10 ms and none may end past 50 ms: at most 5 pauses, so <= 6 calls.
    assert 2 <= calls <= 6
    assert time.monotonic() - started < 0.05 + SLACK


async def test_call_cancelled_during_pause() -> None:
    failed = asyncio.Event()

    async def failing() -> None:
        failed.set()
        raise OSError("nope")

    task = asyncio.create_task(Retry(attempts=3, initial_delay=30, max_delay=30).call(failing))
    await failed.wait()  # the task is now sleeping before attempt 2
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < SLACK


# -- connect with retry ---------------------------------------------------------------------------


async def test_connect_retry_gives_up(closed_port: int, retry_log: RetryLog) -> None:
    baseline = open_socket_count()
    with pytest.raises(ConnectError) as caught:
        await aioconn.connect("127.0.0.1", closed_port, retry=fast(3))
    assert caught.value.attempts[0][0] == f"127.0.0.1:{closed_port}"
    assert len(retry_log.messages) == 2
    assert all(m.startswith(f"connect 127.0.0.1:{closed_port} failed") for m in retry_log.messages)
    assert open_socket_count() == baseline


async def test_connect_retry_succeeds_once_port_listens(retry_log: RetryLog) -> None:
    loop = asyncio.get_running_loop()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))  # bound, not listening yet: connects are refused
        listener.setblocking(False)
        port = listener.getsockname()[1]
        retry_log.hooks.append(lambda: listener.listen(1))  # start listening after attempt 1

        conn = await aioconn.connect("127.0.0.1", port, retry=fast(5))
        async with conn:
            assert len(retry_log.messages) == 1
            assert retry_log.messages[0].startswith(
                f"connect 127.0.0.1:{port} failed (attempt 1 of 5: "
            )
            peer, _ = await loop.sock_accept(listener)
            with peer:
                await loop.sock_sendall(peer, b"welcome\n")
                assert await conn.readline(timeout=5) == b"welcome\n"
                assert conn.peername == ("127.0.0.1", port)
