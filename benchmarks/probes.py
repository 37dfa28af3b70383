"""Behaviour probes behind the feature comparison: what each pool does on error and cancellation.

Not timed. Each probe uses a pool of one trivial resource and reports what happened:

* ``error``: the block raised ``ValueError``; was the resource put back or closed?
* ``cancel``: the block was cancelled mid-use (a request half-sent, in real life); put back or
  closed? Putting it back hands the next caller a connection in an unknown state.
* ``handoff``: a waiter is cancelled at each of the first 8 loop steps after the holder released
  the resource; afterwards, can the pool still hand out a resource within 0.5 s? A pool that can't
  has lost capacity for good.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .contenders import Contender
from .harness import run_inline
from .resources import Trivial

HANDOFF_STEPS = 8


@dataclass(frozen=True)
class Probe:
    error: str
    cancel: str
    handoff_lost: int  # of HANDOFF_STEPS cancellation timings that left the pool short


async def _after_block(contender: Contender, cancel: bool) -> str:
    resources = Trivial()
    pool = await contender.open(resources, 1)
    closed = resources.closed

    async def block() -> None:
        async with pool.acquire():
            if not cancel:
                raise ValueError("the block failed")
            await asyncio.sleep(10)

    task = asyncio.ensure_future(block())
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.01)
    outcome = "closed" if resources.closed > closed else "put back"
    await pool.close()
    return outcome


async def _handoff(contender: Contender, steps: int) -> bool:
    """True if the pool still serves after a waiter was cancelled ``steps`` steps into hand-off."""
    pool = await contender.open(Trivial(), 1)
    release = asyncio.Event()

    async def hold() -> None:
        async with pool.acquire():
            await release.wait()

    async def wait() -> None:
        async with pool.acquire():
            pass

    holder = asyncio.ensure_future(hold())
    await asyncio.sleep(0.01)
    waiter = asyncio.ensure_future(wait())
    await asyncio.sleep(0.01)
    release.set()
    for _ in range(steps):
        await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(holder, waiter, return_exceptions=True)
    try:
        async with asyncio.timeout(0.5):
            async with pool.acquire():
                pass
    except TimeoutError:
        return False  # the pool is left stuck; don't try to close it
    await pool.close()
    return True


def probe(contender: Contender) -> Probe:
    """All three probes; a probe that raises is reported with its error instead."""
    try:
        error = run_inline(lambda: _after_block(contender, cancel=False))
        cancel = run_inline(lambda: _after_block(contender, cancel=True))
        lost = sum(
            not run_inline(lambda s=steps: _handoff(contender, s)) for steps in range(HANDOFF_STEPS)
        )
    except Exception as exc:
        failed = f"probe failed: {type(exc).__name__}: {exc}"
        return Probe(failed, failed, -1)
    return Probe(error, cancel, lost)
