"""The ``aioconn`` command: ``demo`` and ``echo-server``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from . import __version__


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aioconn", description="asyncio connections and pools that always close"
    )
    parser.add_argument("--version", action="version", version=f"aioconn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log aioconn's events")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("demo", help="walk through connections closing on every exit path")
    echo = commands.add_parser("echo-server", help="run the echo server until interrupted")
    echo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    echo.add_argument("--port", type=int, default=7007, help="port, 0 for any (default 7007)")
    echo.add_argument("--unix", metavar="PATH", help="listen on a Unix socket instead")
    return parser


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

        return asyncio.run(run_demo())
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
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects unknown ones


if __name__ == "__main__":
    sys.exit(main())
