"""The ``aioconn`` command: help and examples everywhere, one-line errors with status 2."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest

import aioconn
from aioconn import cli
from aioconn._cli_toxics import build_toxics
from aioconn.testing import EchoServer
from process_helpers import start_cli


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``aioconn ARGV`` in this process: (exit status, stdout, stderr)."""
    status: object
    try:
        status = cli.main(list(argv))
    except SystemExit as exited:
        status = exited.code
    assert isinstance(status, int)
    out, err = capsys.readouterr()
    return status, out, err


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    [commands] = [
        a for a in cli._build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ]
    return dict(commands.choices)


@pytest.fixture
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"aioconn {aioconn.__version__}\n", "")


def test_every_subcommand_has_examples_and_every_flag_has_help() -> None:
    parsers = subcommand_parsers()
    assert sorted(parsers) == ["demo", "echo-server", "proxy"]
    for name, parser in parsers.items():
        text = parser.format_help()
        assert "examples:\n" in text, name
        assert f"\n  aioconn {name}" in text, name
        for action in parser._actions:
            assert action.help, f"aioconn {name} {action.option_strings}: no help text"
            assert action.help != argparse.SUPPRESS


def test_top_level_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert "examples:\n  aioconn demo\n" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--latency", "-1"], "argument --latency: expected seconds >= 0 such as 0.1, got '-1'"),
        (["--latency", "nan"], "argument --latency: expected seconds >= 0 such as 0.1, got 'nan'"),
        (
            ["--latency", "sideways:0.1"],
            "argument --latency: expected up:, down: or both: before the value, got 'sideways:'",
        ),
        (
            ["--toxicity", "1.5"],
            "argument --toxicity: expected a probability in 0..1 such as 0.5, got '1.5'",
        ),
        (["--limit-data", "-3"], "argument --limit-data: expected a whole number >= 0, got '-3'"),
        (["--slicer", "0"], "argument --slicer: expected a whole number >= 1, got '0'"),
        (
            ["--slow-close", "x"],
            "argument --slow-close: expected seconds >= 0 such as 0.1, got 'x'",
        ),
        (
            ["--bandwidth", "0"],
            "argument --bandwidth: expected bytes per second > 0 such as 1000, got '0'",
        ),
        (["--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
        (
            ["--latency", "0.1", "--latency", "0.2"],
            "argument --latency: given twice for the downstream direction",
        ),
        (
            ["--latency", "both:0.1", "--latency", "up:0.2"],
            "argument --latency: given twice for the upstream direction",
        ),
        (["--jitter", "0.1"], "argument --jitter: needs --latency (jitter varies the latency)"),
        (
            ["--direction", "sideways"],
            "argument --direction: invalid choice: 'sideways' (choose from 'downstream',"
            " 'upstream', 'both')",
        ),
    ],
)
def test_bad_proxy_arguments_name_the_flag_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    base = ["proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"]
    status, out, err = run(capsys, *base, *argv)
    assert (status, out) == (2, "")
    assert err.splitlines()[-1] == f"aioconn proxy: error: {message}"
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["proxy", "--listen", "nowhere", "--upstream", "127.0.0.1:1"],
            "aioconn proxy: error: argument --listen: expected HOST:PORT such as 127.0.0.1:7007,"
            " got 'nowhere'",
        ),
        (
            ["echo-server", "--port", "70000"],
            "aioconn echo-server: error: argument --port: expected a port in 0..65535, got '70000'",
        ),
    ],
)
def test_bad_addresses_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert err.splitlines()[-1] == message


def test_unreachable_upstream_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], free_port: int
) -> None:
    argv = ["proxy", "--listen", "127.0.0.1:0", "--upstream", f"127.0.0.1:{free_port}"]
    assert run(capsys, *argv) == (
        2,
        "",
        f"aioconn proxy: error: upstream 127.0.0.1:{free_port} is unreachable: Connection"
        " refused (--no-upstream-check starts anyway)\n",
    )


def test_listen_port_in_use_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy, socket.socket() as upstream:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        upstream.bind(("127.0.0.1", 0))
        upstream.listen()  # answers the upstream check from its backlog
        port, up_port = busy.getsockname()[1], upstream.getsockname()[1]
        argv = ["proxy", "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{up_port}"]
        assert run(capsys, *argv) == (
            2,
            "",
            f"aioconn proxy: error: cannot listen on 127.0.0.1:{port}: Address already in use\n",
        )


def test_echo_server_port_in_use_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run(capsys, "echo-server", "--port", str(port)) == (
            2,
            "",
            f"aioconn echo-server: error: cannot listen on 127.0.0.1:{port}: Address already"
            " in use\n",
        )


def test_toxics_per_direction_with_toxicity() -> None:
    parser = cli._build_parser()
    args = parser.parse_args(
        [
            *("proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"),
            *("--latency", "0.1", "--latency", "up:0.2", "--jitter", "0.01"),
            *("--limit-data", "both:7", "--slow-close", "down:0.5", "--timeout", "up:0"),
            *("--toxicity", "0.25"),
        ]
    )
    toxics = build_toxics(args, fail=parser.error)
    assert [(t.kind, t.direction, t.toxicity) for t in toxics] == [
        ("latency", "downstream", 0.25),
        ("latency", "upstream", 0.25),
        ("limit_data", "upstream", 0.25),
        ("limit_data", "downstream", 0.25),
        ("timeout", "upstream", 0.25),
        ("slow_close", "downstream", 0.25),
    ]
    assert [repr(t) for t in toxics[:2]] == [
        repr(aioconn.testing.latency(0.1, 0.01, toxicity=0.25)),
        repr(aioconn.testing.latency(0.2, 0.01, direction="upstream", toxicity=0.25)),
    ]


def test_direction_both_applies_to_unprefixed_toxics() -> None:
    parser = cli._build_parser()
    args = parser.parse_args(
        [
            *("proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"),
            *("--direction", "both", "--slicer", "3", "--reset-after", "down:1"),
        ]
    )
    toxics = build_toxics(args, fail=parser.error)
    assert [(t.kind, t.direction) for t in toxics] == [
        ("slicer", "upstream"),
        ("slicer", "downstream"),
        ("reset_peer", "downstream"),
    ]


async def _start(*argv: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await start_cli(*argv)
    assert process.stdout is not None
    return process, (await process.stdout.readline()).decode()


async def _interrupt(process: asyncio.subprocess.Process) -> bytes:
    process.send_signal(signal.SIGINT)
    _, err = await process.communicate()  # to EOF: the pipe transports close only then
    return err


async def test_cli_proxy_truncates_requests_upstream(echo_server: EchoServer) -> None:
    process, line = await _start(
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        f"127.0.0.1:{echo_server.port}",
        "--limit-data",
        "up:3",
        "--seed",
        "5",
    )
    try:
        assert line.endswith(" (seed 5); toxics: limit_data_upstream; Ctrl-C stops it\n"), line
        port = int(line.split()[4].rpartition(":")[2])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello\n")
        assert await reader.read() == b""  # closed once three bytes went through
        writer.close()
        await writer.wait_closed()
        await echo_server.wait_open_count(0)
        assert echo_server.bytes_received == 3  # b"hel"
    finally:
        err = await _interrupt(process)
    assert (process.returncode, err) == (0, b"")


async def test_echo_server_unix_removes_its_socket_file(tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    process, line = await _start("echo-server", "--unix", str(path))
    try:
        assert line == f"echo server listening on unix:{path}; Ctrl-C stops it\n"
        assert path.is_socket()
        async with aioconn.connect_unix(path, read_timeout=5) as conn:
            await conn.send(b"ping\n")
            assert await conn.readline() == b"ping\n"
    finally:
        err = await _interrupt(process)
    assert (process.returncode, err) == (0, b"")
    assert not path.exists()


async def test_echo_server_stop_removes_only_its_own_socket_file(tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    async with EchoServer(path=path):
        assert path.is_socket()
    assert not path.exists()
    server = await EchoServer(path=path).start()
    os.unlink(path)
    path.write_text("someone else's file")  # not the server's socket any more: left alone
    await server.stop()
    assert path.read_text() == "someone else's file"
