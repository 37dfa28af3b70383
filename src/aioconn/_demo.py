"""``aioconn demo``: a walkthrough showing, from the server's own count, that connections close."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ._connecting import connect
from .errors import ReadTimeout
from .testing import EchoServer

_SERVER_WAIT = 5.0  # how long the demo waits for the server to see a close before failing


class _Walkthrough:
    def __init__(self, server: EchoServer) -> None:
        self.server = server
        self.failures = 0

    def say(self, text: str) -> None:
        print(f"    {text}", flush=True)

    async def step(self, title: str, body: Callable[[], Awaitable[None]]) -> None:
        print(f"\n== {title}", flush=True)
        started = time.perf_counter()
        try:
            await body()
            await self.expect_server_open(0)
        except Exception as exc:
            self.failures += 1
            print(f"  FAIL {type(exc).__name__}: {exc}", flush=True)
            return
        print(f"  ok   ({(time.perf_counter() - started) * 1000:.1f} ms)", flush=True)

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


async def run_demo() -> int:
    """Run the walkthrough against an embedded echo server; 0 if every step behaved as shown."""
    async with EchoServer() as server:
        print(f"aioconn demo: echo server listening on {server.address}", flush=True)
        demo = _Walkthrough(server)
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
        print(
            f"\n{total - demo.failures} of {total} steps behaved as shown;"
            f" server saw {server.opened} connections opened and {server.closed} closed",
            flush=True,
        )
        return 0 if demo.failures == 0 else 1
