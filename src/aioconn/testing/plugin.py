"""The aioconn pytest plugin (entry point ``pytest11``): loopback fixtures, seeds, a leak check.

Installing aioconn makes it available; its async fixtures need pytest-asyncio
(``pip install 'aioconn[pytest]'``), in ``asyncio_mode`` ``strict`` or ``auto``.

Fixtures: ``echo_server`` (an ``EchoServer`` on 127.0.0.1), ``chaos_proxy`` (a ``ChaosProxy`` in
front of ``echo_server``) and ``chaos_proxy_factory`` (``await chaos_proxy_factory(host, port)``
puts a ``ChaosProxy`` in front of any server). Their proxies take the seed of the
``aioconn_seed`` marker, else of ``--aioconn-seed``, else a random one; a failing test reports
the seed of every proxy it ran.

The leak check (marker ``aioconn_leak_check``, or ``aioconn_leak_check = true`` in the ini file
for every test) fails a test that leaves an aioconn ``Connection`` or ``Pool`` open (still
referenced, or freed without being closed), raises a ``ResourceWarning`` at any point (unclosed
sockets, transports, ...; whatever the warning filters), leaves a task it started pending, or
sends an error to the event loop's exception handler; each leak says where it was created.
See docs/testing.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import traceback
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any, TypeVar, cast

import pytest

from .. import _registry
from .._where import format_stack, user_frames
from ._echo import EchoServer
from ._leak_check import LeakCheck
from ._proxy import ChaosProxy, ChaosProxyFactory

__all__: list[str] = []  # a pytest plugin: its hooks and fixtures are found by name

F = TypeVar("F", bound=Callable[..., Any])
_HAVE_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None

_LEAK_MARKER = "aioconn_leak_check"
_SEED_MARKER = "aioconn_seed"
_SEED_OPTION = "--aioconn-seed"
_ASYNC_FIXTURES = ("echo_server", "chaos_proxy", "chaos_proxy_factory")
_LOOP_SCOPES = ("function", "class", "module", "package", "session")
_SETTLE_SECONDS = 1.0  # how long finishing tasks get to finish before they count as leaked

_SEEDS_FROM = pytest.StashKey[int]()
_LEAK_CHECK = pytest.StashKey[LeakCheck]()
_FIXTURE_SEEDS = pytest.StashKey[set[int]]()  # seeds the proxy fixtures chose by default


def _async_fixture(function: F, loop_scope: str | None = None) -> F:
    """Declare an async fixture through pytest-asyncio (required in its strict mode)."""
    if not _HAVE_PYTEST_ASYNCIO:  # kept defined; pytest_runtest_setup says what is missing
        return cast(F, pytest.fixture(function))
    import pytest_asyncio

    return cast(F, pytest_asyncio.fixture(function, loop_scope=cast(Any, loop_scope)))


# -- options, markers --------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _LEAK_MARKER,
        type="bool",
        default=False,
        help="aioconn: fail every test that leaks connections, pools, tasks or ResourceWarnings",
    )
    parser.getgroup("aioconn").addoption(
        _SEED_OPTION,
        type=int,
        default=None,
        metavar="N",
        help="aioconn: seed of the ChaosProxy of the chaos_proxy and chaos_proxy_factory"
        " fixtures (default: random; a failing test prints the seeds it used)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_LEAK_MARKER}: fail the test if it leaves aioconn connections or pools open, tasks"
        " pending, ResourceWarnings or loop errors behind",
    )
    config.addinivalue_line(
        "markers",
        f"{_SEED_MARKER}(seed): the seed of the ChaosProxy of the chaos_proxy and"
        f" chaos_proxy_factory fixtures in this test (overrides {_SEED_OPTION})",
    )


def _asyncio_plugin_active(config: pytest.Config) -> bool:
    return _HAVE_PYTEST_ASYNCIO and config.pluginmanager.hasplugin("asyncio")


def _loop_scope(item: pytest.Function) -> str:
    """The scope of the event loop pytest-asyncio runs ``item`` in."""
    marker = item.get_closest_marker("asyncio")
    scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope") if marker else None
    if scope is None:
        scope = item.config.getini("asyncio_default_test_loop_scope") or "function"
    return str(scope)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    everywhere = bool(config.getini(_LEAK_MARKER))
    with_asyncio = _asyncio_plugin_active(config)
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        if not (everywhere or item.get_closest_marker(_LEAK_MARKER)):
            continue
        # First in line: set up before, and torn down after, every other fixture of the test.
        names = ["_aioconn_leak_check"]
        if (
            with_asyncio
            and inspect.iscoroutinefunction(item.obj)
            and item.get_closest_marker("asyncio")  # set by pytest-asyncio in auto mode
        ):
            names.append(f"_aioconn_async_leak_check_{_loop_scope(item)}")
        item.fixturenames[:0] = [n for n in names if n not in item.fixturenames]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_SEEDS_FROM] = len(_registry.proxy_seeds)  # before any fixture starts a proxy
    if _asyncio_plugin_active(item.config) or not isinstance(item, pytest.Function):
        return
    needs = [name for name in _ASYNC_FIXTURES if name in item.fixturenames]
    if inspect.iscoroutinefunction(item.obj):
        needs.insert(0, "an async test function")
    if needs:
        state = "not installed" if not _HAVE_PYTEST_ASYNCIO else "disabled (-p no:asyncio)"
        pytest.fail(
            f"aioconn: {item.name} needs pytest-asyncio ({', '.join(needs)}), which is {state}:"
            " pip install 'aioconn[pytest]', and set asyncio_mode = auto (or mark async tests"
            " with @pytest.mark.asyncio)",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure (setup, call or teardown), name the seed of each ChaosProxy the test ran."""
    report = yield
    if report.failed:
        lines = _seed_lines(item)
        if lines:
            report.sections.append(("aioconn ChaosProxy seeds", "\n".join(lines)))
    return report


def _seed_lines(item: pytest.Item) -> list[str]:
    """Every proxy the test started, and every proxy (of a wider fixture) still open."""
    seen = dict.fromkeys(_registry.proxy_seeds[item.stash.get(_SEEDS_FROM, 0) :])
    for proxy in _registry.open_proxies:
        seen.setdefault((f"{proxy.host}:{proxy.port}", proxy.seed))
    lines = [f"ChaosProxy on {address}: seed={seed}" for address, seed in seen]
    by_fixtures = item.stash.get(_FIXTURE_SEEDS, set())
    if len(by_fixtures) == 1:  # the fixtures chose it: the option or the marker replays it
        [seed] = by_fixtures
        lines.append(
            f"replay: pytest {_SEED_OPTION}={seed} (or @pytest.mark.{_SEED_MARKER}({seed}))"
        )
    return lines


# -- the leak check ----------------------------------------------------------------------------


@pytest.fixture
def _aioconn_leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Leaks over the whole test, reported once the event loop and every fixture are gone."""
    with LeakCheck() as check:
        request.node.stash[_LEAK_CHECK] = check
        yield
        leaks = check.report()
    if leaks:
        pytest.fail("aioconn leak check:\n  " + "\n  ".join(leaks), pytrace=False)


@contextlib.asynccontextmanager
async def _watch_loop(request: pytest.FixtureRequest) -> AsyncIterator[None]:
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
    leaks = [f"pending {task!r}{_task_created_at(task)}" for task in pending]
    for task in pending:
        task.cancel()
    leaks += [f"reported to the loop: {context.get('message')!r} {context}" for context in reported]
    check = request.node.stash.get(_LEAK_CHECK, None)
    if check is not None:
        check.other += leaks  # reported with the rest, once everything is torn down
    elif leaks:
        pytest.fail("aioconn leak check:\n  " + "\n  ".join(leaks), pytrace=False)


def _async_leak_check(loop_scope: str) -> Any:
    """The async half of the leak check, as a fixture running in loops of ``loop_scope``."""

    async def check(request: pytest.FixtureRequest) -> AsyncIterator[None]:
        async with _watch_loop(request):
            yield

    check.__name__ = f"_aioconn_async_leak_check_{loop_scope}"
    return _async_fixture(check, loop_scope=loop_scope)


def _task_created_at(task: asyncio.Task[Any]) -> str:
    # asyncio records where a task was created only in debug mode.
    source: list[traceback.FrameSummary] | None = getattr(task, "_source_traceback", None)
    if not source:
        return " (pytest --asyncio-debug shows where it was created)"
    user = traceback.StackSummary.from_list(user_frames(source))
    return "\n    created at (most recent call last):\n" + format_stack(user, "    ").rstrip("\n")


# One per loop scope: the check must run in the loop the test runs in.
for _scope in _LOOP_SCOPES:
    globals()[f"_aioconn_async_leak_check_{_scope}"] = _async_leak_check(_scope)


# -- fixtures ----------------------------------------------------------------------------------


def _seed(request: pytest.FixtureRequest) -> int | None:
    marker = request.node.get_closest_marker(_SEED_MARKER)
    if marker is not None:
        if len(marker.args) != 1 or not isinstance(marker.args[0], int) or marker.args[0] < 0:
            raise pytest.UsageError(
                f"@pytest.mark.{_SEED_MARKER} takes one int >= 0, got {marker.args!r}"
            )
        return int(marker.args[0])
    option = request.config.getoption(_SEED_OPTION)
    return None if option is None else int(option)


@_async_fixture
async def echo_server() -> AsyncIterator[EchoServer]:
    """An ``EchoServer`` on 127.0.0.1 and a free port, stopped after the test."""
    async with EchoServer() as server:
        yield server


@_async_fixture
async def chaos_proxy_factory(request: pytest.FixtureRequest) -> AsyncIterator[ChaosProxyFactory]:
    """``await chaos_proxy_factory(host, port)``: a started ``ChaosProxy`` in front of any
    server (yours), closed after the test. Its seed: ``seed=``, else the test's seed."""
    default = _seed(request)
    proxies: list[ChaosProxy] = []

    async def start(host: str, port: int, *, seed: int | None = None) -> ChaosProxy:
        proxy = ChaosProxy(host, port, seed=default if seed is None else seed)
        await proxy.start()
        proxies.append(proxy)
        if seed is None:
            request.node.stash.setdefault(_FIXTURE_SEEDS, set()).add(proxy.seed)
        return proxy

    try:
        yield start
    finally:
        for proxy in reversed(proxies):
            await proxy.close()


@_async_fixture
async def chaos_proxy(
    echo_server: EchoServer, chaos_proxy_factory: ChaosProxyFactory
) -> ChaosProxy:
    """A ``ChaosProxy`` on 127.0.0.1 in front of ``echo_server``; add toxics to it."""
    return await chaos_proxy_factory(echo_server.host, echo_server.port)
