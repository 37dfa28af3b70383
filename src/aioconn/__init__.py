"""aioconn: asyncio connections and connection pools that always close."""

from __future__ import annotations

from ._connecting import connect, connect_unix
from ._options import KeepAlive
from ._outage import Backoff
from .connection import DEFAULT, Connection
from .connector import Connector, FactoryConnector, TCPConnector, UnixConnector
from .endpoints import Endpoint, Endpoints
from .errors import (
    ConnectError,
    ConnectionClosed,
    ConnectionReleased,
    ConnectTimeout,
    Error,
    LeakWarning,
    NoHealthyEndpoint,
    PoolClosed,
    PoolError,
    PoolTimeout,
    ProtocolError,
    ReadTimeout,
    ServerDown,
    TooManyWaiters,
    WriteTimeout,
)
from .pool import Lease, Pool
from .retry import Retry
from .stats import Discards, EndpointStats, PoolStats, Summary

__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULT",
    "Backoff",
    "ConnectError",
    "ConnectTimeout",
    "Connection",
    "ConnectionClosed",
    "ConnectionReleased",
    "Connector",
    "Discards",
    "Endpoint",
    "EndpointStats",
    "Endpoints",
    "Error",
    "FactoryConnector",
    "KeepAlive",
    "LeakWarning",
    "Lease",
    "NoHealthyEndpoint",
    "Pool",
    "PoolClosed",
    "PoolError",
    "PoolStats",
    "PoolTimeout",
    "ProtocolError",
    "ReadTimeout",
    "Retry",
    "ServerDown",
    "Summary",
    "TCPConnector",
    "TooManyWaiters",
    "UnixConnector",
    "WriteTimeout",
    "__version__",
    "connect",
    "connect_unix",
]
