"""The pytest plugin's leak check: what one test left behind, found while the test runs.

A ``LeakCheck`` is active from the start of a test's setup to the end of its teardown. Meanwhile
it records every ``ResourceWarning`` whatever the warning filters say (``always`` for the
test's duration; one raised as an error inside ``__del__`` is taken from ``sys.unraisablehook``)
and every aioconn object garbage-collected while still open. At the end it adds the aioconn
objects still open that the test opened, and reports each with where it was created.
"""

from __future__ import annotations

import gc
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from .. import _registry
from .._where import BACKGROUND, format_stack

__all__ = ["LeakCheck"]

# The ResourceWarning of an unclosed Connection or Pool (their __del__).
_OWN_WARNING = re.compile(
    r"unclosed (?P<what><aioconn\.(?P<kind>\w+) .*?>), created at (?P<site>.+)", re.S
)

ShowWarning = Callable[[Warning | str, type[Warning], str, int, TextIO | None, str | None], None]


class LeakCheck:
    """Records leaks between ``__enter__`` and ``__exit__``; ``report()`` lists them."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.freed: list[_registry.FreedOpen] = []
        self.other: list[str] = []  # found by others (the async check): pending tasks, ...
        self._open_before: set[int] = set()
        self._catch = warnings.catch_warnings()
        self._previous_show: ShowWarning | None = None
        self._previous_unraisable: Callable[[Any], object] | None = None
        self._previous_watcher: _registry.Watcher | None = None

    def __enter__(self) -> LeakCheck:
        self._open_before = _open_ids()
        self._catch.__enter__()
        # First in the filter list: recorded here however the suite treats ResourceWarning.
        warnings.filterwarnings("always", category=ResourceWarning)
        self._previous_show = warnings.showwarning
        warnings.showwarning = self._show
        self._previous_unraisable = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        self._previous_watcher = _registry.watch(self.freed.append)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _registry.watch(self._previous_watcher)
        sys.unraisablehook = self._previous_unraisable or sys.__unraisablehook__
        self._catch.__exit__(exc_type, exc, tb)  # restores showwarning and the filters

    def _show(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, ResourceWarning):
            self.warnings.append(str(message))
        elif self._previous_show is not None:  # everything else goes where it went before
            self._previous_show(message, category, filename, lineno, file, line)

    def _unraisable(self, unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, ResourceWarning):
            self.warnings.append(str(unraisable.exc_value))
        elif self._previous_unraisable is not None:
            self._previous_unraisable(unraisable)

    def report(self) -> list[str]:
        """Collect garbage, then describe every leak found; empty if there is none."""
        gc.collect()  # objects in reference cycles warn, and count as freed, only now
        # A leaked pool's connections leak with it: they are not listed apart.
        pools = [p for p in _registry.open_pools if id(p) not in self._open_before]
        pool_leaked = bool(pools) or any(
            text.startswith("unclosed <aioconn.Pool ") for text in self.warnings
        )
        leaks = [_still_open(pool, "Pool", _registry.open_pools) for pool in pools]
        for conn in _registry.open_connections:
            if id(conn) in self._open_before or (pool_leaked and conn.created_where == BACKGROUND):
                continue
            leaks.append(_still_open(conn, "Connection", _registry.open_connections))
        # An unclosed aioconn object warns from __del__: that warning is the leak (a test that
        # expected it, with pytest.warns, has dealt with it). The registry adds where it was
        # opened.
        freed: dict[tuple[str, str], list[_registry.FreedOpen]] = {}
        for entry in self.freed:
            freed.setdefault((entry.kind, entry.created_where), []).append(entry)
        for text in self.warnings:
            own = _OWN_WARNING.fullmatch(text)
            if own is None:
                leaks.append(f"ResourceWarning: {text}")
                continue
            kind, site = own["kind"], own["site"]
            if site == BACKGROUND and pool_leaked:
                continue
            entries = freed.get((kind, site))
            stack = entries.pop(0).opened_at if entries else None
            leaks.append(
                f"unclosed {own['what']}, created at {site}, was freed without being closed"
                + _opened_at(stack)
            )
        return leaks + self.other


def _still_open(obj: Any, kind: str, registry: _registry.OpenObjects) -> str:
    return (
        f"open {obj!r}, created at {obj.created_where}, still referenced"
        f" (this {kind} was never closed)" + _opened_at(registry.opened_at(obj))
    )


def _opened_at(stack: traceback.StackSummary | None) -> str:
    if not stack:
        return ""
    return "\n    opened at (most recent call last):\n" + format_stack(stack, "    ").rstrip("\n")


def _open_ids() -> set[int]:
    return {id(o) for o in (*_registry.open_connections, *_registry.open_pools)}
