"""The demo's storm: one plan of requests, cancels and deadlines driven through any pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Generic, Protocol, TypeVar

from ._demo_plan import Fairness, Plan, Request, Tally

C = TypeVar("C")


class Client(Protocol[C]):
    """A pool as the storm uses it: borrow a connection, send one line, read one line."""

    def acquire(self) -> AbstractAsyncContextManager[C]: ...

    async def exchange(self, conn: C, line: bytes) -> bytes: ...


def _parse(reply: bytes) -> tuple[str, int] | None:
    """``(request_id, server_connection)`` of a witness reply; None for a cut-off line."""
    parts = reply.split()
    if len(parts) != 2 or not reply.endswith(b"\n") or not parts[1].isdigit():
        return None
    return parts[0].decode(errors="replace"), int(parts[1])


class _Storm(Generic[C]):
    """One storm through one client; counts into a ``Tally``."""

    def __init__(self, plan: Plan, client: Client[C], tally: Tally) -> None:
        self.plan = plan
        self.client: Client[C] = client
        self.tally = tally
        self.loop = asyncio.get_running_loop()
        self.fairness = Fairness()
        self.link_of: dict[C, int] = {}  # the server connection each client connection talks to
        self.spoiled: set[C] = set()  # connections on which a request failed or was cut off

    async def request(self, i: int, plan: Request) -> None:
        tally, loop = self.tally, self.loop
        ticket = self.fairness.start()
        asked = loop.time()
        served = inside = False
        conn: C | None = None
        outer = plan.instant if plan.cut == "deadline" and plan.phase == "waiting" else None
        inner = plan.instant if plan.cut == "deadline" and plan.phase == "inside" else None
        try:
            async with asyncio.timeout(outer):
                async with self.client.acquire() as conn:
                    served = True
                    self.fairness.served(ticket)
                    tally.worst_wait = max(tally.worst_wait, loop.time() - asked)
                    if conn in self.spoiled:
                        tally.dead_reused += 1
                    inside = True
                    me = asyncio.current_task()
                    assert me is not None
                    cancel = (
                        loop.call_later(plan.instant, me.cancel)
                        if plan.cut == "cancel" and plan.phase == "inside"
                        else None
                    )
                    try:
                        async with asyncio.timeout(inner):
                            reply = await self.client.exchange(conn, b"%d\n" % i)
                    finally:
                        if cancel is not None:
                            cancel.cancel()
                    inside = False
        except BaseException as exc:
            if not served:
                self.fairness.left(ticket)
            if inside:
                assert conn is not None
                self.spoiled.add(conn)
                if isinstance(exc, asyncio.CancelledError | TimeoutError):
                    tally.cut_inside += 1
                else:
                    tally.failed_inside += 1
            raise
        assert conn is not None
        parsed = _parse(reply)
        if parsed is None:
            self.spoiled.add(conn)
            raise ConnectionResetError(f"the connection ended mid-reply: {reply!r}")
        request_id, link = parsed
        if request_id != str(i) or self.link_of.setdefault(conn, link) != link:
            tally.mismatched += 1

    async def run(self, i: int, on_finished: Callable[[Tally], None]) -> None:
        plan = self.plan.requests[i]
        task = asyncio.create_task(self.request(i, plan))
        outside = (
            self.loop.call_later(plan.instant, task.cancel)
            if plan.cut == "cancel" and plan.phase == "waiting"
            else None
        )
        try:
            await asyncio.wait([task])
        except BaseException:  # the storm itself was cut short: take the request down with it
            task.cancel()
            raise
        finally:
            if outside is not None:
                outside.cancel()
        tally = self.tally
        if task.cancelled():
            if plan.cut == "cancel":
                tally.cancelled += 1
            else:  # nobody asked for it: that is a bug the summary must show
                tally.failed["CancelledError"] += 1
                tally.unexpected += 1
        elif (exc := task.exception()) is None:
            tally.completed += 1
        elif isinstance(exc, TimeoutError) and plan.cut == "deadline":
            tally.timed_out += 1
        else:
            tally.failed[type(exc).__name__] += 1
            if not isinstance(exc, ConnectionError):  # a reset by the network is expected
                tally.unexpected += 1
        tally.finished += 1
        on_finished(tally)


async def run_storm(
    plan: Plan, client: Client[C], tally: Tally, on_finished: Callable[[Tally], None]
) -> None:
    """Drive every planned request through ``client``, ``plan.concurrency`` at a time."""
    storm: _Storm[C] = _Storm(plan, client, tally)
    started = storm.loop.time()
    total = len(plan.requests)

    async def worker(first: int) -> None:
        for i in range(first, total, plan.concurrency):
            await storm.run(i, on_finished)

    await asyncio.gather(*(worker(w) for w in range(plan.concurrency)))
    tally.overtakes = storm.fairness.overtakes
    tally.seconds = storm.loop.time() - started
