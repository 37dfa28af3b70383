"""Connectors that know their database driver: asyncpg, psycopg 3 and aiosqlite.

Each driver is an optional extra (``pip install 'aioconn[asyncpg]'``, ``[psycopg]``,
``[sqlite]``) and is imported only when a connector first connects, so importing this package
needs none of them. A connector gives the pool what the driver knows: whether a connection is
alive, whether it was left in a transaction (rolled back on return), and how to recover one
after a cancelled query with the driver's own cancel, instead of closing it.
"""

from __future__ import annotations

from ._aiosqlite import AiosqliteConnector
from ._asyncpg import AsyncpgConnector
from ._psycopg import PsycopgConnector

__all__ = ["AiosqliteConnector", "AsyncpgConnector", "PsycopgConnector"]
