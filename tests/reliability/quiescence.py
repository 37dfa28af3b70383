"""What "quiescent" and "leak" mean for the reliability suite, defined once.

A test takes a ``Baseline`` once its servers are up and before it opens a pool, and ends with
``await assert_quiescent(pool, server, baseline)``. The pool is **quiescent** when all of this
holds, and anything that breaks it is a **leak**:

1. No connection is in limbo. Every aioconn ``Connection`` opened since the baseline is closed,
   idle in the pool, or held by a live task; after the test's tasks ended none is held:
   ``pool.stats()`` shows ``in_use == 0`` and ``waiting == 0`` at once, and ``opening == 0``,
   ``checking == 0`` once the pool's detached background work finished (bounded wait); the
   open connections (aioconn's registry) are exactly the ``idle`` ones, and ``size == idle``.
2. Every acquire was returned exactly once: ``released + discarded.aborted == acquired``.
3. The server agrees: its open connection count equals the pool's idle count (and, with a
   proxy in between, so does the proxy's open link count), waited for under a bound.
4. After ``pool.close()`` (bounded), the server and proxy see no connection, no aioconn
   connection is open, and this process holds exactly the sockets it held at the baseline.
5. No task is pending except the current one (background closers get a bounded grace period).
6. No ``ResourceWarning`` since the baseline: neither from an object freed along the way (an
   unclosed connection or transport dropped by whoever held it) nor from ``gc.collect()``.
7. Nothing was reported to the event loop's exception handler since the baseline.

"Bounded" is ``timeout`` seconds (default 5) per wait; a wait that runs out fails the test and
says what it was waiting for and what it saw.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aioconn import Pool, _registry
from aioconn.testing import ChaosProxy
from conftest import open_socket_count

__all__ = [
    "Baseline",
    "ServerLike",
    "assert_quiescent",
    "live_connections",
    "open_socket_count",
    "poll_until",
    "take_baseline",
]

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class ServerLike(Protocol):
    """What the helper needs from a server: ``EchoServer`` and the suite's TLS server have it."""

    @property
    def open_count(self) -> int: ...

    async def wait_until(self, predicate: Callable[[], bool]) -> None: ...


@dataclass
class Baseline:
    """The state a test must return to, and the loop errors recorded since it was taken."""

    loop: asyncio.AbstractEventLoop
    sockets: int
    connections: frozenset[int]
    previous_handler: ExceptionHandler | None
    warnings_catcher: warnings.catch_warnings[list[warnings.WarningMessage]]
    resource_warnings: list[warnings.WarningMessage]
    loop_errors: list[dict[str, Any]] = field(default_factory=list)
    restored: bool = False

    def restore_handler(self) -> None:
        """Stop recording: put back the loop's exception handler and the warning filters that
        were in place before the baseline; idempotent.

        (If a test fails before this runs, pytest restores the warning filters after the test
        and the loop ends with the test.)
        """
        if not self.restored:
            self.restored = True
            self.loop.set_exception_handler(self.previous_handler)
            self.warnings_catcher.__exit__(None, None, None)


def take_baseline() -> Baseline:
    """Record the sockets and connections open now, and start recording loop errors.

    Call it from the running test, after starting servers and proxies, before opening a pool.
    The recording handler also forwards each error to the handler it replaced (the plugin's).
    """
    loop = asyncio.get_running_loop()
    # Garbage of earlier tests (a failed one's, say) must not be blamed on this one.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    previous = loop.get_exception_handler()
    # Record ResourceWarnings instead of raising them: one raised in a __del__ is only printed.
    # (Other warnings stay errors, as pytest configures them.)
    catcher = warnings.catch_warnings(record=True)
    recorded = catcher.__enter__()
    warnings.simplefilter("always", ResourceWarning)
    baseline = Baseline(
        loop=loop,
        sockets=open_socket_count(),
        connections=frozenset(id(c) for c in _registry.open_connections),
        previous_handler=previous,
        warnings_catcher=catcher,
        resource_warnings=recorded,
    )

    def record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        baseline.loop_errors.append(context)
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(record)
    return baseline


def live_connections(baseline: Baseline) -> list[Any]:
    """aioconn connections opened since ``baseline`` and not closed yet."""
    return [c for c in list(_registry.open_connections) if id(c) not in baseline.connections]


async def poll_until(
    predicate: Callable[[], bool], describe: Callable[[], str], timeout: float = 5.0
) -> None:
    """Step the loop until ``predicate()`` holds, for state no event announces (fds, tasks).

    Fails with ``describe()`` if it does not hold within ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {describe()}")
        await asyncio.sleep(0.001)


async def _bounded(what: str, awaitable: Any, timeout: float, seen: Callable[[], str]) -> None:
    try:
        async with asyncio.timeout(timeout):
            await awaitable
    except TimeoutError:
        raise AssertionError(f"{what}: not reached within {timeout} s; {seen()}") from None


async def assert_quiescent(
    pool: Pool[Any],
    server: ServerLike,
    baseline: Baseline,
    *,
    proxy: ChaosProxy | None = None,
    timeout: float = 5.0,
) -> None:
    """Fail unless ``pool`` is quiescent (see the module docstring); closes the pool."""
    try:
        await _check(pool, server, baseline, proxy, timeout)
    finally:
        baseline.restore_handler()


async def _check(
    pool: Pool[Any],
    server: ServerLike,
    baseline: Baseline,
    proxy: ChaosProxy | None,
    timeout: float,
) -> None:
    stats = pool.stats()
    # 1. Nothing held or queued once the test's own tasks are done.
    assert (stats.in_use, stats.waiting) == (0, 0), f"held or queued at the end: {stats}"
    await poll_until(
        lambda: (pool.stats().opening, pool.stats().checking) == (0, 0),
        lambda: f"background opens/checks still running: {pool.stats()}",
        timeout,
    )
    # Discarded connections close in background tasks; each leaves the registry as it starts.
    await poll_until(
        lambda: len(live_connections(baseline)) == pool.stats().idle,
        lambda: (
            f"{len(live_connections(baseline))} open connections but {pool.stats().idle} idle:"
            f" {live_connections(baseline)}"
        ),
        timeout,
    )
    stats = pool.stats()
    assert stats.size == stats.idle, f"size is not idle: {stats}"
    # 2. Every acquire returned exactly once.
    assert stats.released + stats.discarded.aborted == stats.acquired, f"unbalanced: {stats}"

    # 3. The other side agrees.
    idle = stats.idle
    await _bounded(
        f"server open_count == idle ({idle})",
        server.wait_until(lambda: server.open_count == idle),
        timeout,
        lambda: f"server open_count={server.open_count}",
    )
    if proxy is not None:
        await _bounded(
            f"proxy open == idle ({idle})",
            proxy.wait_for(open=idle),
            timeout,
            lambda: f"proxy {proxy.stats}",
        )

    # 4. Closing leaves nothing open.
    await _bounded("pool.close()", pool.close(), timeout, lambda: repr(pool))
    assert pool.closed
    assert pool not in _registry.open_pools
    await _bounded(
        "server open_count == 0",
        server.wait_until(lambda: server.open_count == 0),
        timeout,
        lambda: f"server open_count={server.open_count}",
    )
    if proxy is not None:
        await _bounded("proxy open == 0", proxy.wait_for(open=0), timeout, lambda: f"{proxy.stats}")
    assert live_connections(baseline) == [], "connections open after pool.close()"
    await poll_until(
        lambda: open_socket_count() == baseline.sockets,
        lambda: f"{open_socket_count()} sockets open, {baseline.sockets} at the baseline",
        timeout,
    )

    # 5. No task left behind.
    me = asyncio.current_task()
    await poll_until(
        lambda: not (asyncio.all_tasks() - {me}),
        lambda: f"pending tasks: {asyncio.all_tasks() - {me}}",
        timeout,
    )

    # 6. Nothing unclosed, freed along the way or found by the garbage collector.
    gc.collect()
    seen = [f"{w.category.__name__}: {w.message}" for w in baseline.resource_warnings]
    assert seen == [], f"warnings: {seen}"

    # 7. Nothing went to the loop's exception handler.
    errors = [context.get("message") for context in baseline.loop_errors]
    assert errors == [], f"reported to the loop: {baseline.loop_errors}"
