"""A cross-talk storm: 20,000 requests through 8 connections, a third of them cut off.

Through a ChaosProxy adding latency with jitter and slicing every chunk into short pieces, 16
concurrent callers send 20,000 requests to a witness server through a pool of 8. A seeded RNG
picks, per request, whether it runs normally, is cancelled from outside (a fifth) or runs under
an ``asyncio.timeout`` (a tenth), and the instant at which the cancel or deadline falls.

Pass criteria, all exact: every reply names its own request id and the server connection the
client connection always talked to (zero mismatches); every request ended as completed,
cancelled (only if a cancel was requested while it ran) or timed out (only under a deadline),
never anything else; the pool discarded exactly the connections whose holder was interrupted
inside its block and nothing more; and the pool is quiescent at the end.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections import Counter

from quiescence import assert_quiescent, take_baseline

from aioconn import Connection, Pool, TCPConnector
from aioconn.testing import ChaosProxy, EchoServer, latency, slicer
from aioconn.testing._echo import parse_witness_reply

SEED = 20_000
REQUESTS = 20_000
POOL_SIZE = 8
CONCURRENCY = 16
CANCEL_SHARE = 0.2
TIMEOUT_SHARE = 0.1
CUT_WITHIN = 0.005  # a cancel or deadline falls uniformly within this many seconds
BOUND = 10.0  # no single request may take this long (read and acquire timeouts)
HARD_LIMIT = 50.0  # the storm takes 6-7 s on two cores in debug mode; this long is a hang


async def test_no_cross_talk_in_a_storm_of_cancellations_and_timeouts() -> None:
    rng = random.Random(SEED)
    loop = asyncio.get_running_loop()
    async with (
        EchoServer(witness=True) as server,
        ChaosProxy(server.host, server.port, seed=SEED) as proxy,
    ):
        proxy.add(latency(0.001, 0.001))
        proxy.add(slicer(4, 2))
        proxy.add(slicer(5, 3, direction="upstream"))
        baseline = take_baseline()
        pool = Pool(
            TCPConnector(proxy.host, proxy.port, read_timeout=BOUND),
            max_size=POOL_SIZE,
            acquire_timeout=BOUND,
            name="storm",
        )
        await pool.open()

        outcomes: Counter[str] = Counter()
        interrupted_inside = 0
        entered = 0
        mismatches: list[str] = []
        link_of: weakref.WeakKeyDictionary[Connection, int] = weakref.WeakKeyDictionary()

        def plan(r: float) -> str:
            if r < CANCEL_SHARE:
                return "cancel"
            return "timeout" if r < CANCEL_SHARE + TIMEOUT_SHARE else ""

        plans = [(plan(rng.random()), rng.uniform(0.0, CUT_WITHIN)) for _ in range(REQUESTS)]

        async def request(i: int, deadline: float | None) -> None:
            nonlocal interrupted_inside, entered
            inside = False
            try:
                async with asyncio.timeout(deadline):
                    async with pool.acquire() as conn:
                        inside = True
                        entered += 1
                        await conn.send(b"%d\n" % i)
                        reply = await conn.readline()
                        inside = False
            except BaseException:
                if inside:
                    interrupted_inside += 1
                raise
            request_id, link = parse_witness_reply(reply)
            if link_of.setdefault(conn, link) != link or request_id != str(i):
                mismatches.append(f"request {i} on link {link_of[conn]} got {reply!r}")

        async def run(i: int) -> None:
            kind, instant = plans[i]
            task = asyncio.create_task(request(i, instant if kind == "timeout" else None))
            requested = False

            def cancel() -> None:
                nonlocal requested
                requested = task.cancel()

            handle = loop.call_later(instant, cancel) if kind == "cancel" else None
            await asyncio.wait([task])
            if handle is not None:
                handle.cancel()
            if task.cancelled():
                assert requested, f"request {i} ({kind!r}) was cancelled by nobody"
                outcomes["cancelled"] += 1
            elif isinstance(task.exception(), TimeoutError) and kind == "timeout":
                outcomes["timed out"] += 1
            else:
                task.result()  # anything else it raised fails the test here
                outcomes["completed"] += 1

        async def worker(first: int) -> None:
            for i in range(first, REQUESTS, CONCURRENCY):
                await run(i)

        async with asyncio.timeout(HARD_LIMIT):
            await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))

        assert mismatches == []
        assert sum(outcomes.values()) == REQUESTS
        # Both cut-off paths were exercised in earnest, and most requests still completed.
        assert outcomes["cancelled"] > REQUESTS * CANCEL_SHARE / 4, outcomes
        assert outcomes["timed out"] > REQUESTS * TIMEOUT_SHARE / 4, outcomes
        assert outcomes["completed"] > REQUESTS / 2, outcomes
        cut = outcomes["cancelled"] + outcomes["timed out"]
        assert interrupted_inside > 500, interrupted_inside  # cut while holding a connection
        assert cut - interrupted_inside > 500, outcomes  # cut while queued for one
        stats = pool.stats()
        assert stats.discarded.interrupted == interrupted_inside
        assert stats.discarded.total == interrupted_inside  # nothing else was thrown away
        assert stats.acquired == stats.released == entered
        assert stats.created == stats.discarded.total + stats.size
        assert server.requests >= outcomes["completed"]
        await assert_quiescent(pool, server, baseline, proxy=proxy)
