"""The echo server of S3-S5, run in its own process: ``python -m benchmarks.echo_server``.

A bare ``asyncio.Protocol`` that writes back what it receives (on uvloop when installed), so the
server costs as little CPU as possible and the client side, the pools, is what is measured. It
binds 127.0.0.1 on a free port, prints ``LISTENING <host> <port>`` on stdout, and exits when its
standard input closes (so it never outlives the benchmark) or on SIGTERM/SIGINT.

With ``--latency SECONDS`` it serves through an ``aioconn.testing.ChaosProxy`` in the same
process that holds every reply back that long (a ``latency`` toxic, downstream), and the address
printed is the proxy's: S5 opens connections through it as over a network.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

HOST = "127.0.0.1"
BACKLOG = 4096  # S5 opens 1,000 connections at once


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def serve(host: str = HOST, latency: float = 0.0) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, host, 0, backlog=BACKLOG)
    port = server.sockets[0].getsockname()[1]
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(server)
        if latency > 0:
            from aioconn.testing import ChaosProxy
            from aioconn.testing import latency as delay

            proxy = await stack.enter_async_context(ChaosProxy(host, port, listen_host=host))
            proxy.add(delay(latency))
            port = proxy.port
        print(f"LISTENING {host} {port}", flush=True)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_reader(sys.stdin.fileno(), _on_stdin, stop)
        await stop.wait()


def _on_stdin(stop: asyncio.Event) -> None:
    if not sys.stdin.buffer.read1(4096):  # EOF: the benchmark is gone
        stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-uvloop", action="store_true", help="serve on asyncio's own loop")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="serve through a ChaosProxy adding this delay"
    )
    args = parser.parse_args()
    factory = None
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(latency=args.latency))


if __name__ == "__main__":
    main()
