"""aioconn's benchmark suite (issue #5): ``python -m benchmarks.run [--quick]``.

Every scenario measures its contenders side by side, interleaved round by round, and writes
docs/benchmarks.md plus one chart per scenario in docs/benchmarks/.
"""
