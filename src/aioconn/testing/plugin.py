"""The aioconn pytest plugin (entry point ``pytest11``): loopback fixtures and a leak check.

Installing aioconn makes it available. Fixtures: ``echo_server`` (an ``EchoServer`` on
127.0.0.1) and ``chaos_proxy`` (a ``ChaosProxy`` in front of ``echo_server``).

The leak check fails a test that leaves behind an open aioconn ``Connection`` or ``Pool``, a
task it started still pending, a ``ResourceWarning`` (unclosed sockets, transports, ...), or
an error reported to the event loop's exception handler — and says where each leaked object
was created. Opt in per test with ``@pytest.mark.aioconn_leak_check``, or for a whole suite
with ``aioconn_leak_check = true`` in the pytest ini options.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import inspect
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar, cast

import pytest

from .. import _registry
from ._echo import EchoServer
from ._proxy import ChaosProxy

F = TypeVar("F", bound=Callable[..., Any])
_HAVE_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None


def _async_fixture(function: F) -> F:
    """Declare an async fixture through pytest-asyncio (required in its strict mode)."""
    if not _HAVE_PYTEST_ASYNCIO:  # without it no async test runs; keep the names defined
        return cast(F, pytest.fixture(function))
    import pytest_asyncio

    return cast(F, pytest_asyncio.fixture(function))


_MARKER = "aioconn_leak_check"
_SEEDS_FROM = pytest.StashKey[int]()
_SETTLE_SECONDS = 1.0  # how long finishing tasks get to finish before they count as leaked


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _MARKER,
        type="bool",
        default=False,
        help="aioconn: fail every test that leaks connections, pools, tasks or ResourceWarnings",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}: fail the test if it leaves aioconn connections or pools open, tasks"
        " pending, ResourceWarnings or loop errors behind",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    everywhere = bool(config.getini(_MARKER))
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        if not (everywhere or item.get_closest_marker(_MARKER)):
            continue
        # First in line: set up before, and torn down after, every other fixture of the test.
        names = ["_aioconn_leak_check"]
        if _HAVE_PYTEST_ASYNCIO and inspect.iscoroutinefunction(item.obj):
            names.append("_aioconn_async_leak_check")
        item.fixturenames[:0] = [n for n in names if n not in item.fixturenames]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, name the seeds of the ChaosProxy instances the test ran, to replay it."""
    if call.when == "setup":
        item.stash[_SEEDS_FROM] = len(_registry.proxy_seeds)
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed:
        seeds = _registry.proxy_seeds[item.stash.get(_SEEDS_FROM, 0) :]
        if seeds:
            lines = [f"ChaosProxy on {address}: seed={seed}" for address, seed in seeds]
            report.sections.append(("aioconn ChaosProxy seeds", "\n".join(lines)))


def _describe_open(before: set[int]) -> list[str]:
    leaks = []
    for conn in list(_registry.open_connections):
        if id(conn) not in before:
            leaks.append(f"open {conn!r}, created at {conn.created_where}")
    for pool in list(_registry.open_pools):
        if id(pool) not in before:
            leaks.append(f"open {pool!r}, created at {pool.created_where}")
    return leaks


def _open_ids() -> set[int]:
    return {id(o) for o in (*_registry.open_connections, *_registry.open_pools)}


@pytest.fixture
def _aioconn_leak_check() -> Iterator[None]:
    """Open aioconn objects and ResourceWarnings, checked after the event loop is gone."""
    before = _open_ids()
    yield
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    leaks = _describe_open(before)
    leaks += [
        f"ResourceWarning: {w.message}" for w in caught if issubclass(w.category, ResourceWarning)
    ]
    if leaks:
        pytest.fail("aioconn leak check:\n  " + "\n  ".join(leaks), pytrace=False)


@_async_fixture
async def _aioconn_async_leak_check() -> AsyncIterator[None]:
    """Tasks left pending and errors sent to the loop's exception handler, checked in the loop."""
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    before = asyncio.all_tasks()
    reported: list[dict[str, Any]] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        yield
        deadline = loop.time() + _SETTLE_SECONDS
        while True:
            pending = asyncio.all_tasks() - before - {asyncio.current_task(), me}
            if not pending or loop.time() > deadline:
                break
            await asyncio.sleep(0.005)
    finally:
        loop.set_exception_handler(previous_handler)
    leaks = [f"pending {task!r}" for task in pending]
    leaks += [f"reported to the loop: {context.get('message')!r} {context}" for context in reported]
    if leaks:
        for task in pending:
            task.cancel()
        pytest.fail("aioconn leak check:\n  " + "\n  ".join(leaks), pytrace=False)


@_async_fixture
async def echo_server() -> AsyncIterator[EchoServer]:
    """An ``EchoServer`` on 127.0.0.1 and a free port, stopped after the test."""
    async with EchoServer() as server:
        yield server


@_async_fixture
async def chaos_proxy(echo_server: EchoServer) -> AsyncIterator[ChaosProxy]:
    """A ``ChaosProxy`` on 127.0.0.1 in front of ``echo_server``; add toxics to it."""
    async with ChaosProxy(echo_server.host, echo_server.port) as proxy:
        yield proxy
