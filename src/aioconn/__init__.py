"""aioconn: asyncio connections and connection pools that always close."""

from __future__ import annotations

from ._options import KeepAlive
from .connection import DEFAULT, Connection, connect, connect_unix
from .errors import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    Error,
    LeakWarning,
    PoolClosed,
    PoolError,
    PoolTimeout,
    ProtocolError,
    ReadTimeout,
    TooManyWaiters,
    WriteTimeout,
)
from .retry import Retry

__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULT",
    "ConnectError",
    "ConnectTimeout",
    "Connection",
    "ConnectionClosed",
    "Error",
    "KeepAlive",
    "LeakWarning",
    "PoolClosed",
    "PoolError",
    "PoolTimeout",
    "ProtocolError",
    "ReadTimeout",
    "Retry",
    "TooManyWaiters",
    "WriteTimeout",
    "__version__",
    "connect",
    "connect_unix",
]
