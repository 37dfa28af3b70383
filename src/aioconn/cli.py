"""The ``aioconn`` command: ``demo``, ``echo-server`` and ``proxy``.

Bad arguments, and anything that stops a server from starting (an address in use, an upstream
server nobody answers at, a host name that does not resolve), end with a one-line error and
exit status 2; Ctrl-C ends a server with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import __version__
from ._cli_toxics import TOXIC_FLAGS, build_toxics, directed, number, seconds

USAGE_ERROR = 2  # argparse's exit status for bad arguments; also used when a server cannot start
UPSTREAM_CHECK_TIMEOUT = 5.0  # seconds the proxy waits for its upstream server to answer

_Formatter = argparse.RawDescriptionHelpFormatter


class StartupError(Exception):
    """A server could not start: printed as one line, exit status 2."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aioconn",
        description="asyncio connections and pools that always close",
        formatter_class=_Formatter,
        epilog="examples:\n"
        "  aioconn demo\n"
        "  aioconn echo-server --port 7007\n"
        "  aioconn proxy --listen 127.0.0.1:7008 --upstream 127.0.0.1:7007 --latency 0.1\n"
        "  aioconn COMMAND --help    options and examples of one command",
    )
    parser.add_argument("--version", action="version", version=f"aioconn {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log aioconn's events (DEBUG) to stderr"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo_parser(commands)
    _add_echo_parser(commands)
    _add_proxy_parser(commands)
    return parser


# -- demo --------------------------------------------------------------------------------------


def _add_demo_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """The ``demo`` subcommand's parser; its options go here, and reach ``_run_demo``."""
    demo = commands.add_parser(
        "demo",
        help="connections closing on every exit path, then a pool in a storm",
        description="Act one: one connection closes on four exit paths.\n"
        "Act two: a storm of requests, cancels, deadlines and resets through aioconn's Pool\n"
        "and through a naive asyncio.Queue pool, then a table of what each did.\n"
        "Exit status 0 only if aioconn kept every promise.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  aioconn demo                   both acts; rich output when aioconn[cli] is installed\n"
        "  aioconn demo --quick --plain   a shorter storm, in plain text\n"
        "  aioconn demo --seed 2026       replay the storm of seed 2026\n"
        "  aioconn -v demo                with every event logged",
    )
    demo.add_argument(
        "--plain", action="store_true", help="plain text, even when rich is installed"
    )
    demo.add_argument(
        "--seed", type=_seed, metavar="N", help="replay the storm of seed N (default: random)"
    )
    demo.add_argument("--quick", action="store_true", help="a storm a fifth as long")
    demo.set_defaults(run=_run_demo)
    return demo


def _seed(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def _run_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    return asyncio.run(run_demo(seed=seed, quick=args.quick, plain=args.plain))


# -- echo-server -------------------------------------------------------------------------------


def _add_echo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    echo = commands.add_parser(
        "echo-server",
        help="run the echo server until interrupted",
        description="Serve TCP (or a Unix socket) and write back every byte received, until "
        "Ctrl-C. A Unix socket file is removed on exit.",
        formatter_class=_Formatter,
        epilog="examples:\n"
        "  aioconn echo-server                         # 127.0.0.1:7007\n"
        "  aioconn echo-server --port 0                # any free port (printed)\n"
        "  aioconn echo-server --unix /tmp/echo.sock",
    )
    echo.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    echo.add_argument(
        "--port", type=_port, default=7007, help="port to bind, 0 for any free one (default: 7007)"
    )
    echo.add_argument(
        "--unix", metavar="PATH", help="listen on a Unix socket at PATH instead of TCP"
    )
    echo.set_defaults(run=_run_echo)


def _run_echo(args: argparse.Namespace) -> int:
    return _serve(_serve_echo(args.host, args.port, args.unix), "echo-server")


async def _serve_echo(host: str, port: int, path: str | None) -> None:
    from .testing import EchoServer

    server = EchoServer(host, port, path=path)
    try:
        await server.start()
    except OSError as exc:
        where = f"--unix {path}" if path is not None else f"{host}:{port}"
        raise StartupError(f"cannot listen on {where}: {_os_reason(exc)}") from exc
    try:
        print(f"echo server listening on {server.address}; Ctrl-C stops it", flush=True)
        await asyncio.Event().wait()
    finally:
        await server.stop()


# -- proxy -------------------------------------------------------------------------------------

_PROXY_EPILOG = """\
Each toxic option applies in --direction (downstream: server to client, by default); prefix its
value with up:, down: or both: to choose per toxic, and repeat an option to add one per
direction. Times are seconds, as decimals.

examples:
  # 100 ms +- 20 ms on every reply; --seed 1 makes the jitter reproducible
  aioconn proxy --listen 127.0.0.1:7008 --upstream 127.0.0.1:7007 --latency 0.1 --jitter 0.02
  # requests slow (upstream), replies cut after 10 bytes (downstream)
  aioconn proxy --listen 127.0.0.1:7008 --upstream 127.0.0.1:7007 --latency up:0.2 --limit-data 10
  # a black hole on half the connections, both ways
  aioconn proxy --listen 127.0.0.1:7008 --upstream 127.0.0.1:7007 --timeout both:0 --toxicity 0.5
  # a server that takes 2 s to close its side
  aioconn proxy --listen 127.0.0.1:7008 --upstream 127.0.0.1:7007 --slow-close 2

exit status: 0 after Ctrl-C; 2 for a bad argument, or when the proxy cannot start (its listen
address in use or invalid, the upstream server not answering; --no-upstream-check skips that)."""


def _add_proxy_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    proxy = commands.add_parser(
        "proxy",
        help="run a fault-injection proxy until interrupted",
        description="Forward TCP connections to an upstream server through toxics (the "
        "faults of aioconn.testing.ChaosProxy), until Ctrl-C.",
        formatter_class=_Formatter,
        epilog=_PROXY_EPILOG,
    )
    proxy.add_argument(
        "--listen",
        type=_host_port,
        required=True,
        metavar="HOST:PORT",
        help="where clients connect, e.g. 127.0.0.1:7008 ([::1]:7008; port 0: any free one)",
    )
    proxy.add_argument(
        "--upstream",
        type=_host_port,
        required=True,
        metavar="HOST:PORT",
        help="the server to forward to, e.g. 127.0.0.1:7007",
    )
    for flag in TOXIC_FLAGS:
        proxy.add_argument(
            flag.option,
            type=directed(flag.parse),
            action="append",
            default=[],
            metavar=f"[DIR:]{flag.metavar}",
            help=flag.help,
        )
    proxy.add_argument(
        "--jitter",
        type=seconds,
        default=0.0,
        metavar="S",
        help="with --latency: vary each delay by up to +- S, e.g. 0.02 (default: 0)",
    )
    proxy.add_argument(
        "--direction",
        choices=("downstream", "upstream", "both"),
        default="downstream",
        help="the direction of toxics given without a DIR: prefix (default: downstream)",
    )
    proxy.add_argument(
        "--toxicity",
        type=_probability,
        default=1.0,
        metavar="P",
        help="probability in 0..1 that each toxic applies to a connection, e.g. 0.5 (default: 1)",
    )
    proxy.add_argument(
        "--seed",
        type=_natural,
        metavar="N",
        help="seed of the random choices (toxicity, jitter, slices), e.g. 1 (default: random,"
        " printed)",
    )
    proxy.add_argument(
        "--no-upstream-check",
        action="store_true",
        help="start even if the upstream server does not answer yet (default: check once)",
    )
    proxy.set_defaults(run=_run_proxy, parser=proxy)


def _run_proxy(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    toxics = build_toxics(args, fail=lambda message: _fail(parser, message))
    return _serve(_serve_proxy(args, toxics), "proxy")


async def _serve_proxy(args: argparse.Namespace, toxics: list[Any]) -> None:
    from .testing import ChaosProxy

    (host, port), (up_host, up_port) = args.listen, args.upstream
    if not args.no_upstream_check:
        await _check_upstream(up_host, up_port)
    proxy = ChaosProxy(up_host, up_port, listen_host=host, listen_port=port, seed=args.seed)
    for toxic in toxics:
        proxy.add(toxic)
    try:
        await proxy.start()
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {_os_reason(exc)}") from exc
    try:
        names = ", ".join(handle.name for handle in proxy.toxics) or "none"
        print(
            f"chaos proxy listening on {proxy.host}:{proxy.port} -> {up_host}:{up_port} "
            f"(seed {proxy.seed}); toxics: {names}; Ctrl-C stops it",
            flush=True,
        )
        await asyncio.Event().wait()
    finally:
        await proxy.close()


async def _check_upstream(host: str, port: int) -> None:
    """Fail fast on a typo'd upstream address, instead of resetting every client later."""
    try:
        async with asyncio.timeout(UPSTREAM_CHECK_TIMEOUT):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else _os_reason(exc)
        raise StartupError(
            f"upstream {host}:{port} is unreachable: {reason} (--no-upstream-check starts anyway)"
        ) from exc
    writer.close()
    with contextlib.suppress(OSError):  # it answered; how it closed does not matter
        await writer.wait_closed()


# -- argument types: errors name what was expected, argparse adds the flag ----------------------


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:80
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:7007, got {text!r}")
    return host, int(port)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535, got {text!r}")
    return int(text)


def _probability(text: str) -> float:
    return number(text, "a probability in 0..1 such as 0.5", lambda v: 0 <= v <= 1)


def _natural(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(text)


# -- running -----------------------------------------------------------------------------------


def _fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.error(message)  # usage, "aioconn proxy: error: ...", exit status 2


def _os_reason(exc: OSError) -> str:
    # The OS's words ("Connection refused"), not the event loop's ("Connect call failed ...").
    if exc.errno is not None and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


def _serve(server: Any, command: str) -> int:
    """Run a server coroutine until Ctrl-C (status 0) or a startup error (one line, status 2)."""
    try:
        asyncio.run(server)
    except KeyboardInterrupt:
        return 0
    except StartupError as exc:
        print(f"aioconn {command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aioconn`` console script; returns the exit status."""
    args = _build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
