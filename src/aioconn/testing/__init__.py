"""Tools for testing code that uses aioconn: an echo server and a fault-injection proxy."""

from __future__ import annotations

from ._echo import EchoServer
from ._proxy import ChaosProxy, ProxyStats, ToxicHandle
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
