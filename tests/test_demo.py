"""``aioconn demo``: both acts run, the pool keeps every promise, and the output says so.

The demo runs as the console script would, in a subprocess, seeded and ``--quick``. What a
seed fixes is asserted exactly (the plan, the progress lines, the promises); what the network's
timing decides (how many requests completed) is asserted as a whole.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import subprocess
import sys

import pytest

from aioconn._demo_plan import make_plan
from aioconn.cli import main

SEED = 1
PROMISE_ROWS = (
    "ended any other way",
    "replies from another request",
    "reused after a cut-off or failure",
    "waiters overtaken (FIFO)",
    "discarded, by reason",
    "close() with 2 stuck, bound 0.5 s",
    "stranded when the storm ended",
    "open on the server after close",
)


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "aioconn", "demo", "--quick", "--seed", str(SEED), *args],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
        check=False,
    )


def table_row(out: str, label: str) -> list[str]:
    """The cells of the summary row starting with ``label`` (cells are 2+ spaces apart)."""
    (line,) = [x for x in out.splitlines() if x.strip().startswith(label)]
    return re.split(r"\s{2,}", line.strip())


def test_plain_demo_keeps_every_promise_and_shows_the_naive_pool_failing() -> None:
    result = run_demo("--plain")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert result.stderr == ""
    assert "4 of 4 steps behaved as shown; server saw 4 connections opened and 4 closed" in out
    plan = make_plan(SEED, quick=True)
    assert (plan.count("cancel"), plan.count("deadline"), len(plan.requests)) == (133, 165, 800)
    assert "800 requests from 200 concurrent tasks share a pool of 4 connections" in out
    assert "133 requests are cancelled and\n    165 run under a deadline" in out
    for label in ("aioconn Pool", "naive asyncio.Queue pool"):
        marks = re.findall(rf"^    {re.escape(label)}: (\d+)/800 requests finished$", out, re.M)
        assert marks == ["200", "400", "600", "800"]
    for label in PROMISE_ROWS:
        assert table_row(out, label)[-1] == "kept", label
    assert table_row(out, "replies from another request")[1] == "0"
    assert table_row(out, "reused after a cut-off or failure")[1] == "0"
    assert table_row(out, "waiters overtaken (FIFO)")[1] == "0"
    assert table_row(out, "open on the server after close")[1:] == ["0", "0", "kept"]
    assert table_row(out, "stranded when the storm ended")[1:] == ["0", "0", "kept"]
    close = table_row(out, "close() with 2 stuck")[1]
    assert re.fullmatch(r"\d\.\d\d s, aborted 2(, pool_closed \d)?", close), close
    completed, cut = table_row(out, "got a reply"), table_row(out, "cancelled / timed out")
    cancelled, timed_out = (int(n) for n in cut[1].split(" / "))
    failed = int(table_row(out, "failed (reset by the network)")[1])
    assert int(completed[1]) + cancelled + timed_out + failed == 800
    # Each reply a caller got, the server sent; it also answered some whose caller was gone.
    assert int(table_row(out, "answered, by the server's count")[1]) >= int(completed[1])
    assert "BROKEN" not in out
    assert "aioconn kept all 7 promises." in out
    naive = re.search(
        r"The naive pool handed (\d+) callers another request's reply, and (\d+) a connection",
        out,
    )
    assert naive is not None
    # What goes wrong there is counted, not staged; with this seed it goes wrong plenty.
    assert int(naive[1]) + int(naive[2]) > 100, naive[0]


def test_rich_demo_draws_a_table_without_colour_into_a_pipe() -> None:
    result = run_demo()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\x1b[" not in result.stdout  # not a terminal: no colour, no cursor movement
    assert "┃" in result.stdout  # rich's table, not the plain one
    assert "aioconn kept all 7 promises." in result.stdout


def run_in_terminal(env: dict[str, str]) -> str:
    """The demo's output as a terminal receives it (stdout is a pseudo-terminal)."""
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "aioconn", "demo", "--quick", "--seed", str(SEED)]
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env
    ) as process:
        os.close(follower)
        chunks: list[bytes] = []
        with contextlib.suppress(OSError):  # EIO once the demo has exited and closed its end
            while chunk := os.read(leader, 65536):
                chunks.append(chunk)
        os.close(leader)
        assert process.wait(timeout=50) == 0
    return b"".join(chunks).decode()


COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-7]|9[0-7]|38;[0-9;]+)m")  # a foreground colour


def test_rich_demo_colours_a_terminal_unless_no_color_is_set() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONASYNCIODEBUG", "NO_COLOR")}
    env |= {"COLUMNS": "120", "TERM": "xterm-256color"}
    coloured = run_in_terminal(env)
    assert COLOUR.search(coloured), coloured[-2000:]
    assert "aioconn kept all 7 promises." in coloured
    plain = run_in_terminal(env | {"NO_COLOR": "1"})
    assert COLOUR.search(plain) is None, plain[-2000:]
    assert "aioconn kept all 7 promises." in plain


def test_a_seed_that_is_not_a_number_is_an_argument_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--seed", "soon"])
    assert exit_info.value.code == 2
    assert "expected a non-negative integer, got 'soon'" in capsys.readouterr().err
