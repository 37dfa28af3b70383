"""S7: PostgreSQL through four pools, and the cancellation storm.

The server is a real PostgreSQL (``servers.postgres()``) on 127.0.0.1. Every contender gets the
same pool size, opened full before the clock starts, and the same workers:

- *asyncpg pool*: ``asyncpg.create_pool`` (the baseline of every ratio; it resets the session
  on every release);
- *aioconn + AsyncpgConnector*: ``aioconn.Pool`` of the driver connector, with its default
  ``reset="transaction"`` (no round trip on a clean return: "without reset") and with
  ``reset="session"`` (asyncpg's ``Connection.reset()`` on every return, as asyncpg's pool);
- *psycopg_pool*: ``AsyncConnectionPool`` with ``autocommit=True`` (asyncpg's behaviour: without
  it every query would add a ``BEGIN``/``COMMIT``).

Every reply is checked. Each pool's connections run ``init``/``configure``, which counts them:
the server sessions a contender opened.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from .checks import CheckFailed
from .harness import Case, Metrics, interleave, run_once
from .plan import Plan
from .stats import percentile

SELECT_1 = "SELECT 1"
ROWS_100 = "SELECT g, md5(g::text) FROM generate_series(1, 100) g"
STORM = "SELECT $1::int FROM pg_sleep($2::float8)"
QUERIES = {"select1": "SELECT 1", "rows100": "100-row query"}

BASELINE = "asyncpg"


@dataclass(frozen=True)
class PgContender:
    key: str
    label: str
    is_floor: bool = False


S7_CONTENDERS = [
    PgContender(BASELINE, "asyncpg create_pool (resets on release)", is_floor=True),
    PgContender("aioconn", "aioconn Pool + AsyncpgConnector (no reset)"),
    PgContender("aioconn_reset", 'aioconn Pool + AsyncpgConnector(reset="session")'),
    PgContender("psycopg", "psycopg_pool AsyncConnectionPool (autocommit)"),
]
STORM_CONTENDERS = [S7_CONTENDERS[0], S7_CONTENDERS[1]]


@dataclass
class PgPool:
    """One contender's open pool: ``async with acquire() as conn``, the queries, ``close()``."""

    acquire: Callable[[], AbstractAsyncContextManager[Any]]
    close: Callable[[], Awaitable[None]]
    one: Callable[[Any], Awaitable[Any]]  # SELECT 1 -> its value
    rows: Callable[[Any], Awaitable[Any]]  # the 100-row query -> its rows
    storm: Callable[[Any, int, float], Awaitable[Any]]  # STORM -> the value asked for
    sessions: list[int]  # one entry per server session opened


async def open_pool(contender: PgContender, dsn: str, size: int) -> PgPool:
    sessions: list[int] = []
    if contender.key == "psycopg":
        return await _open_psycopg(dsn, size, sessions)

    def count(conn: Any) -> None:
        sessions.append(conn.get_server_pid())

    async def one(conn: Any) -> Any:
        return await conn.fetchval(SELECT_1)

    async def rows(conn: Any) -> Any:
        return await conn.fetch(ROWS_100)

    async def storm(conn: Any, value: int, sleep: float) -> Any:
        return await conn.fetchval(STORM, value, sleep)

    if contender.key == BASELINE:
        import asyncpg

        native = await asyncpg.create_pool(dsn, min_size=size, max_size=size, init=_async(count))
        return PgPool(native.acquire, native.close, one, rows, storm, sessions)
    import aioconn
    from aioconn.drivers import AsyncpgConnector

    reset = "session" if contender.key == "aioconn_reset" else "transaction"
    connector = AsyncpgConnector(dsn, reset=reset, init=count)
    pool: aioconn.Pool[Any] = aioconn.Pool(connector, min_size=size, max_size=size)
    await pool.open()
    return PgPool(pool.acquire, pool.close, one, rows, storm, sessions)


def _async(hook: Callable[[Any], None]) -> Callable[[Any], Awaitable[None]]:
    async def run(conn: Any) -> None:
        hook(conn)

    return run


async def _open_psycopg(dsn: str, size: int, sessions: list[int]) -> PgPool:
    from psycopg_pool import AsyncConnectionPool

    async def count(conn: Any) -> None:
        sessions.append(conn.info.backend_pid)

    native: Any = AsyncConnectionPool(
        dsn,
        min_size=size,
        max_size=size,
        open=False,
        kwargs={"autocommit": True},
        configure=count,
    )
    await native.open(wait=True)

    async def one(conn: Any) -> Any:
        cursor = await conn.execute(SELECT_1)
        row = await cursor.fetchone()
        return row[0]

    async def rows(conn: Any) -> Any:
        cursor = await conn.execute(ROWS_100)
        return await cursor.fetchall()

    async def storm(conn: Any, value: int, sleep: float) -> Any:
        cursor = await conn.execute("SELECT %s::int FROM pg_sleep(%s::float8)", (value, sleep))
        row = await cursor.fetchone()
        return row[0]

    return PgPool(native.connection, native.close, one, rows, storm, sessions)


# -- throughput --------------------------------------------------------------------------------


def _check_rows(rows: Any, who: str) -> None:
    if len(rows) != 100 or rows[0][0] != 1 or rows[-1][0] != 100 or len(rows[-1][1]) != 32:
        raise CheckFailed(f"{who}: the 100-row query returned {len(rows)} rows, not 1..100")


async def s7_queries(
    contender: PgContender, dsn: str, query: str, workers: int, queries: int, size: int
) -> Metrics:
    """``workers`` tasks x ``queries`` of acquire / one query / release, each reply checked."""
    pool = await open_pool(contender, dsn, size)
    latencies: list[float] = []
    clock = time.perf_counter
    run = pool.one if query == "select1" else pool.rows
    acquire, label = pool.acquire, contender.label

    async def worker() -> None:
        for _ in range(queries):
            asked = clock()
            async with acquire() as conn:
                got = await run(conn)
            latencies.append(clock() - asked)
            if query == "select1":
                if got != 1:
                    raise CheckFailed(f"{label}: SELECT 1 returned {got!r}")
            else:
                _check_rows(got, label)

    try:
        started = clock()
        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = clock() - started
    finally:
        await pool.close()
    if len(pool.sessions) > size:
        raise CheckFailed(f"{label}: {len(pool.sessions)} server sessions, max_size={size}")
    latencies.sort()
    return {
        "rate": workers * queries / elapsed,
        "lat_p50": percentile(latencies, 0.50),
        "lat_p99": percentile(latencies, 0.99),
        "lat_max": latencies[-1],
        "sessions": len(pool.sessions),
    }


def run_s7(plan: Plan, dsn: str) -> list[Case]:
    cases = []
    for query, title in QUERIES.items():
        case = Case("S7", f"{title}, pool {plan.s7_pool}, {plan.s7_workers} workers")
        interleave(
            case,
            S7_CONTENDERS,
            plan.heavy_rounds,
            lambda c, _, query=query: run_once(
                lambda: s7_queries(c, dsn, query, plan.s7_workers, plan.s7_queries, plan.s7_pool),
                budget=plan.budget,
            ),
        )
        cases.append(case)
    cases.append(run_storm(plan, dsn))
    return cases


# -- the cancellation storm --------------------------------------------------------------------


STORM_TIMEOUT = (0.001, 0.060)  # seconds: each call's timeout, drawn uniformly
STORM_SLEEP = 0.080  # half the queries sleep up to this long on the server, half not at all


async def s7_storm(
    contender: PgContender, dsn: str, workers: int, calls: int, size: int, seed: int
) -> Metrics:
    """Each call: a random value, a random 1-60 ms timeout around acquire + query + release,
    a query that sleeps 0 or up to 80 ms on the server. Every value that comes back is checked;
    a timeout during the query counts as a cancelled query."""
    pool = await open_pool(contender, dsn, size)
    initial = len(pool.sessions)
    acquire, storm, label = pool.acquire, pool.storm, contender.label
    tally = {"ok": 0, "cancelled": 0, "acquire_timeouts": 0, "errors": 0}
    errors: list[str] = []

    async def worker(rng: random.Random) -> None:
        for _ in range(calls):
            value = rng.randrange(1, 2**31)
            sleep = rng.uniform(0.0, STORM_SLEEP) if rng.random() < 0.5 else 0.0
            in_query = False
            try:
                async with asyncio.timeout(rng.uniform(*STORM_TIMEOUT)):
                    async with acquire() as conn:
                        in_query = True
                        got = await storm(conn, value, sleep)
            except TimeoutError:
                tally["cancelled" if in_query else "acquire_timeouts"] += 1
                continue
            except Exception as exc:
                tally["errors"] += 1
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if got != value:
                raise CheckFailed(f"{label}: asked for {value}, got {got!r}")
            tally["ok"] += 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(random.Random(seed * 1000 + n)) for n in range(workers)))
        elapsed = time.perf_counter() - started
        # Still sound afterwards: every connection answers its own question.
        for value in range(size):
            async with acquire() as conn:
                got = await storm(conn, value, 0.0)
            if got != value:
                raise CheckFailed(f"{label}: after the storm, asked for {value}, got {got!r}")
    finally:
        await pool.close()
    total = workers * calls
    new = len(pool.sessions) - initial
    return {
        "success": tally["ok"] / total,
        "calls_per_s": total / elapsed,
        "cancelled": tally["cancelled"],
        "acquire_timeouts": tally["acquire_timeouts"],
        "errors": tally["errors"],
        "new_sessions": new,
        "new_per_100": 100 * new / tally["cancelled"] if tally["cancelled"] else 0.0,
    }


def run_storm(plan: Plan, dsn: str) -> Case:
    case = Case(
        "S7",
        f"cancellation storm, pool {plan.s7_pool}, {plan.s7_storm_workers} workers"
        f" \u00d7 {plan.s7_storm_calls} calls",
    )
    interleave(
        case,
        STORM_CONTENDERS,
        plan.heavy_rounds,
        lambda c, round_no: run_once(
            lambda: s7_storm(
                c, dsn, plan.s7_storm_workers, plan.s7_storm_calls, plan.s7_pool, round_no
            ),
            budget=plan.budget,
        ),
    )
    return case
