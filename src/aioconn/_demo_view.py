"""How the demo shows itself: plain text, or ``rich`` (the ``aioconn[cli]`` extra) when asked.

Both views print the same rows; ``rich`` adds a live progress bar and a boxed, coloured table.
Colour only goes to a terminal, and never when ``NO_COLOR`` is set.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ._demo_plan import Tally


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the summary: what, the two pools' values, and a promise kept or not."""

    what: str
    pooled: str
    naive: str
    kept: bool | None = None  # None: a figure, not a promise


class View(Protocol):
    def heading(self, text: str) -> None: ...

    def line(self, text: str) -> None: ...

    def blank(self) -> None: ...

    def progress(
        self, label: str, total: int
    ) -> contextlib.AbstractContextManager[Callable[[Tally], None]]: ...

    def summary(self, rows: list[Row]) -> None: ...


def _mark(kept: bool | None) -> str:
    return "" if kept is None else "kept" if kept else "BROKEN"


class PlainView:
    """Text only, and every line flushed: fit for pipes, logs and tests."""

    def heading(self, text: str) -> None:
        print(f"\n== {text}", flush=True)

    def line(self, text: str) -> None:
        print(f"    {text}", flush=True)

    def blank(self) -> None:
        print(flush=True)

    @contextlib.contextmanager
    def progress(self, label: str, total: int) -> Iterator[Callable[[Tally], None]]:
        marks = {total * q // 4 for q in (1, 2, 3, 4)}  # a line at each quarter

        def on_finished(tally: Tally) -> None:
            if tally.finished in marks:
                print(f"    {label}: {tally.finished}/{total} requests finished", flush=True)

        yield on_finished

    def summary(self, rows: list[Row]) -> None:
        header = Row("", "aioconn Pool", "naive asyncio.Queue pool")
        widths = [
            max(len(getattr(r, name)) for r in [header, *rows])
            for name in ("what", "pooled", "naive")
        ]
        print(flush=True)
        for row in [header, *rows]:
            cells = (row.what, row.pooled, row.naive)
            text = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
            mark = "promise" if row is header else _mark(row.kept)
            print(f"  {text}  {mark}".rstrip(), flush=True)


class RichView:
    """A live progress bar and a table, drawn by ``rich``."""

    def __init__(self) -> None:
        from rich.console import Console

        # rich itself drops colour when stdout is not a terminal or NO_COLOR is set; say so
        # explicitly so that the rule does not depend on rich's version.
        no_color = bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()
        self.console = Console(no_color=no_color, highlight=False)

    def heading(self, text: str) -> None:
        self.console.print(f"\n[bold]== {text}[/bold]")

    def line(self, text: str) -> None:
        self.console.print(f"    {text}", markup=False)

    def blank(self) -> None:
        self.console.print()

    @contextlib.contextmanager
    def progress(self, label: str, total: int) -> Iterator[Callable[[Tally], None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            f"    {label:<24}",
            BarColumn(),
            MofNCompleteColumn(),
            "requests",
            TimeElapsedColumn(),
            console=self.console,
        ) as bar:
            task = bar.add_task(label, total=total)

            def on_finished(tally: Tally) -> None:
                bar.update(task, completed=tally.finished)

            yield on_finished

    def summary(self, rows: list[Row]) -> None:
        from rich.table import Table
        from rich.text import Text

        table = Table(show_header=True, header_style="bold")
        table.add_column("")
        table.add_column("aioconn Pool", justify="right")
        table.add_column("naive asyncio.Queue pool", justify="right")
        table.add_column("promise")
        styles = {True: "[green]kept[/green]", False: "[bold red]BROKEN[/bold red]", None: ""}
        for row in rows:
            table.add_row(Text(row.what), Text(row.pooled), Text(row.naive), styles[row.kept])
        self.console.print()
        self.console.print(table)


def make_view(plain: bool) -> View:
    """``RichView`` when ``rich`` is installed and plain text was not asked for."""
    if not plain:
        with contextlib.suppress(ImportError):
            return RichView()
    return PlainView()
