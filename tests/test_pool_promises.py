"""One regression test per broken promise of issue #10, named after the behaviour it proves.

Each failed on the pool before the core was rewritten (see the issue for the reproductions).
"""

from __future__ import annotations

import asyncio
import gc
import operator
import threading
import warnings
from dataclasses import dataclass, field

import pytest

import aioconn
from aioconn import Endpoints, Pool, PoolTimeout
from aioconn.testing import EchoServer
from pool_helpers import Thing, ThingFactory, eventually, until_waiting


@dataclass
class Hooks:
    """A factory whose hooks the test gates: each waits for its event when one is set."""

    made: list[Thing] = field(default_factory=list)
    closes: dict[int, int] = field(default_factory=dict)
    reset_gate: asyncio.Event | None = None
    check_gate: asyncio.Event | None = None
    check_result: bool = True

    async def open(self) -> Thing:
        thing = Thing()
        self.made.append(thing)
        return thing

    async def close(self, thing: Thing) -> None:
        self.closes[thing.id] = self.closes.get(thing.id, 0) + 1
        thing.closed = True

    async def reset(self, thing: Thing) -> None:
        if self.reset_gate is not None:
            await self.reset_gate.wait()

    async def check(self, thing: Thing) -> bool:
        if self.check_gate is not None:
            await self.check_gate.wait()
        return self.check_result


# 1 -------------------------------------------------------------------------------------------


async def test_second_put_is_refused_while_the_first_resets() -> None:
    gate = asyncio.Event()
    hooks = Hooks(reset_gate=gate)
    async with Pool(hooks.open, close=hooks.close, reset=hooks.reset, max_size=2) as pool:
        thing = await pool.get()
        first = asyncio.create_task(pool.put(thing))
        await eventually(lambda: pool.stats().returning == 1)
        with pytest.raises(RuntimeError, match="already returned"):
            await pool.put(thing)
        gate.set()
        await first
        a, b = await pool.get(), await pool.get()
        assert a is not b
        assert pool.stats().size == 2
        await pool.put(a)
        await pool.put(b)


async def test_second_put_is_refused_after_a_hand_off_to_a_waiter() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        thing = await pool.get()
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        await pool.put(thing)  # handed to the waiter, not yet awake
        with pytest.raises(RuntimeError, match="already returned"):
            await pool.put(thing)
        assert await waiter is thing
        assert (pool.stats().in_use, pool.stats().idle) == (1, 0)
        await pool.put(thing)
        assert (pool.stats().in_use, pool.stats().idle) == (0, 1)


# 2 -------------------------------------------------------------------------------------------


async def test_a_block_that_raises_any_exception_never_hands_on_a_late_reply() -> None:
    reply_now = asyncio.Event()

    async def slow_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            await reply_now.wait()
            writer.write(line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(slow_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Pool(aioconn.TCPConnector("127.0.0.1", port), max_size=1) as pool:
            with pytest.raises(ValueError, match="user code"):  # noqa: PT012  (the block is the subject)
                async with pool.acquire() as conn:
                    await conn.send(b"first caller\n")
                    raise ValueError("user code fails after the request went out")
            reply_now.set()  # the first caller's reply is on its way now
            async with pool.acquire() as conn:
                await conn.send(b"second caller\n")
                assert await conn.readline() == b"second caller\n"
            assert pool.stats().discarded.error == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_recover_returns_a_connection_only_when_recovery_succeeds() -> None:
    verdicts = [True, False]
    seen: list[BaseException] = []

    async def recover(thing: Thing, exc: BaseException) -> bool:
        seen.append(exc)
        return verdicts.pop(0)

    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, recover=recover, max_size=1) as pool:
        for _ in range(2):
            with pytest.raises(KeyError):
                async with pool.acquire():
                    raise KeyError("driver error")
            await eventually(lambda: pool.stats().returning == 0)
        stats = pool.stats()
        assert [type(e) for e in seen] == [KeyError, KeyError]
        assert (stats.discarded.recover_failed, stats.discarded.error, factory.closes) == (1, 0, 1)
        assert len(factory.made) == 1  # recovered once, reused; discarded the second time


# 3 -------------------------------------------------------------------------------------------


async def test_a_waiter_cancelled_before_it_runs_does_not_strand_the_next_caller() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1, acquire_timeout=None) as pool:
        go = asyncio.Event()
        got_again = asyncio.Event()

        async def holder() -> None:
            async with pool.acquire():
                await go.wait()
            # Same loop iteration as the release: the cancelled waiter has not run yet.
            async with pool.acquire():
                got_again.set()

        hold = asyncio.create_task(holder())
        await eventually(lambda: pool.stats().in_use == 1)
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        go.set()  # the holder runs first in the next iteration ...
        waiter.cancel()  # ... before the cancelled waiter's task gets to run
        async with asyncio.timeout(2):
            await got_again.wait()
            await hold
        with pytest.raises(asyncio.CancelledError):
            await waiter
        stats = pool.stats()
        assert (stats.waiting, stats.idle, stats.in_use) == (0, 1, 0)


# 4 -------------------------------------------------------------------------------------------


async def test_a_discard_on_return_frees_the_endpoint_for_the_waiter(
    echo_server: EchoServer,
) -> None:
    endpoints = Endpoints([f"127.0.0.1:{echo_server.port}"], max_per_endpoint=1)
    async with Pool(endpoints, max_size=2, acquire_timeout=2.0) as pool:
        hold = asyncio.Event()

        async def holder() -> None:
            with pytest.raises(ValueError, match="discard me"):  # noqa: PT012  (the block is the subject)
                async with pool.acquire():
                    await hold.wait()
                    raise ValueError("discard me")

        task = asyncio.create_task(holder())
        await eventually(lambda: pool.stats().in_use == 1)
        waiter = asyncio.create_task(pool.get())
        await until_waiting(pool, 1)
        hold.set()
        conn = await waiter  # served once the discarded connection's close freed the room
        await task
        assert pool.stats().discarded.error == 1
        await pool.put(conn)


# 5 -------------------------------------------------------------------------------------------


async def test_close_wakes_when_the_last_lease_ends_by_a_failed_checkout_check() -> None:
    gate = asyncio.Event()
    hooks = Hooks(check_gate=gate, check_result=False)
    pool = Pool(hooks.open, close=hooks.close, check=hooks.check, check_after_idle=0.001)
    await pool.open()
    async with pool.acquire():
        pass
    await asyncio.sleep(0.005)  # idle past check_after_idle: the next checkout checks it
    acquirer = asyncio.create_task(pool.get())
    await eventually(lambda: pool.stats().checking == 1)
    closer = asyncio.create_task(pool.close(timeout=None))
    await asyncio.sleep(0)
    gate.set()  # the check fails: the slot is discarded outside a release
    async with asyncio.timeout(2):
        await closer
    with pytest.raises(aioconn.PoolClosed):
        await acquirer
    assert pool.stats().discarded.check_failed == 1


# 6 -------------------------------------------------------------------------------------------


async def test_close_returns_within_its_timeout_while_a_keepalive_check_hangs() -> None:
    hooks = Hooks(check_gate=asyncio.Event())
    pool = Pool(
        hooks.open,
        close=hooks.close,
        check=hooks.check,
        min_size=1,
        keepalive_interval=0.01,
        check_timeout=60.0,
    )
    await pool.open()
    await eventually(lambda: pool.stats().checking == 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pool.close(timeout=0.2)
    assert loop.time() - started < 0.2 + 0.5
    await eventually(lambda: hooks.made[0].closed)
    assert hooks.closes == {hooks.made[0].id: 1}


async def test_close_during_open_returns_and_open_raises_pool_closed() -> None:
    started = asyncio.Event()
    never = asyncio.Event()

    async def slow_open() -> Thing:
        started.set()
        await never.wait()
        return Thing()

    pool = Pool(slow_open, min_size=2)
    opening = asyncio.create_task(pool.open())
    await started.wait()
    async with asyncio.timeout(2):
        await pool.close()
    with pytest.raises(aioconn.PoolClosed, match="closed while opening"):
        await opening
    assert pool.closed
    assert pool.stats().opening == 0


# 7 -------------------------------------------------------------------------------------------


async def test_close_aborts_get_resources_held_by_the_closing_task() -> None:
    factory = ThingFactory()
    aborted: list[Thing] = []
    pool = Pool(factory.open, close=factory.close, abort=aborted.append)
    await pool.open()
    thing = await pool.get()
    await pool.close(timeout=0.05)
    assert aborted == [thing]
    assert pool.stats().discarded.aborted == 1
    await pool.put(thing)  # after close aborted it: a no-op


# 8 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["release", "fast_path", "maintenance"])
async def test_is_reusable_raising_discards_instead_of_leaving_a_zombie(where: str) -> None:
    raise_now = False

    def is_reusable(thing: Thing) -> bool:
        if raise_now:
            raise RuntimeError("is_reusable raised")
        return True

    factory = ThingFactory()
    async with Pool(
        factory.open, close=factory.close, is_reusable=is_reusable, max_size=1, max_idle=0.01
    ) as pool:
        async with pool.acquire():
            raise_now = where == "release"
        raise_now = True
        if where == "maintenance":
            await eventually(lambda: pool.stats().discarded.not_reusable == 1)
        raise_now = where == "fast_path"
        async with asyncio.timeout(2), pool.acquire():
            raise_now = False
        stats = pool.stats()
        assert stats.discarded.not_reusable == 1
        assert (stats.size, stats.idle, stats.in_use) == (1, 1, 0)


async def test_an_attrgetter_is_reusable_that_raises_is_guarded_like_any_hook() -> None:
    # Only the built-in connectors' own function is trusted not to raise; an attrgetter of an
    # attribute the resource lacks raises AttributeError on every return.
    factory = ThingFactory()

    class Connector:
        is_reusable = operator.attrgetter("missing")  # the pool sees it as it is

        async def connect(self) -> Thing:
            return await factory.open()

        async def close(self, thing: Thing) -> None:
            await factory.close(thing)

    async with Pool(Connector(), max_size=1) as pool:
        async with pool.acquire():
            pass
        async with pool.acquire():
            pass
        stats = pool.stats()
        assert stats.discarded.not_reusable == 2
        assert (stats.size, stats.idle, stats.in_use, stats.created) == (0, 0, 0, 2)


# 9 -------------------------------------------------------------------------------------------


async def test_timed_out_acquires_do_not_grow_the_waiter_queue() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        thing = await pool.get()
        for _ in range(2_000):
            with pytest.raises(PoolTimeout):
                await pool.get(timeout=1e-6)
        # Callers queued together with timeouts that shrink: their deadlines come out of
        # order, and all but the first wait in the core's heap lane.
        for _ in range(100):
            calls = [pool.get(timeout=0.002 - n * 1e-4) for n in range(10)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(result, PoolTimeout) for result in results)
        core = pool._core
        assert (len(core.waiters), len(core.timed), len(core.timed_heap), core.waiting) == (
            0,
            0,
            0,
            0,
        ) or (len(core.waiters) <= 64 and len(core.timed) <= 64 and len(core.timed_heap) <= 64)
        assert pool.stats().timeouts == 3_000
        await pool.put(thing)


# 10 ------------------------------------------------------------------------------------------


class Interrupt(BaseException):
    pass


@pytest.mark.parametrize("raised", [asyncio.CancelledError, Interrupt])
async def test_a_connect_raising_a_base_exception_fails_the_waiter(
    raised: type[BaseException],
) -> None:
    calls = 0

    async def bad_open() -> Thing:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise raised("from the connector itself")
        return Thing()

    async with Pool(bad_open, acquire_timeout=2.0) as pool:
        with pytest.raises(aioconn.ConnectError) as caught:
            await pool.get()
        assert isinstance(caught.value.__cause__, raised)
        thing = await pool.get()  # the pool still works
        await pool.put(thing)
        assert (pool.stats().connect_failures, pool.stats().opening) == (1, 0)


# 11 ------------------------------------------------------------------------------------------


async def test_a_hanging_reset_is_bounded_and_close_closes_once() -> None:
    hooks = Hooks(reset_gate=asyncio.Event())
    pool = Pool(hooks.open, close=hooks.close, reset=hooks.reset, reset_timeout=0.2)
    await pool.open()

    async def use() -> None:
        async with pool.acquire():
            pass  # the exit hangs in reset until reset_timeout

    user = asyncio.create_task(use())
    await eventually(lambda: pool.stats().returning == 1)
    await pool.close(timeout=0.01)  # aborts the returning slot
    async with asyncio.timeout(2):
        await user
    thing = hooks.made[0]
    await eventually(lambda: thing.closed)
    assert hooks.closes == {thing.id: 1}
    assert pool.stats().discarded.aborted == 1


# 12 ------------------------------------------------------------------------------------------


async def test_acquire_timeouts_fire_in_deadline_order() -> None:
    # A caller whose checkout check took a while queues after a caller that came later: its
    # deadline is the earlier one, and must not wait behind the other's.
    gate = asyncio.Event()
    hooks = Hooks(check_gate=gate, check_result=False)
    async with Pool(
        hooks.open,
        close=hooks.close,
        check=hooks.check,
        check_after_idle=0.001,
        max_size=2,
        acquire_timeout=0.5,
    ) as pool:
        held = await pool.get()
        spare = await pool.get()
        await pool.put(spare)
        await asyncio.sleep(0.005)  # idle past check_after_idle: the next checkout checks it
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.create_task(pool.get())  # takes the idle one and checks it (gated)
        await eventually(lambda: pool.stats().checking == 1)
        await asyncio.sleep(0.3)
        later = asyncio.create_task(pool.get())  # queues: deadline started + 0.3 + 0.5
        await until_waiting(pool, 1)
        gate.set()  # the check fails: `first` queues behind `later`, deadline started + 0.5
        with pytest.raises(PoolTimeout):
            await first
        took = loop.time() - started
        assert 0.5 <= took < 0.7, took  # on its own deadline, not at later's (~0.8 s)
        await pool.put(await later)  # served by the connection opened for the queue
        await pool.put(held)


async def test_acquire_timeouts_of_different_lengths_fire_in_deadline_order() -> None:
    # Deadlines that arrive out of order (a caller with a shorter timeout queues after ones
    # with longer timeouts) still fire in deadline order, each on time.
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        held = await pool.get()
        loop = asyncio.get_running_loop()
        started = loop.time()
        fired: list[tuple[float, float]] = []

        async def wait(limit: float) -> None:
            with pytest.raises(PoolTimeout):
                await pool.get(timeout=limit)
            fired.append((limit, loop.time() - started))

        limits = [0.4, 0.1, 0.5, 0.3, 0.2, 0.6]
        waiting = [asyncio.create_task(wait(limit)) for limit in limits]
        await asyncio.gather(*waiting)
        assert [limit for limit, _ in fired] == sorted(limits)
        for limit, took in fired:
            assert limit <= took < limit + 0.09, (limit, took)
        await pool.put(held)


# 13 ------------------------------------------------------------------------------------------


def test_close_from_another_loop_after_the_pools_loop_closed_aborts_everything() -> None:
    factory = ThingFactory()
    aborted: list[Thing] = []
    pool = Pool(factory.open, close=factory.close, abort=aborted.append, min_size=1)
    held: list[Thing] = []

    async def use() -> None:
        await pool.open()
        held.append(await pool.get())

    first = asyncio.new_event_loop()
    first.run_until_complete(use())
    for task in asyncio.all_tasks(first):
        task.cancel()
    first.run_until_complete(asyncio.sleep(0))
    first.close()
    asyncio.run(pool.close())
    assert pool.closed
    assert aborted == held
    assert pool.stats().waiting == 0


async def test_waiting_is_never_negative_after_close() -> None:
    factory = ThingFactory()
    pool = Pool(factory.open, close=factory.close, max_size=1)
    await pool.open()
    thing = await pool.get()
    waiters = [asyncio.create_task(pool.get()) for _ in range(3)]
    await until_waiting(pool, 3)
    waiters[0].cancel()
    await pool.close(timeout=0.01)
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert [type(r) for r in results] == [
        asyncio.CancelledError,
        aioconn.PoolClosed,
        aioconn.PoolClosed,
    ]
    assert pool.stats().waiting == 0
    await pool.put(thing)


async def test_no_leak_warning_after_close_aborted_the_lease() -> None:
    factory = ThingFactory()
    pool = Pool(factory.open, close=factory.close, leak_timeout=0.05)
    await pool.open()
    await pool.get()
    await pool.close(timeout=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await asyncio.sleep(0.1)  # past leak_timeout
        gc.collect()
    assert [w for w in caught if issubclass(w.category, aioconn.LeakWarning)] == []


def test_close_from_another_loop_while_the_pools_loop_runs_is_refused() -> None:
    pool = Pool(ThingFactory().open)
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None
    loop = asyncio.new_event_loop()

    async def run() -> None:
        nonlocal stop
        await pool.open()
        stop = loop.create_future()
        ready.set()
        await stop
        await pool.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),))
    thread.start()
    try:
        assert ready.wait(5)
        with pytest.raises(RuntimeError, match="another event loop, which still runs"):
            asyncio.run(pool.close())
        assert not pool.closed
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(5)
        loop.close()
    assert pool.closed


# Small API defects reported with issue #13, fixed in the new core --------------------------


async def test_awaiting_acquire_without_async_with_is_get() -> None:
    factory = ThingFactory()
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        thing = await pool.acquire()
        assert thing is factory.made[0]
        assert pool.stats().in_use == 1
        await pool.put(thing)
        assert (pool.stats().in_use, pool.stats().idle) == (0, 1)


async def test_resize_after_close_is_refused() -> None:
    pool = Pool(ThingFactory().open, name="shut")
    await pool.open()
    await pool.close()
    with pytest.raises(aioconn.PoolClosed, match=r"^shut is closed; resize"):
        pool.resize(max_size=5)
    assert pool.max_size == 10


async def test_a_failed_connect_is_logged_once_without_a_repeated_prefix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def down() -> Thing:
        raise OSError("connection refused")

    async with Pool(down, name="down") as pool:
        with pytest.raises(aioconn.ConnectError):
            await pool.get()
    messages = [r.getMessage() for r in caplog.records if r.name == "aioconn.pool"]
    failed = [m for m in messages if "opening a connection failed" in m]
    assert failed == ["down: opening a connection failed: OSError('connection refused')"]


def test_the_core_is_synchronous_and_the_layers_import_downwards() -> None:
    import ast
    import importlib
    from pathlib import Path

    source = Path(aioconn.__file__).parent
    core = ast.parse((source / "_core.py").read_text())
    asynchronous = [
        node
        for node in ast.walk(core)
        if isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncWith | ast.AsyncFor)
    ]
    assert asynchronous == []  # no awaits, so no I/O and no interleaving inside an event
    imported = {
        alias.name
        for node in ast.walk(core)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    } | {node.module for node in ast.walk(core) if isinstance(node, ast.ImportFrom) and node.module}
    assert "asyncio" not in imported
    # shell -> core, never back: the core and the runner know nothing of Pool or Lease.
    layers = {"_core": {"pool", "_lease", "_runner"}, "_runner": {"pool", "_lease"}}
    for module, above in layers.items():
        tree = ast.parse((source / f"{module}.py").read_text())
        names = {
            node.module.lstrip(".")
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not names & above, (module, names & above)
        importlib.import_module(f"aioconn.{module}")


async def test_init_runs_once_per_new_connection_and_a_failing_one_fails_the_waiter() -> None:
    factory = ThingFactory()
    inits: list[int] = []

    async def init(thing: Thing) -> None:
        inits.append(thing.id)
        if len(inits) == 2:
            raise OSError("init failed")

    async with Pool(factory.open, close=factory.close, init=init, max_size=2) as pool:
        async with pool.acquire() as first:
            pass
        async with pool.acquire() as again:
            assert again is first  # reused: no second init
        assert inits == [first.id]
        async with pool.acquire():
            with pytest.raises(aioconn.ConnectError, match="init failed"):
                await pool.get()  # a second connection; its init fails
        await eventually(lambda: factory.made[1].closed)  # never handed out, closed
        stats = pool.stats()
        assert (stats.connect_failures, stats.created, stats.size) == (1, 1, 1)
