"""Tools for testing code that uses aioconn: an echo server, a fault-injection proxy, a
schedule-exploring event loop, and the types of the pytest plugin's fixtures
(``aioconn.testing.plugin``)."""

from __future__ import annotations

from ._echo import EchoServer
from ._explore import ExploringEventLoop, ScheduleFailure, explore, on_every_iteration
from ._proxy import ChaosProxy, ChaosProxyFactory, ProxyStats, ToxicHandle
from ._toxic_base import Toxic
from ._toxics import (
    bandwidth,
    latency,
    limit_data,
    reset_peer,
    slicer,
    slow_close,
    timeout,
)

__all__ = [
    "ChaosProxy",
    "ChaosProxyFactory",
    "EchoServer",
    "ExploringEventLoop",
    "ProxyStats",
    "ScheduleFailure",
    "Toxic",
    "ToxicHandle",
    "bandwidth",
    "explore",
    "latency",
    "limit_data",
    "on_every_iteration",
    "reset_peer",
    "slicer",
    "slow_close",
    "timeout",
]
