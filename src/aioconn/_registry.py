"""Weak registries of the open Connections and Pools, read by the leak-checking pytest plugin."""

from __future__ import annotations

import weakref
from typing import Any

open_connections: weakref.WeakSet[Any] = weakref.WeakSet()
open_pools: weakref.WeakSet[Any] = weakref.WeakSet()
