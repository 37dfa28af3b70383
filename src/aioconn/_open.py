"""Opening a transport: resolution, happy eyeballs over every address, socket options.

This is the one place that turns the OS's connect failures into ``ConnectError``s that name
every address tried and why it failed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ._options import ConnectOptions
from .errors import ConnectError, ConnectTimeout

Opened = tuple[asyncio.Transport, asyncio.StreamReaderProtocol]
_Attempt = Callable[[], Awaitable[Opened]]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a connection goes: a TCP host and port, or a Unix socket path."""

    host: str | None = None
    port: int = 0
    path: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        if self.host is not None and ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


async def open_transport(
    target: Target, options: ConnectOptions, reader_factory: Callable[[], asyncio.StreamReader]
) -> tuple[asyncio.Transport, asyncio.StreamReaderProtocol, asyncio.StreamReader]:
    """Open one transport to ``target`` within ``options.connect_timeout``."""
    loop = asyncio.get_running_loop()
    readers: dict[int, asyncio.StreamReader] = {}

    def new_protocol() -> asyncio.StreamReaderProtocol:
        reader = reader_factory()
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        readers[id(protocol)] = reader
        return protocol

    try:
        async with asyncio.timeout(options.connect_timeout):
            if target.path is not None:
                transport, protocol = await _open_unix(loop, target, options, new_protocol)
            else:
                transport, protocol = await _open_tcp(loop, target, options, new_protocol)
    except TimeoutError as exc:
        if isinstance(exc, ConnectError):
            raise
        raise ConnectTimeout(
            f"could not connect to {target} within connect_timeout={options.connect_timeout} s",
            attempts=((str(target), "timed out"),),
        ) from exc
    _apply_socket_options(transport, options)
    return transport, protocol, readers[id(protocol)]


async def _open_unix(
    loop: asyncio.AbstractEventLoop,
    target: Target,
    options: ConnectOptions,
    new_protocol: Callable[[], asyncio.StreamReaderProtocol],
) -> Opened:
    try:
        transport, protocol = await loop.create_unix_connection(
            new_protocol,
            target.path,
            ssl=options.ssl,
            server_hostname=options.server_hostname,
            ssl_shutdown_timeout=options.close_timeout if options.ssl else None,
        )
    except OSError as exc:
        raise ConnectError(
            f"could not connect to {target}: {exc}", attempts=((str(target), str(exc)),)
        ) from exc
    return transport, protocol


async def _open_tcp(
    loop: asyncio.AbstractEventLoop,
    target: Target,
    options: ConnectOptions,
    new_protocol: Callable[[], asyncio.StreamReaderProtocol],
) -> Opened:
    assert target.host is not None
    literal = _ip_literal(target.host)
    if literal is not None:
        # No resolver for an address: asyncio's getaddrinfo runs in a thread pool of a few
        # workers, which made opening 1,000 connections at once barely faster than one by one.
        addresses = [literal]
    else:
        try:
            infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectError(
                f"could not resolve {target.host!r}: {exc}", attempts=((str(target), str(exc)),)
            ) from exc
        addresses = _interleave([(int(family), str(addr[0])) for family, _, _, _, addr in infos])
    server_hostname = options.server_hostname
    if options.ssl is not None and server_hostname is None:
        server_hostname = target.host

    def attempt(ip: str) -> _Attempt:
        async def run() -> Opened:
            transport, protocol = await loop.create_connection(
                new_protocol,
                ip,
                target.port,
                ssl=options.ssl,
                server_hostname=server_hostname,
                local_addr=options.local_addr,
                ssl_shutdown_timeout=options.close_timeout if options.ssl else None,
            )
            return transport, protocol

        return run

    names = [_format(ip, target.port) for _, ip in addresses]
    return await _race(
        [attempt(ip) for _, ip in addresses], names, options.happy_eyeballs_delay, target
    )


async def _race(
    attempts: list[_Attempt], names: list[str], delay: float | None, target: Target
) -> Opened:
    """Happy eyeballs (RFC 8305): start the next attempt when one fails or ``delay`` passes.

    The first success wins; every other attempt is cancelled, and one that succeeds late is
    aborted, so no socket outlives the race.
    """
    errors: dict[int, BaseException] = {}
    if len(attempts) == 1 or delay is None:
        for index, run in enumerate(attempts):
            try:
                return await run()
            except OSError as exc:
                errors[index] = exc
        raise _connect_error(target, names, errors)

    running: dict[asyncio.Task[Opened], int] = {}
    started = 0
    winner: Opened | None = None
    try:
        while winner is None:
            if started < len(attempts):
                running[asyncio.ensure_future(attempts[started]())] = started
                started += 1
            if not running:
                break
            done, _ = await asyncio.wait(
                running,
                timeout=delay if started < len(attempts) else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                index = running.pop(task)
                failure = task.exception()
                if failure is None and winner is None:
                    winner = task.result()
                elif failure is None:
                    task.result()[0].abort()
                elif isinstance(failure, OSError):
                    errors[index] = failure
                else:
                    raise failure
    finally:
        for task in running:
            task.cancel()
            task.add_done_callback(_abort_late_success)
    if winner is None:
        raise _connect_error(target, names, errors)
    return winner


def _abort_late_success(task: asyncio.Task[Opened]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result()[0].abort()


def _connect_error(
    target: Target, names: list[str], errors: dict[int, BaseException]
) -> ConnectError:
    attempts = tuple((names[i], str(errors[i])) for i in sorted(errors))
    tried = "; ".join(f"{name}: {reason}" for name, reason in attempts)
    error_type = (
        ConnectTimeout
        if errors and all(isinstance(e, TimeoutError) for e in errors.values())
        else ConnectError
    )
    error = error_type(f"could not connect to {target} ({tried})", attempts=attempts)
    if errors:
        error.__cause__ = errors[max(errors)]
    return error


def _interleave(addresses: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Alternate address families, starting with the resolver's first choice (RFC 8305 §4)."""
    unique = list(dict.fromkeys(addresses))
    if not unique:
        return unique
    first = [a for a in unique if a[0] == unique[0][0]]
    rest = [a for a in unique if a[0] != unique[0][0]]
    mixed: list[tuple[int, str]] = []
    for i in range(max(len(first), len(rest))):
        mixed.extend(group[i] for group in (first, rest) if i < len(group))
    return mixed


def _ip_literal(host: str) -> tuple[int, str] | None:
    """``(family, host)`` when ``host`` is an IPv4 or IPv6 address rather than a name."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return int(family), host
    return None


def _format(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _apply_socket_options(transport: asyncio.Transport, options: ConnectOptions) -> None:
    sock: socket.socket | None = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    if not options.nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    keepalive = options.keepalive
    if keepalive is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (
            ("TCP_KEEPIDLE", keepalive.idle),
            ("TCP_KEEPINTVL", keepalive.interval),
            ("TCP_KEEPCNT", keepalive.count),
        ):
            option = getattr(socket, name, None)  # not every platform has all three
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(value)))
