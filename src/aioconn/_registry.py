"""Registries read by the pytest plugin: open Connections and Pools (weakly), proxy seeds."""

from __future__ import annotations

import weakref
from typing import Any

open_connections: weakref.WeakSet[Any] = weakref.WeakSet()
open_pools: weakref.WeakSet[Any] = weakref.WeakSet()

# (proxy address, seed) of every ChaosProxy started, so a failing test can report its seeds.
proxy_seeds: list[tuple[str, int]] = []
