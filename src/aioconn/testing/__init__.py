"""Tools for testing code that uses aioconn: an echo server on loopback (more to come)."""

from __future__ import annotations

from ._echo import EchoServer

__all__ = ["EchoServer"]
