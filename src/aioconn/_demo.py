"""``aioconn demo``: act one, connections closing on every exit path; act two, a pool in a storm.

Act one walks one connection through four exits, checked against the echo server's own count.
Act two (``_demo_chaos``) drives a seeded storm through aioconn's Pool and a naive pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from ._connecting import connect
from ._demo_chaos import run_act_two
from ._demo_plan import LATENCY, POOL_SIZE, RESET_SHARE, make_plan
from ._demo_summary import summary_rows
from ._demo_view import View, make_view
from .errors import ReadTimeout
from .testing import EchoServer

_SERVER_WAIT = 5.0  # how long the demo waits for the server to see a close before failing


class _Walkthrough:
    def __init__(self, server: EchoServer, view: View) -> None:
        self.server = server
        self.view = view
        self.failures = 0

    def say(self, text: str) -> None:
        self.view.line(text)

    async def step(self, title: str, body: Callable[[], Awaitable[None]]) -> None:
        self.view.heading(title)
        started = time.perf_counter()
        try:
            await body()
            await self.expect_server_open(0)
        except Exception as exc:
            self.failures += 1
            self.say(f"FAIL {type(exc).__name__}: {exc}")
            return
        self.say(f"ok ({(time.perf_counter() - started) * 1000:.1f} ms)")

    async def expect_server_open(self, n: int) -> None:
        try:
            async with asyncio.timeout(_SERVER_WAIT):
                await self.server.wait_open_count(n)
        except TimeoutError:
            raise AssertionError(
                f"server still counts {self.server.open_count} open connections, expected {n}"
            ) from None
        self.say(
            f"server counts: opened={self.server.opened} closed={self.server.closed}"
            f" open now={self.server.open_count}"
        )


async def run_demo(*, seed: int, quick: bool = False, plain: bool = False) -> int:
    """Run both acts; 0 if every step behaved as shown and the pool kept every promise."""
    view = make_view(plain)
    # The pool logs each connection close() aborts, with its holder's stack; act two aborts two
    # on purpose and says so. Shown with -v (handlers on the root logger), quiet otherwise.
    logging.getLogger("aioconn").addHandler(logging.NullHandler())
    failures = await _act_one(view)
    broken = await _act_two(view, seed, quick)
    return 0 if failures == broken == 0 else 1


async def _act_one(view: View) -> int:
    """The walkthrough against an embedded echo server; the number of steps that failed."""
    async with EchoServer() as server:
        view.line(f"aioconn demo, act one: echo server listening on {server.address}")
        demo = _Walkthrough(server, view)
        host, port = server.host, server.port

        async def exchange() -> None:
            async with connect(host, port) as conn:
                demo.say(f"connected {conn.sockname} -> {conn.peername}")
                for message in (b"hello\n", b"connections that always close\n"):
                    await conn.send(message)
                    reply = await conn.readline()
                    demo.say(f"sent {message!r}, got {reply!r}")
                    if reply != message:
                        raise AssertionError(f"echo mismatch: {reply!r} != {message!r}")

        async def raise_inside() -> None:
            try:
                async with connect(host, port) as conn:
                    await conn.send(b"about to fail\n")
                    await conn.readline()
                    demo.say("raising RuntimeError inside the block")
                    raise RuntimeError("boom")
            except RuntimeError as exc:
                demo.say(f"the block's exception came through unchanged: {exc!r}")

        async def cancel_mid_read() -> None:
            async def reader() -> None:
                async with connect(host, port) as conn:
                    await conn.readline()  # nothing was sent: this waits forever

            task = asyncio.create_task(reader())
            await demo.expect_server_open(1)
            demo.say("task is blocked in readline(); cancelling it")
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                demo.say("the task ended with CancelledError")
            else:
                raise AssertionError("the cancelled task did not raise CancelledError")

        async def read_timeout() -> None:
            async with connect(host, port, read_timeout=0.2) as conn:
                try:
                    await conn.readline()
                except ReadTimeout as exc:
                    demo.say(f"{type(exc).__name__}: {exc}")
                    demo.say(f"connection is now broken={conn.broken} reusable={conn.reusable}")
                else:
                    raise AssertionError("readline() returned without data")

        await demo.step("1. open with `async with`, exchange messages", exchange)
        await demo.step("2. an exception inside the block still closes", raise_inside)
        await demo.step("3. a task cancelled mid-read still closes", cancel_mid_read)
        await demo.step("4. a read timeout still closes", read_timeout)
        total = 4
        view.blank()
        view.line(
            f"{total - demo.failures} of {total} steps behaved as shown;"
            f" server saw {server.opened} connections opened and {server.closed} closed"
        )
        return demo.failures


async def _act_two(view: View, seed: int, quick: bool) -> int:
    """The storm through both pools and the summary; the number of promises broken."""
    plan = make_plan(seed, quick=quick)
    view.heading("act two: the pool under chaos")
    ms = LATENCY * 1000
    for text in (
        f"{len(plan.requests)} requests from {plan.concurrency} concurrent tasks share a pool of"
        f" {POOL_SIZE} connections",
        f"to the echo server, through a chaos proxy: {ms:.0f} ms ± {ms:.0f} ms latency, replies"
        " cut into pieces,",
        f"{RESET_SHARE:.0%} of connections reset on their first reply."
        f" {plan.count('cancel')} requests are cancelled and",
        f"{plan.count('deadline')} run under a deadline, each cut off at a random instant,"
        " queued or mid-request.",
        f"Then the same storm through a naive pool. Seed {seed}: --seed {seed} replays it.",
    ):
        view.line(text)
    act = await run_act_two(plan, view.progress)
    view.summary(summary_rows(act))
    broken = [text for text, kept in act.promises().values() if not kept]
    view.blank()
    if broken:
        for text in broken:
            view.line(f"BROKEN: {text}")
    else:
        view.line(f"aioconn kept all {len(act.promises())} promises.")
    n = act.naive
    view.line(
        f"The naive pool handed {n.mismatched} callers another request's reply, and"
        f" {n.dead_reused} a connection"
    )
    view.line("on which an earlier request had failed or been cut off.")
    return len(broken)
