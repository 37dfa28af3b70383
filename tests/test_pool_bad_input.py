"""Bad arguments and misuse of a ``Pool``: each fails with an error that names what is wrong,
and none corrupts the pool — afterwards it still lends and takes back, and its stats are as
they were before the mistake.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

import aioconn
from aioconn import FactoryConnector, Pool, PoolClosed, PoolStats, Retry
from gated import FakeResource, GatedConnector

NAME = "bad-input"
SECONDS = [
    "acquire_timeout",
    "max_idle",
    "max_lifetime",
    "check_after_idle",
    "keepalive_interval",
    "leak_timeout",
    "close_timeout",
]
BAD_SECONDS: list[tuple[object, type[Exception]]] = [
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


def wrong(value: object) -> Any:
    """Pass ``value`` where the signature wants another type: the mistake under test."""
    return value


@pytest.fixture
def connector() -> GatedConnector:
    return GatedConnector()


@pytest.fixture
async def pool(connector: GatedConnector) -> AsyncIterator[Pool[FakeResource]]:
    pool = await Pool(connector, min_size=1, max_size=2, name=NAME).open()
    try:
        yield pool
    finally:
        await pool.close(timeout=1)  # a failed test may hold a lease: do not wait 10 s for it


async def assert_unharmed(pool: Pool[FakeResource], before: PoolStats) -> None:
    """The mistake changed nothing, and a borrow/return round trip still works."""
    assert pool.stats() == before
    async with pool.acquire() as resource:
        assert not resource.closed
        assert not resource.dirty
        assert pool.stats().in_use == before.in_use + 1
    after = pool.stats()
    assert (after.acquired, after.released) == (before.acquired + 1, before.released + 1)
    opened = 0 if before.idle else 1  # nothing idle: the round trip opened one, now idle
    assert (after.size, after.created) == (before.size + opened, before.created + opened)
    assert (after.in_use, after.idle, after.waiting) == (before.in_use, before.idle + opened, 0)


async def assert_connector_unused_and_usable(connector: GatedConnector) -> None:
    """A constructor that raised touched nothing; the same connector serves a valid pool."""
    assert connector.connect_phase.calls == 0
    assert not connector.created
    async with Pool(connector, max_size=1, name=NAME) as pool:
        async with pool.acquire() as resource:
            assert resource is connector.created[0]
        stats = pool.stats()
        assert (stats.acquired, stats.released, stats.created, stats.idle) == (1, 1, 1, 1)


# -- sizes ---------------------------------------------------------------------------------------


async def test_min_size_above_max_size(connector: GatedConnector) -> None:
    with pytest.raises(
        ValueError, match=r"^min_size must be <= max_size, got min_size=3 and max_size=2$"
    ):
        Pool(connector, min_size=3, max_size=2)
    await assert_connector_unused_and_usable(connector)


@pytest.mark.parametrize(
    ("min_size", "max_size", "message"),
    [
        (-1, 10, r"^min_size must be >= 0, got -1$"),
        (0, -1, r"^max_size must be >= 1, got -1$"),
        (-5, -1, r"^min_size must be >= 0, got -5$"),
        (0, 0, r"^max_size must be >= 1, got 0$"),
    ],
)
async def test_negative_or_zero_sizes(
    connector: GatedConnector, min_size: int, max_size: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Pool(connector, min_size=min_size, max_size=max_size)
    await assert_connector_unused_and_usable(connector)


@pytest.mark.parametrize("name", ["min_size", "max_size"])
@pytest.mark.parametrize("value", [2.0, "2", None, True, [2]])
async def test_non_int_sizes(connector: GatedConnector, name: str, value: object) -> None:
    with pytest.raises(TypeError, match=rf"^{name} must be an int, got {re.escape(repr(value))}$"):
        Pool(connector, **{name: wrong(value)})
    await assert_connector_unused_and_usable(connector)


# -- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SECONDS)
@pytest.mark.parametrize(("value", "error"), BAD_SECONDS)
async def test_bad_seconds(
    connector: GatedConnector, name: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=rf"^{name} must be a .*, got {re.escape(repr(value))}$"):
        Pool(connector, **{name: wrong(value)})
    await assert_connector_unused_and_usable(connector)


async def test_close_timeout_cannot_be_none(connector: GatedConnector) -> None:
    with pytest.raises(TypeError, match=r"^close_timeout must be a number of seconds, got None$"):
        Pool(connector, close_timeout=wrong(None))
    await assert_connector_unused_and_usable(connector)


# -- the connector -------------------------------------------------------------------------------


class _ConnectOnly:
    """Looks like half a connector: ``connect`` but no ``close``, and not callable."""

    async def connect(self) -> FakeResource:
        return FakeResource(id=1)

    def __repr__(self) -> str:
        return "<_ConnectOnly>"


@pytest.mark.parametrize("connector", [42, None, "localhost:5432", _ConnectOnly()])
def test_connector_neither_connector_nor_callable(connector: object) -> None:
    message = (
        r"^connector must be an aioconn Connector or an async factory,"
        rf" got {re.escape(repr(connector))}$"
    )
    with pytest.raises(TypeError, match=message):
        Pool(wrong(connector))


def test_factory_connector_not_callable() -> None:
    with pytest.raises(TypeError, match=r"^factory must be callable, got 42$"):
        FactoryConnector(wrong(42))


@pytest.mark.parametrize("hook", ["close", "check", "reset", "is_reusable"])
async def test_hook_not_callable(hook: str) -> None:
    async def factory() -> FakeResource:
        return FakeResource(id=1)

    with pytest.raises(TypeError, match=rf"^{hook} must be callable or None, got 42$"):
        Pool(factory, **{hook: wrong(42)})


@pytest.mark.parametrize(
    "hooks", [("close",), ("check",), ("reset",), ("is_reusable",), ("close", "reset")]
)
async def test_hooks_with_a_connector_object(
    connector: GatedConnector, hooks: tuple[str, ...]
) -> None:
    def hook(resource: FakeResource) -> bool:
        return True

    message = (
        rf"^{', '.join(hooks)} can only be given with a factory function;"
        rf" {re.escape(repr(connector))} is a connector with its own methods$"
    )
    with pytest.raises(TypeError, match=message):
        Pool(connector, **dict.fromkeys(hooks, wrong(hook)))
    await assert_connector_unused_and_usable(connector)


class _SloppyFactory:
    """A factory that forgot ``async`` on its first call: it returns the resource itself."""

    def __init__(self) -> None:
        self.made: list[FakeResource] = []

    def __call__(self) -> Any:
        resource = FakeResource(id=len(self.made) + 1)
        self.made.append(resource)
        if len(self.made) == 1:
            return resource  # not an awaitable

        async def opened() -> FakeResource:
            return resource

        return opened()

    def __repr__(self) -> str:
        return "<_SloppyFactory>"


async def test_factory_returning_a_non_awaitable_fails_the_acquirer() -> None:
    factory = _SloppyFactory()
    async with Pool(factory, max_size=1, name=NAME) as pool:
        message = (
            r"^factory <_SloppyFactory> must return an awaitable,"
            r" returned <FakeResource #1>$"
        )
        with pytest.raises(TypeError, match=message):
            await pool.get()
        stats = pool.stats()
        assert (stats.size, stats.opening, stats.waiting, stats.in_use, stats.idle) == (
            0,
            0,
            0,
            0,
            0,
        )
        assert (stats.created, stats.connect_failures, stats.acquired) == (0, 1, 0)
        # The pool is fine: the next acquire opens a connection normally.
        async with pool.acquire() as resource:
            assert resource is factory.made[1]
        stats = pool.stats()
        assert (stats.created, stats.acquired, stats.released, stats.idle) == (1, 1, 1, 1)


async def test_factory_returning_a_non_awaitable_fails_open() -> None:
    factory = _SloppyFactory()
    pool = Pool(factory, min_size=1, name=NAME)
    with pytest.raises(TypeError, match=r"^factory <_SloppyFactory> must return an awaitable"):
        await pool.open()
    assert pool.closed
    with pytest.raises(PoolClosed, match=rf"^{NAME} is closed$"):
        await pool.get()
    await pool.close()


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, r"^max_connecting must be >= 1, got 0$"),
        (-5, ValueError, r"^max_connecting must be >= 1, got -5$"),
        (2.0, TypeError, r"^max_connecting must be an int, got 2\.0$"),
        (True, TypeError, r"^max_connecting must be an int, got True$"),
        ("4", TypeError, r"^max_connecting must be an int, got '4'$"),
    ],
)
async def test_bad_max_connecting(
    connector: GatedConnector, value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Pool(connector, max_connecting=wrong(value))
    await assert_connector_unused_and_usable(connector)


async def test_factory_returning_a_non_awaitable_error_is_not_its_own_cause() -> None:
    pool = Pool(_SloppyFactory(), min_size=1, name=NAME)
    with pytest.raises(TypeError) as caught:
        await pool.open()
    assert caught.value.__cause__ is None


@pytest.mark.parametrize("retry", [3, "3 times", Retry, {"attempts": 3}])
async def test_connect_retry_of_wrong_type(connector: GatedConnector, retry: object) -> None:
    message = rf"^connect_retry must be an aioconn.Retry or None, got {re.escape(repr(retry))}$"
    with pytest.raises(TypeError, match=message):
        Pool(connector, connect_retry=wrong(retry))
    await assert_connector_unused_and_usable(connector)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, r"^max_waiting must be >= 0, got -1$"),
        (-100, ValueError, r"^max_waiting must be >= 0, got -100$"),
        (1.5, TypeError, r"^max_waiting must be an int, got 1\.5$"),
        ("3", TypeError, r"^max_waiting must be an int, got '3'$"),
    ],
)
async def test_bad_max_waiting(
    connector: GatedConnector, value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Pool(connector, max_waiting=wrong(value))
    await assert_connector_unused_and_usable(connector)


# -- misuse of an open pool ----------------------------------------------------------------------


async def test_releasing_a_resource_twice(
    pool: Pool[FakeResource], connector: GatedConnector
) -> None:
    resource = await pool.get()
    await pool.put(resource)
    before = pool.stats()
    resets = connector.reset_phase.calls
    with pytest.raises(RuntimeError, match=rf"^<FakeResource #1> was already returned to {NAME}$"):
        await pool.put(resource)
    with pytest.raises(RuntimeError, match=rf"^<FakeResource #1> was already returned to {NAME}$"):
        await pool.put(resource, discard=True)
    assert not resource.closed
    assert connector.reset_phase.calls == resets  # not reset again while idle in the pool
    await assert_unharmed(pool, before)


async def test_put_of_a_resource_an_acquire_block_holds(
    pool: Pool[FakeResource], connector: GatedConnector
) -> None:
    before = pool.stats()
    async with pool.acquire() as resource:
        message = (
            r"^<FakeResource #1> is held by an `async with "
            + NAME
            + r"\.acquire\(\)` block, which gives it back when it ends; do not put\(\) it$"
        )
        with pytest.raises(RuntimeError, match=message):
            await pool.put(resource)
        with pytest.raises(RuntimeError, match=message):
            await pool.put(resource, discard=True)
        assert pool.stats().in_use == 1
    assert not resource.closed
    after = pool.stats()
    assert (after.acquired, after.released, after.idle, after.in_use) == (1, 1, 1, 0)
    assert after.discarded.total == 0
    assert connector.reset_phase.calls == 1  # once, by the block's own exit
    await assert_unharmed(pool, dataclasses.replace(before, **_counts_of(after)))


def _counts_of(stats: PoolStats) -> dict[str, Any]:
    names = ("size", "idle", "acquired", "released", "created", "acquire_wait", "hold_time")
    return {name: getattr(stats, name) for name in (*names, "connect_time")}


async def test_a_connector_that_returns_a_resource_twice_is_refused() -> None:
    same = FakeResource(1)

    async def always_the_same() -> FakeResource:
        return same

    async with Pool(always_the_same, max_size=2, name=NAME) as pool:
        async with pool.acquire() as first:
            message = (
                f"{NAME}: the connector returned <FakeResource #1>, which the pool already holds;"
                " connect\\(\\) must return a new resource each time"
            )
            with pytest.raises(aioconn.ConnectError, match=message):
                await pool.get()
            assert first is same
            stats = pool.stats()
            assert (stats.size, stats.in_use, stats.created, stats.waiting) == (1, 1, 1, 0)
        assert pool.stats().idle == 1


async def test_releasing_a_resource_to_another_pool(
    pool: Pool[FakeResource], connector: GatedConnector
) -> None:
    other_connector = GatedConnector()
    async with Pool(other_connector, max_size=1, name="other") as other:
        resource = await pool.get()
        before, other_before = pool.stats(), other.stats()
        message = r"^<FakeResource #1> was not acquired from other \(or already returned\)$"
        with pytest.raises(ValueError, match=message):
            await other.put(resource)
        with pytest.raises(ValueError, match=message):
            await other.put(resource, discard=True)
        assert not resource.closed
        assert other_connector.reset_phase.calls == 0  # nothing ran on a stranger's resource
        assert other.stats() == other_before
        await assert_unharmed(other, other_before)
        assert pool.stats() == before
        await pool.put(resource)  # its own pool still takes it back
        stats = pool.stats()
        assert (stats.released, stats.in_use, stats.idle) == (before.released + 1, 0, 1)


async def test_get_before_open(connector: GatedConnector) -> None:
    pool = Pool(connector, min_size=1, name=NAME)
    message = rf"^{NAME} is not open; use `async with pool` or `await pool\.open\(\)`$"
    with pytest.raises(RuntimeError, match=message):
        await pool.get()
    with pytest.raises(RuntimeError, match=message):
        async with pool.acquire():
            pass
    assert connector.connect_phase.calls == 0
    async with pool:  # opening afterwards works as if nothing happened
        stats = pool.stats()
        assert (stats.idle, stats.created, stats.acquired, stats.released) == (1, 1, 0, 0)
        await assert_unharmed(pool, stats)


async def test_get_after_close(pool: Pool[FakeResource], connector: GatedConnector) -> None:
    await pool.close()
    before = pool.stats()
    calls = connector.connect_phase.calls
    with pytest.raises(PoolClosed, match=rf"^{NAME} is closed$") as caught:
        await pool.get()
    assert isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value, aioconn.Error)
    with pytest.raises(PoolClosed, match=rf"^{NAME} is closed$"):
        async with pool.acquire():
            pass
    assert pool.stats() == before
    assert connector.connect_phase.calls == calls
    assert connector.closed() == connector.created


async def test_get_after_close_of_a_never_opened_pool(connector: GatedConnector) -> None:
    pool = Pool(connector, name=NAME)
    await pool.close()
    with pytest.raises(PoolClosed, match=rf"^{NAME} is closed$"):
        await pool.get()
    with pytest.raises(PoolClosed, match=rf"^{NAME} is closed; a closed pool cannot be opened"):
        await pool.open()  # not "already opened": it never was
    assert connector.connect_phase.calls == 0


def test_pool_used_from_another_event_loop() -> None:
    connector = GatedConnector()
    pool = Pool(connector, min_size=1, max_size=2, name=NAME)
    home = asyncio.new_event_loop()
    elsewhere = asyncio.new_event_loop()
    message = rf"^{NAME} belongs to another event loop than the running one;"

    async def borrow_elsewhere() -> None:
        # An idle connection is there: the fast path must refuse too, not only the slow one.
        with pytest.raises(RuntimeError, match=message):
            await pool.get()
        with pytest.raises(RuntimeError, match=message):
            async with pool.acquire():
                pass

    try:
        home.run_until_complete(pool.open())
        before = pool.stats()
        assert before.idle == 1
        elsewhere.run_until_complete(borrow_elsewhere())
        home.run_until_complete(assert_unharmed(pool, before))
    finally:
        try:
            home.run_until_complete(pool.close())
        finally:
            for loop in (elsewhere, home):
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
    assert connector.closed() == connector.created
    assert len(connector.created) == 1


def test_pool_used_from_another_thread_while_its_loop_runs_a_task() -> None:
    """The other loop's thread asks while the home loop is inside a task: still refused."""
    connector = GatedConnector()
    pool = Pool(connector, min_size=1, max_size=2, name=NAME)
    home = asyncio.new_event_loop()
    elsewhere = asyncio.new_event_loop()
    inside, proceed = threading.Event(), threading.Event()
    message = rf"^{NAME} belongs to another event loop than the running one;"

    async def busy_at_home() -> None:
        await pool.open()
        inside.set()
        proceed.wait(timeout=10)  # blocks the home loop *inside* this task on purpose

    async def borrow_elsewhere() -> None:
        with pytest.raises(RuntimeError, match=message):
            async with pool.acquire():
                pass
        with pytest.raises(RuntimeError, match=message):
            await pool.get()

    thread = threading.Thread(target=home.run_until_complete, args=(busy_at_home(),))
    thread.start()
    try:
        assert inside.wait(timeout=10)
        elsewhere.run_until_complete(borrow_elsewhere())
        assert pool.stats().idle == 1
    finally:
        proceed.set()
        thread.join(timeout=10)
        try:
            home.run_until_complete(pool.close())
        finally:
            for loop in (elsewhere, home):
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
    assert connector.closed() == connector.created


@pytest.mark.parametrize(
    ("sizes", "error", "message"),
    [
        (
            {"min_size": 5, "max_size": 2},
            ValueError,
            r"^min_size must be <= max_size, got min_size=5 and max_size=2$",
        ),
        (
            {"min_size": 3},
            ValueError,
            r"^min_size must be <= max_size, got min_size=3 and max_size=2$",
        ),
        ({"max_size": 0}, ValueError, r"^max_size must be >= 1, got 0$"),
        ({"min_size": -1}, ValueError, r"^min_size must be >= 0, got -1$"),
        ({"max_size": 2.5}, TypeError, r"^max_size must be an int, got 2\.5$"),
        ({"min_size": "1"}, TypeError, r"^min_size must be an int, got '1'$"),
    ],
)
async def test_bad_resize_leaves_sizes_unchanged(
    pool: Pool[FakeResource],
    sizes: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    before = pool.stats()
    with pytest.raises(error, match=message):
        pool.resize(**sizes)
    assert (pool.min_size, pool.max_size) == (1, 2)
    await assert_unharmed(pool, before)


# A per-call acquire timeout may be 0 (do not wait: tests/test_pool_runtime_control.py).
BAD_WAIT_SECONDS = [(value, error) for value, error in BAD_SECONDS if value != 0]


@pytest.mark.parametrize(("value", "error"), BAD_WAIT_SECONDS)
@pytest.mark.parametrize("idle", [True, False], ids=["idle", "none-idle"])
async def test_bad_per_call_timeout(
    pool: Pool[FakeResource], value: object, error: type[Exception], idle: bool
) -> None:
    # With an idle connection the fast path would hand it out at once: the argument must be
    # refused anyway, not accepted or refused depending on the pool's state.
    held = [] if idle else [await pool.get()]
    before = pool.stats()
    assert before.idle == (1 if idle else 0)
    pattern = rf"^timeout must be a .*, got {re.escape(repr(value))}$"
    bad = wrong(value)
    with pytest.raises(error, match=pattern):
        await pool.get(timeout=bad)
    with pytest.raises(error, match=pattern):
        async with pool.acquire(timeout=bad):
            pass
    await assert_unharmed(pool, before)
    for resource in held:
        await pool.put(resource)


@pytest.mark.parametrize(("value", "error"), BAD_SECONDS)
async def test_bad_close_timeout_leaves_the_pool_open(
    pool: Pool[FakeResource], value: object, error: type[Exception]
) -> None:
    before = pool.stats()
    bad = wrong(value)
    with pytest.raises(error, match=rf"^timeout must be a .*, got {re.escape(repr(value))}$"):
        await pool.close(timeout=bad)
    assert not pool.closed
    await assert_unharmed(pool, before)
