"""Validated, immutable connection options, shared by Connection and the connectors."""

from __future__ import annotations

import ssl as _ssl
from dataclasses import dataclass

from . import _validate
from .retry import Retry

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_CLOSE_TIMEOUT = 2.0
DEFAULT_HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's recommended "Connection Attempt Delay"
DEFAULT_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """TCP keepalive: probe after ``idle`` s of silence, every ``interval`` s, ``count`` times.

    Keepalive detects a dead peer on an idle connection; it never replaces read deadlines
    (Linux waits 7200 s by default before the first probe, hence our shorter defaults).
    """

    idle: float = 60.0
    """Seconds of silence before the first probe (``TCP_KEEPIDLE``)."""
    interval: float = 10.0
    """Seconds between probes (``TCP_KEEPINTVL``)."""
    count: int = 5
    """Unanswered probes before the connection is declared dead (``TCP_KEEPCNT``)."""

    def __post_init__(self) -> None:
        _validate.timeout("keepalive.idle", self.idle, allow_none=False)
        _validate.timeout("keepalive.interval", self.interval, allow_none=False)
        _validate.integer("keepalive.count", self.count, minimum=1)


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Everything about how to open and run one connection, checked once."""

    ssl: _ssl.SSLContext | None = None
    server_hostname: str | None = None
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT
    read_timeout: float | None = None
    write_timeout: float | None = None
    local_addr: tuple[str, int] | None = None
    happy_eyeballs_delay: float | None = DEFAULT_HAPPY_EYEBALLS_DELAY
    nodelay: bool = True
    keepalive: KeepAlive | None = None
    limit: int = DEFAULT_LIMIT
    retry: Retry | None = None


def make_options(
    *,
    ssl: bool | _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    read_timeout: float | None = None,
    write_timeout: float | None = None,
    local_addr: tuple[str, int] | None = None,
    happy_eyeballs_delay: float | None = DEFAULT_HAPPY_EYEBALLS_DELAY,
    nodelay: bool = True,
    keepalive: bool | KeepAlive = False,
    limit: int = DEFAULT_LIMIT,
    retry: Retry | None = None,
) -> ConnectOptions:
    """Validate user-facing options into a ``ConnectOptions`` (errors name the parameter)."""
    if ssl is True:
        context: _ssl.SSLContext | None = _ssl.create_default_context()
    elif ssl is None or ssl is False:
        context = None
    elif isinstance(ssl, _ssl.SSLContext):
        context = ssl
    else:
        raise TypeError(f"ssl must be None, a bool or an ssl.SSLContext, got {ssl!r}")
    if server_hostname is not None:
        if not isinstance(server_hostname, str) or not server_hostname:
            raise ValueError(f"server_hostname must be a non-empty str, got {server_hostname!r}")
        if context is None:
            raise ValueError("server_hostname is only meaningful with ssl; got ssl=None")
    if local_addr is not None and not (
        isinstance(local_addr, tuple)
        and len(local_addr) == 2
        and isinstance(local_addr[0], str)
        and isinstance(local_addr[1], int)
    ):
        raise TypeError(f"local_addr must be a (host, port) tuple, got {local_addr!r}")
    if local_addr is not None:
        _validate.port(local_addr[1])
    if not isinstance(nodelay, bool):
        raise TypeError(f"nodelay must be a bool, got {nodelay!r}")
    if keepalive is True:
        keepalive_settings: KeepAlive | None = KeepAlive()
    elif keepalive is False:
        keepalive_settings = None
    elif isinstance(keepalive, KeepAlive):
        keepalive_settings = keepalive
    else:
        raise TypeError(f"keepalive must be a bool or aioconn.KeepAlive, got {keepalive!r}")
    if retry is not None and not isinstance(retry, Retry):
        raise TypeError(f"retry must be an aioconn.Retry or None, got {retry!r}")
    close = _validate.timeout("close_timeout", close_timeout, allow_none=False)
    assert close is not None
    return ConnectOptions(
        ssl=context,
        server_hostname=server_hostname,
        connect_timeout=_validate.timeout("connect_timeout", connect_timeout),
        close_timeout=close,
        read_timeout=_validate.timeout("read_timeout", read_timeout),
        write_timeout=_validate.timeout("write_timeout", write_timeout),
        local_addr=local_addr,
        happy_eyeballs_delay=_validate.timeout("happy_eyeballs_delay", happy_eyeballs_delay),
        nodelay=nodelay,
        keepalive=keepalive_settings,
        limit=_validate.integer("limit", limit, minimum=1),
        retry=retry,
    )
