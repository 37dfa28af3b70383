"""Cancel each pool operation at every event-loop step it takes, one step further each time.

For an operation run in its own task, the test lets the loop take ``k`` steps
(``await asyncio.sleep(0)`` k times), then cancels the task, for k = 0, 1, 2, ... until the
operation completes before the cancel (``task.cancel()`` returns False). Every time: the
cancellation propagates as ``CancelledError`` (never swallowed, never turned into another
error) or the operation completed with the right result; the pool's counters are exactly what
that outcome implies; and the pool is quiescent afterwards (a fresh pool per k).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from quiescence import assert_quiescent, take_baseline
from witness import ask

from aioconn import Connection, Pool, PoolStats, TCPConnector
from aioconn.testing import EchoServer

BOUND = 5.0
MAX_STEPS = 2_000  # a sweep longer than this means an operation that never completes

Action = Callable[[], Awaitable[None]]


async def cancel_after(task: asyncio.Task[Any], k: int, actions: dict[int, Action]) -> bool:
    """Take ``k`` loop steps, then cancel ``task``; ``actions[i]`` runs after i steps.

    An action for step k runs right before the cancel, with no step in between. Returns True
    if the task was still running and got cancelled, False if it had completed. The actions
    must not yield to the loop, so that steps are counted exactly.
    """
    for step in range(k + 1):
        action = actions.get(step)
        if action is not None:
            await action()
        if step < k:
            await asyncio.sleep(0)
    requested = task.cancel()
    async with asyncio.timeout(BOUND):
        if requested:
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            await task  # completed: any exception it raised fails the test here
    return requested


class TCPResetConnector(TCPConnector):
    """A TCP connector whose ``reset`` does a round trip, so a release takes several steps."""

    async def reset(self, conn: Connection) -> None:
        """Ask the witness server for a reply on the returned connection."""
        request_id, _ = await ask(conn, "reset")
        assert request_id == "reset"


def counters(stats: PoolStats) -> dict[str, int]:
    """The counters a sweep asserts exactly."""
    return {
        "created": stats.created,
        "acquired": stats.acquired,
        "released": stats.released,
        "idle": stats.idle,
        "interrupted": stats.discarded.interrupted,
        "reset_failed": stats.discarded.reset_failed,
        "pool_closed": stats.discarded.pool_closed,
        "aborted": stats.discarded.aborted,
        "discarded": stats.discarded.total,
    }


async def run_sweep(trial: Callable[[EchoServer, int], Awaitable[bool]]) -> list[bool]:
    """Run ``trial(server, k)`` for k = 0, 1, ... until it reports a completed operation."""
    outcomes: list[bool] = []
    async with EchoServer(witness=True) as server:
        for k in itertools.count():
            assert k < MAX_STEPS, "the operation never completed"
            cancelled = await trial(server, k)
            outcomes.append(cancelled)
            if not cancelled:
                return outcomes
    raise AssertionError("unreachable")


def new_pool(server: EchoServer, k: int, connector: TCPConnector | None = None) -> Pool[Any]:
    return Pool(
        connector or TCPConnector(server.host, server.port, read_timeout=BOUND),
        max_size=1,
        acquire_timeout=BOUND,
        name=f"sweep-{k}",
    )


async def acquire_and_return(pool: Pool[Connection]) -> Connection:
    async with pool.acquire() as conn:
        return conn


async def test_acquire_as_a_queued_waiter() -> None:
    """The victim queues behind a held connection; a second waiter queues behind the victim.

    The holder gives the connection back after one step, when both wait, so at k == 1 the
    cancel lands right after the hand-off to the victim, before the victim ran (the race of
    psycopg #1275 / aiohttp #9671). The second waiter is never stranded, and no connection is
    opened beyond the one.
    """

    async def trial(server: EchoServer, k: int) -> bool:
        baseline = take_baseline()
        pool = new_pool(server, k)
        await pool.open()
        held = await pool.get()
        victim = asyncio.create_task(acquire_and_return(pool))
        behind = asyncio.create_task(acquire_and_return(pool))
        given_back = False
        waiting_after_hand_off = -1

        async def give_back() -> None:
            nonlocal given_back, waiting_after_hand_off
            given_back = True
            await pool.put(held)
            waiting_after_hand_off = pool.stats().waiting

        cancelled = await cancel_after(victim, k, {1: give_back})
        if k == 1:
            assert (cancelled, waiting_after_hand_off) == (True, 1)  # handed to the victim
        if not given_back:
            await give_back()
        async with asyncio.timeout(BOUND):
            assert await behind is held  # never stranded by the cancelled waiter
        if not cancelled:
            assert victim.result() is held
        victim_acquires = 0 if cancelled else 1
        assert counters(pool.stats()) == {
            "created": 1,
            "acquired": 2 + victim_acquires,
            "released": 2 + victim_acquires,
            "idle": 1,
            "interrupted": 0,
            "reset_failed": 0,
            "pool_closed": 0,
            "aborted": 0,
            "discarded": 0,
        }
        await assert_quiescent(pool, server, baseline)
        return cancelled

    outcomes = await run_sweep(trial)
    assert len(outcomes) >= 3  # at least: before it ran, while queued, then completed


async def test_acquire_while_a_new_connection_opens() -> None:
    """The victim's acquire starts the only connection's connect; another waiter queues behind.

    The connect is detached from the victim: cancelled at any step, the connection still opens
    and serves the second waiter, and exactly one connection is ever made.
    """

    async def trial(server: EchoServer, k: int) -> bool:
        baseline = take_baseline()
        pool = new_pool(server, k)
        await pool.open()
        victim = asyncio.create_task(acquire_and_return(pool))
        behind = asyncio.create_task(acquire_and_return(pool))
        cancelled = await cancel_after(victim, k, {})
        async with asyncio.timeout(BOUND):
            conn = await behind
        if not cancelled:
            assert victim.result() is conn
        victim_acquires = 0 if cancelled else 1
        assert counters(pool.stats()) == {
            "created": 1,
            "acquired": 1 + victim_acquires,
            "released": 1 + victim_acquires,
            "idle": 1,
            "interrupted": 0,
            "reset_failed": 0,
            "pool_closed": 0,
            "aborted": 0,
            "discarded": 0,
        }
        await assert_quiescent(pool, server, baseline)
        return cancelled

    outcomes = await run_sweep(trial)
    assert len(outcomes) >= 3  # cancelled before running, while connecting, then completed


async def test_request_send_and_readline() -> None:
    """A request on an idle connection: cancelled inside the block, the connection is closed."""

    async def trial(server: EchoServer, k: int) -> bool:
        baseline = take_baseline()
        pool = new_pool(server, k)
        await pool.open()
        await acquire_and_return(pool)  # one idle connection: the acquire takes no step
        entered = False

        async def request() -> tuple[str, int]:
            nonlocal entered
            async with pool.acquire() as conn:
                entered = True
                return await ask(conn, f"k{k}")

        victim = asyncio.create_task(request())
        cancelled = await cancel_after(victim, k, {})
        if not cancelled:
            assert victim.result() == (f"k{k}", server.opened)
        interrupted = 1 if cancelled and entered else 0
        assert entered == (k > 0)
        assert counters(pool.stats()) == {
            "created": 1,
            "acquired": 1 + int(entered),
            "released": 1 + int(entered),
            "idle": 1 - interrupted,
            "interrupted": interrupted,
            "reset_failed": 0,
            "pool_closed": 0,
            "aborted": 0,
            "discarded": interrupted,
        }
        await assert_quiescent(pool, server, baseline)
        return cancelled

    outcomes = await run_sweep(trial)
    assert len(outcomes) >= 3  # not started, waiting for the reply, completed


async def test_release_with_a_reset_round_trip() -> None:
    """``put`` runs the connector's ``reset`` (a round trip); cancelled meanwhile, the
    connection is discarded as ``reset_failed``, never pooled in an unknown state."""

    async def trial(server: EchoServer, k: int) -> bool:
        baseline = take_baseline()
        pool = new_pool(server, k, TCPResetConnector(server.host, server.port, read_timeout=BOUND))
        await pool.open()
        conn = await pool.get()
        victim = asyncio.create_task(pool.put(conn))
        cancelled = await cancel_after(victim, k, {})
        if k == 0:
            assert cancelled  # put() never ran: the caller still holds the connection
            await pool.put(conn)
        reset_failed = 1 if cancelled and k > 0 else 0
        assert counters(pool.stats()) == {
            "created": 1,
            "acquired": 1,
            "released": 1,
            "idle": 1 - reset_failed,
            "interrupted": 0,
            "reset_failed": reset_failed,
            "pool_closed": 0,
            "aborted": 0,
            "discarded": reset_failed,
        }
        await assert_quiescent(pool, server, baseline)
        return cancelled

    outcomes = await run_sweep(trial)
    assert len(outcomes) >= 3  # not started, inside reset, completed


async def test_pool_close_with_idle_and_held_connections() -> None:
    """``close()`` closes an idle connection and waits for a held one, given back after a step.

    Cancelled at any step, the cancellation propagates, and the pool still ends closed with
    both connections closed (none aborted) once the holder gives its connection back.
    """

    async def trial(server: EchoServer, k: int) -> bool:
        baseline = take_baseline()
        pool = Pool(
            TCPConnector(server.host, server.port, read_timeout=BOUND),
            max_size=2,
            name=f"sweep-close-{k}",
        )
        await pool.open()
        held = [await pool.get(), await pool.get()]
        await pool.put(held.pop())  # one idle, one held
        given_back = False

        async def give_back() -> None:
            nonlocal given_back
            given_back = True
            await pool.put(held[0])

        victim = asyncio.create_task(pool.close(timeout=BOUND))
        cancelled = await cancel_after(victim, k, {1: give_back})
        if not given_back:
            await give_back()
        closed = 0 if k == 0 else 2  # at k == 0 close() never ran: the pool is still open
        assert counters(pool.stats()) == {
            "created": 2,
            "acquired": 2,
            "released": 2,
            "idle": 2 - closed,
            "interrupted": 0,
            "reset_failed": 0,
            "pool_closed": closed,
            "aborted": 0,
            "discarded": closed,
        }
        await assert_quiescent(pool, server, baseline)
        assert counters(pool.stats())["pool_closed"] == 2
        return cancelled

    outcomes = await run_sweep(trial)
    assert len(outcomes) >= 3  # not started, waiting for the holder, completed
