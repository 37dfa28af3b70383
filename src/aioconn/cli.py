"""The ``aioconn`` command: ``demo``, ``echo-server`` and ``proxy``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aioconn", description="asyncio connections and pools that always close"
    )
    parser.add_argument("--version", action="version", version=f"aioconn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log aioconn's events")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo_parser(commands)
    echo = commands.add_parser("echo-server", help="run the echo server until interrupted")
    echo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    echo.add_argument("--port", type=int, default=7007, help="port, 0 for any (default 7007)")
    echo.add_argument("--unix", metavar="PATH", help="listen on a Unix socket instead")
    _add_proxy_parser(commands)
    return parser


def _add_demo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="connections closing on every exit path, then a pool in a storm",
        description="Act one: one connection closes on four exit paths.\n"
        "Act two: a storm of requests, cancels, deadlines and resets through aioconn's Pool\n"
        "and through a naive asyncio.Queue pool, then a table of what each did.\n"
        "Exit status 0 only if aioconn kept every promise.",
        epilog="examples:\n"
        "  aioconn demo                   both acts; rich output when aioconn[cli] is installed\n"
        "  aioconn demo --quick --plain   a shorter storm, in plain text\n"
        "  aioconn demo --seed 2026       replay the storm of seed 2026",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--plain", action="store_true", help="plain text, even when rich is installed"
    )
    demo.add_argument(
        "--seed", type=_seed, metavar="N", help="replay the storm of seed N (default: random)"
    )
    demo.add_argument("--quick", action="store_true", help="a storm a fifth as long")


def _seed(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:80
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _add_proxy_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    proxy = commands.add_parser(
        "proxy",
        help="run a fault-injection proxy until interrupted",
        description="Forward TCP connections to an upstream server through toxics. The "
        "toxics act downstream (server to client); times are in seconds.",
    )
    proxy.add_argument("--listen", type=_host_port, required=True, metavar="HOST:PORT")
    proxy.add_argument("--upstream", type=_host_port, required=True, metavar="HOST:PORT")
    proxy.add_argument("--latency", type=float, metavar="S", help="delay every chunk by S")
    proxy.add_argument("--jitter", type=float, default=0.0, metavar="S", help="± S on latency")
    proxy.add_argument("--bandwidth", type=float, metavar="BPS", help="bytes per second")
    proxy.add_argument(
        "--reset-after", type=float, metavar="S", help="RST both sides S after a reply"
    )
    proxy.add_argument(
        "--timeout", type=float, metavar="S", help="drop data, close after S (0: never)"
    )
    proxy.add_argument("--slicer", type=int, metavar="BYTES", help="write in pieces of BYTES")
    proxy.add_argument("--seed", type=int, metavar="N", help="seed of the RNG (default: random)")


async def _serve_proxy(args: argparse.Namespace) -> None:
    from . import testing as t

    toxics: list[t.Toxic[Any]] = []
    if args.latency is not None or args.jitter:
        toxics.append(t.latency(args.latency or 0.0, args.jitter))
    if args.bandwidth is not None:
        toxics.append(t.bandwidth(args.bandwidth))
    if args.slicer is not None:
        toxics.append(t.slicer(args.slicer))
    if args.timeout is not None:
        toxics.append(t.timeout(args.timeout))
    if args.reset_after is not None:
        toxics.append(t.reset_peer(args.reset_after))
    (host, port), (up_host, up_port) = args.listen, args.upstream
    proxy = t.ChaosProxy(up_host, up_port, listen_host=host, listen_port=port, seed=args.seed)
    for toxic in toxics:
        proxy.add(toxic)
    async with proxy:
        print(
            f"chaos proxy listening on {proxy.host}:{proxy.port} -> {up_host}:{up_port} "
            f"(seed {proxy.seed}); toxics: {', '.join(h.name for h in proxy.toxics) or 'none'}; "
            "Ctrl-C stops it",
            flush=True,
        )
        await asyncio.Event().wait()


async def _serve_echo(host: str, port: int, path: str | None) -> None:
    from .testing import EchoServer

    async with EchoServer(host, port, path=path) as server:
        print(f"echo server listening on {server.address}; Ctrl-C stops it", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aioconn`` console script; returns the exit status."""
    args = _build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    if args.command == "demo":
        from ._demo import run_demo

        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
        return asyncio.run(run_demo(seed=seed, quick=args.quick, plain=args.plain))
    if args.command == "echo-server":
        if not 0 <= args.port <= 65535:
            print(f"aioconn: --port must be in 0..65535, got {args.port}", file=sys.stderr)
            return 2
        try:
            asyncio.run(_serve_echo(args.host, args.port, args.unix))
        except KeyboardInterrupt:
            return 0
        except OSError as exc:
            print(f"aioconn: cannot listen: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "proxy":
        try:
            asyncio.run(_serve_proxy(args))
        except KeyboardInterrupt:
            return 0
        except (OSError, ValueError, TypeError) as exc:
            print(f"aioconn: proxy: {exc}", file=sys.stderr)
            return 1
        return 0
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects unknown ones


if __name__ == "__main__":
    sys.exit(main())
