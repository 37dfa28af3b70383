"""Talking to ``EchoServer(witness=True)``: one request line, one reply naming request and link."""

from __future__ import annotations

from aioconn import Connection
from aioconn.testing._echo import parse_witness_reply

__all__ = ["ask", "line"]


def line(request_id: str, directive: str = "") -> bytes:
    """The request line for ``request_id`` with an optional witness ``directive``."""
    return f"{request_id} {directive}\n".encode() if directive else f"{request_id}\n".encode()


async def ask(conn: Connection, request_id: str, directive: str = "") -> tuple[str, int]:
    """Send one request and read its reply: ``(request_id, server_id)`` as the server wrote."""
    await conn.send(line(request_id, directive))
    return parse_witness_reply(await conn.readline())
