"""Tools for testing code that uses aioconn: an echo server, a fault-injection proxy, and the
types of the pytest plugin's fixtures (``aioconn.testing.plugin``)."""

from __future__ import annotations

from ._echo import EchoServer
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
    "ProxyStats",
    "Toxic",
    "ToxicHandle",
    "bandwidth",
    "latency",
    "limit_data",
    "reset_peer",
    "slicer",
    "slow_close",
    "timeout",
]
