"""Strict FIFO: waiters are served in arrival order and newcomers never barge past them."""

from __future__ import annotations

import asyncio

from aioconn import Pool
from pool_helpers import ThingFactory, until_waiting


async def test_one_connection_hundred_waiters_served_in_arrival_order() -> None:
    factory = ThingFactory()
    order: list[int] = []
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        held = await pool.get()

        async def waiter(i: int) -> None:
            async with pool.acquire():
                order.append(i)
                await asyncio.sleep(0)  # hold across a suspension: others must keep waiting

        tasks = []
        for i in range(100):
            tasks.append(asyncio.create_task(waiter(i)))
            await until_waiting(pool, i + 1)
        await pool.put(held)
        await asyncio.gather(*tasks)
        assert order == list(range(100))
        stats = pool.stats()
        assert (stats.acquired, stats.created, stats.waiting) == (101, 1, 0)


async def test_newcomer_queues_behind_existing_waiters() -> None:
    factory = ThingFactory()
    order: list[str] = []
    async with Pool(factory.open, close=factory.close, max_size=1) as pool:
        held = await pool.get()

        async def user(name: str) -> None:
            async with pool.acquire():
                order.append(name)

        early = asyncio.create_task(user("early"))
        await until_waiting(pool, 1)
        await pool.put(held)  # handed to "early", which has not run yet
        late = asyncio.create_task(user("late"))  # arrives while the hand-off is in flight
        await asyncio.gather(early, late)
        assert order == ["early", "late"]
