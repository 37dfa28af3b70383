"""Registries read by the pytest plugin: open Connections, Pools and proxies, proxy seeds.

Objects are held weakly. While a leak check runs (``watch``), the registries also remember
where each object was opened, and report one that is garbage-collected while still open: the
leak that no later look at the open objects could find.
"""

from __future__ import annotations

import functools
import traceback
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._where import user_stack

__all__ = ["FreedOpen", "OpenObjects", "open_connections", "open_pools", "proxy_seeds", "watch"]


@dataclass(frozen=True, slots=True)
class FreedOpen:
    """An aioconn object that was garbage-collected while open: never closed."""

    kind: str  # the class name: "Connection", "Pool"
    description: str
    created_where: str
    opened_at: traceback.StackSummary | None


Watcher = Callable[[FreedOpen], object]
_watcher: Watcher | None = None


def watch(watcher: Watcher | None) -> Watcher | None:
    """Call ``watcher`` for each object freed while open, and record where objects are opened
    (``None``: stop); returns the previous watcher."""
    global _watcher
    previous, _watcher = _watcher, watcher
    return previous


def _describe(obj: Any) -> str:
    # Taken when the object opens; it cannot be asked once it was freed.
    detail = getattr(obj, "target", None) or getattr(obj, "name", None) or ""
    return f"<{type(obj).__module__.split('.')[0]}.{type(obj).__name__} {detail}>"


class _Entry:
    __slots__ = ("created_where", "description", "kind", "opened_at", "ref")

    def __init__(self, ref: weakref.ref[Any], obj: Any | None) -> None:
        self.ref = ref
        if obj is None:  # nobody is watching: keep the hot path cheap
            self.kind = self.description = self.created_where = ""
            self.opened_at: traceback.StackSummary | None = None
        else:
            self.kind = type(obj).__name__
            self.description = _describe(obj)
            self.created_where = str(getattr(obj, "created_where", "?"))
            self.opened_at = user_stack()


class OpenObjects:
    """A weak set of open objects of one kind (``add`` on open, ``discard`` on close)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}

    def add(self, obj: Any) -> None:
        key = id(obj)
        entry = self._entries.get(key)
        if entry is not None and entry.ref() is obj:
            return
        ref = weakref.ref(obj, functools.partial(self._freed, key))
        self._entries[key] = _Entry(ref, None if _watcher is None else obj)

    def discard(self, obj: Any) -> None:
        key = id(obj)
        entry = self._entries.get(key)
        if entry is not None and entry.ref() is obj:
            del self._entries[key]

    def opened_at(self, obj: Any) -> traceback.StackSummary | None:
        """Where ``obj`` was opened, if a leak check was watching then."""
        entry = self._entries.get(id(obj))
        return entry.opened_at if entry is not None and entry.ref() is obj else None

    def _freed(self, key: int, ref: weakref.ref[Any]) -> None:
        entry = self._entries.get(key)
        if entry is None or entry.ref is not ref:
            return  # closed before it was freed, or the id was reused
        del self._entries[key]
        watcher = _watcher
        if watcher is not None and entry.opened_at is not None:
            watcher(FreedOpen(entry.kind, entry.description, entry.created_where, entry.opened_at))

    def __iter__(self) -> Iterator[Any]:
        for entry in list(self._entries.values()):
            obj = entry.ref()
            if obj is not None:
                yield obj

    def __contains__(self, obj: object) -> bool:
        entry = self._entries.get(id(obj))
        return entry is not None and entry.ref() is obj

    def __len__(self) -> int:
        return sum(1 for _ in self)


open_connections = OpenObjects()
open_pools = OpenObjects()
open_proxies = OpenObjects()

# (proxy address, seed) of every ChaosProxy started, so a failing test can report its seeds.
proxy_seeds: list[tuple[str, int]] = []
