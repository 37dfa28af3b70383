"""``max_connecting``: connects in flight at once are bounded, for open(), growth and refill."""

from __future__ import annotations

import asyncio

import pytest

from aioconn import Pool, TCPConnector
from aioconn.testing import EchoServer
from gated import FakeResource, GatedConnector
from pool_helpers import until_waiting


async def admit_next(connector: GatedConnector, started: int, hanging: int) -> None:
    """Let the hanging connects finish; the next ones hang again. Check who started."""
    phase = connector.connect_phase
    phase.release()
    phase.hang()
    await phase.wait_hanging(hanging)
    for _ in range(20):  # give any connect beyond the bound the chance to start (it must not)
        await asyncio.sleep(0)
    assert (phase.calls, phase.hanging) == (started, hanging)


async def test_open_fills_min_size_a_few_connects_at_a_time() -> None:
    connector = GatedConnector()
    connector.connect_phase.hang()
    pool = Pool(connector, min_size=5, max_size=5, max_connecting=2)
    opening = asyncio.create_task(pool.open())
    await connector.connect_phase.wait_hanging(2)
    for _ in range(20):
        await asyncio.sleep(0)
    assert (connector.connect_phase.calls, connector.connect_phase.hanging) == (2, 2)
    assert pool.stats().opening == 5  # waiting for a turn counts as opening
    await admit_next(connector, started=4, hanging=2)
    await admit_next(connector, started=5, hanging=1)
    connector.connect_phase.release()
    await opening
    stats = pool.stats()
    assert (stats.idle, stats.opening, stats.created) == (5, 0, 5)
    await pool.close()


async def test_growth_for_waiters_is_bounded_too() -> None:
    connector = GatedConnector()
    async with Pool(connector, max_size=3, max_connecting=1) as pool:
        connector.connect_phase.hang()
        got: list[FakeResource] = []

        async def borrow() -> None:
            got.append(await pool.get())

        borrowers = [asyncio.create_task(borrow()) for _ in range(3)]
        await until_waiting(pool, 3)
        await connector.connect_phase.wait_hanging(1)
        assert pool.stats().opening == 3
        assert connector.connect_phase.calls == 1
        await admit_next(connector, started=2, hanging=1)
        await admit_next(connector, started=3, hanging=1)
        connector.connect_phase.release()
        await asyncio.gather(*borrowers)
        assert sorted(r.id for r in got) == [1, 2, 3]
        for resource in got:
            await pool.put(resource)
        assert pool.stats().created == 3


async def test_close_cancels_connects_running_and_waiting_their_turn() -> None:
    connector = GatedConnector()
    connector.connect_phase.hang()
    async with Pool(connector, max_size=2, max_connecting=1) as pool:
        first = asyncio.create_task(pool.get())
        second = asyncio.create_task(pool.get())
        await until_waiting(pool, 2)
        await connector.connect_phase.wait_hanging(1)
        await pool.close()  # cancels both openers: the one connecting, the one queued
        for task in (first, second):
            with pytest.raises(Exception, match="closed"):
                await task
        assert connector.connect_phase.calls == 1
        assert connector.connect_phase.cancelled == 1
        assert pool.stats().opening == 0


async def test_no_limit(echo_server: EchoServer) -> None:
    pool = Pool(
        TCPConnector("127.0.0.1", echo_server.port), min_size=30, max_size=30, max_connecting=None
    )
    async with pool:
        assert pool.stats().idle == 30
        assert echo_server.open_count == 30
