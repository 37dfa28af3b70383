"""The documentation's examples run: every ```python block of README.md and docs/**/*.md.

How a Markdown file is run (authors of new pages need nothing else):

- Every block fenced ```` ```python ```` (or ```` ```py ````) is executed. The blocks of one file
  run in order, in one shared namespace, so a later block can use names an earlier one defined.
  Each file starts from a fresh namespace, in a fresh temporary working directory.
- Top-level ``await`` works, as in ``python -m asyncio``: a block that awaits at top level is
  compiled with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`` and runs on the file's event loop (one
  ``asyncio.Runner`` per file, kept open across blocks, so a pool or connection opened by one
  block can be used by the next). A block with no top-level ``await`` runs as plain code with no
  loop running, so it may call ``asyncio.run(main())`` itself, the way a script would.
- ```` ```python no-run ```` marks a block that is compiled (so it must still be valid Python)
  but not executed: for fragments that need something the test cannot provide (a real remote
  host, global logging configuration). Use it sparingly; anything else should run.
- Pages under ``docs/recipes/``, and ``docs/drivers.md``, run against the session's real
  servers (``tests/servers/``): ``REDIS_HOST``/``REDIS_PORT``, ``POSTGRES_DSN`` and
  ``POSTGRES_REPLICA_DSN`` (a streaming replica of it) are set in the environment for them.
- ```` ```python file=test_example.py ```` (any language, e.g. ```` ```ini file=pytest.ini ````)
  writes the block to that file in the working directory, before any block runs, instead of
  executing it (a Python file is still compiled): for examples that are files, such as a test
  module and its pytest configuration, which a later block then runs.
- Other fences (```` ```console ````, ```` ```text ````, ```` ```mermaid ````, ...) are ignored.
- A file fails when a block raises (the traceback points at the Markdown file's own line
  numbers), when asyncio or aioconn logs an ERROR (e.g. "Task exception was never retrieved"),
  or when tasks are still running on the file's loop after its last block (after a short grace
  period): an example that leaves work behind is not an example to copy. After a failure, the
  pools, connections and echo servers the page left open at top level are closed, so that one
  broken page does not show up as leaks in the tests after it.
- An example that runs pytest in a subprocess gets ``PYTEST_ADDOPTS=-p no:hypothesispytest``
  (hypothesis, a development dependency the examples do not use, is slow to import).

Examples assert what they show (``assert reply == b"hello\\n"``) and bind to 127.0.0.1 only.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import gc
import inspect
import logging
import re
import textwrap
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

import aioconn
from aioconn.testing import EchoServer

ROOT = Path(__file__).resolve().parent.parent
NO_RUN = "no-run"
PYTHON_LANGUAGES = frozenset({"python", "py"})
LEFTOVER_GRACE = 2.0  # seconds the file's loop may take to finish background work at the end
# For examples that run pytest: hypothesis's plugin, which they do not use, takes ~1.4 s to load.
FAST_PYTEST = "-p no:hypothesispytest"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced Python block: where its code starts, its code, and whether it runs."""

    line: int  # 1-based line number of the block's first line of code
    source: str
    run: bool
    file: str | None = None  # written to this file instead of executed
    language: str = "python"


def doc_files() -> list[Path]:
    """README.md and every Markdown file under docs/, found afresh at each collection."""
    docs = ROOT / "docs"
    found = sorted(docs.rglob("*.md")) if docs.is_dir() else []
    return [path for path in [ROOT / "README.md", *found] if path.is_file()]


def extract_blocks(text: str, name: str = "<markdown>") -> list[Block]:
    """The Python blocks of a Markdown text, in order (CommonMark fences, ``` or ~~~).

    A fence indented inside a list item has that indentation stripped from its lines.

    Raises:
        ValueError: a fence is never closed (CommonMark would swallow the rest of the file).
    """
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        words = opening["info"].split()
        language = words[0].lower() if words else ""
        start = index
        while index < len(lines) and not _closes(lines[index], fence):
            index += 1
        if index == len(lines):
            raise ValueError(f"{name}:{start}: the {fence} fence opened here is never closed")
        body = lines[start:index]
        index += 1  # past the closing fence
        files = [word.removeprefix("file=") for word in words[1:] if word.startswith("file=")]
        if language in PYTHON_LANGUAGES or files:
            source = "\n".join(_unindent(line, indent) for line in body)
            blocks.append(
                Block(
                    line=start + 1,
                    source=source,
                    run=NO_RUN not in words[1:] and not files,
                    file=files[0] if files else None,
                    language=language,
                )
            )
    return blocks


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence) and not stripped.strip(fence[0])


def _unindent(line: str, indent: int) -> str:
    # Strip up to the fence's own indentation, never more (CommonMark's rule for fenced code).
    width = len(line) - len(line.lstrip(" \t"))
    return line[min(width, indent) :]


def write_files(blocks: list[Block]) -> None:
    """Write the ``file=`` blocks into the working directory."""
    for block in blocks:
        if block.file is not None:
            Path(block.file).write_text(textwrap.dedent(block.source) + "\n", encoding="utf-8")


def compile_block(block: Block, filename: str) -> CodeType:
    """Compile with top-level ``await`` allowed; line numbers are the Markdown file's own."""
    padded = "\n" * (block.line - 1) + textwrap.dedent(block.source)
    code: CodeType = compile(
        padded, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    return code


class _ErrorLog(logging.Handler):
    """Collects ERROR records from the loggers it is attached to."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def report(self) -> str:
        formatter = logging.Formatter("%(name)s %(levelname)s: %(message)s")
        return "\n\n".join(formatter.format(record) for record in self.records)


@contextlib.contextmanager
def _collect_errors(*names: str) -> Iterator[_ErrorLog]:
    handler = _ErrorLog()
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


async def _leftover_tasks(grace: float) -> list[asyncio.Task[Any]]:
    """Tasks other than this one still running once ``grace`` seconds have passed."""
    me = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not me]
    if pending:
        await asyncio.wait(pending, timeout=grace)
    return [task for task in pending if not task.done()]


def run_markdown(
    text: str,
    filename: str,
    *,
    grace: float = LEFTOVER_GRACE,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> int:
    """Run the Python blocks of one Markdown text as described above; returns how many ran.

    Every block is compiled before any runs, so a syntax error anywhere (``no-run`` blocks
    included) fails the file even if an earlier block would have failed too.
    """
    blocks = extract_blocks(text, filename)
    write_files(blocks)
    compiled = [
        (block, compile_block(block, filename))
        for block in blocks
        if block.language in PYTHON_LANGUAGES
    ]
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": filename}
    ran = 0
    with (
        _collect_errors("asyncio", "aioconn") as errors,
        asyncio.Runner(loop_factory=loop_factory) as runner,
    ):
        try:
            for block, code in compiled:
                if not block.run:
                    continue
                if code.co_flags & inspect.CO_COROUTINE:
                    runner.run(eval(code, namespace))
                else:
                    exec(code, namespace)
                ran += 1
            leftovers = runner.run(_leftover_tasks(grace))
            assert not leftovers, (
                f"{filename}: tasks still running after the last block: {leftovers}"
            )
        except BaseException:
            # A failing page skips its own cleanup. Close what it left open at top level (what
            # it opened with `async with` closed as the error unwound), so that the failure is
            # reported once, here, and not as leaks in whichever test happens to run next.
            runner.run(_shut_down(namespace))
            namespace.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()
            raise
    assert not errors.records, f"{filename}: errors were logged:\n{errors.report()}"
    return ran


async def _shut_down(namespace: dict[str, Any]) -> None:
    """Best effort: close the pools, connections and servers a failed page left open."""
    for value in reversed(list(namespace.values())):
        with contextlib.suppress(Exception):
            if isinstance(value, aioconn.Pool):
                await value.close(timeout=1.0)
            elif isinstance(value, aioconn.Connection):
                value.abort()
            elif isinstance(value, EchoServer):
                await value.stop()
    await _leftover_tasks(0.5)


RECIPES = ROOT / "docs" / "recipes"
SERVED_PAGES = {ROOT / "docs" / "drivers.md"}  # besides the recipes


def _serve_recipe(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point a recipe at the session's real servers, as its readers would at theirs."""
    redis = request.getfixturevalue("redis_server")
    monkeypatch.setenv("REDIS_HOST", redis.host)
    monkeypatch.setenv("REDIS_PORT", str(redis.port))
    monkeypatch.setenv("POSTGRES_DSN", request.getfixturevalue("postgres_server").dsn)
    monkeypatch.setenv("POSTGRES_REPLICA_DSN", request.getfixturevalue("postgres_replica").dsn)


@pytest.mark.parametrize("path", doc_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_examples_run(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    if RECIPES in path.parents or path in SERVED_PAGES:
        _serve_recipe(request, monkeypatch)
    monkeypatch.setenv("PYTEST_ADDOPTS", FAST_PYTEST)
    run_markdown(path.read_text(encoding="utf-8"), str(path))


# Pages written as one `python -m asyncio` session, which tell readers to put their blocks in
# an `async def main()` for a script: that advice must hold (no `global`, no names only a
# module has). (docs/testing.md gives the same advice for its proxy examples, but has blocks
# that run event loops of their own, which cannot run inside main().)
SESSION_PAGES = ["docs/connection.md", "docs/pool.md"]


def as_script(text: str, filename: str) -> str:
    """The page's runnable blocks as one script: in an ``async def main()``, run by asyncio."""
    blocks = [block for block in extract_blocks(text, filename) if block.run]
    body = "\n".join(textwrap.indent(textwrap.dedent(block.source), "    ") for block in blocks)
    return f"import asyncio\n\n\nasync def main():\n{body}\n\n\nasyncio.run(main())\n"


@pytest.mark.parametrize("name", SESSION_PAGES)
def test_session_pages_also_run_wrapped_in_main(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTEST_ADDOPTS", FAST_PYTEST)
    text = (ROOT / name).read_text(encoding="utf-8")
    write_files(extract_blocks(text, name))
    script = as_script(text, name)
    exec(compile(script, f"{name} (as a script)", "exec"), {"__name__": "__main__"})


def test_connection_page_runs_under_uvloop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Examples assert what aioconn promises, not the wording of asyncio's own errors.
    import uvloop

    monkeypatch.chdir(tmp_path)
    path = ROOT / "docs" / "connection.md"
    run_markdown(path.read_text(encoding="utf-8"), str(path), loop_factory=uvloop.new_event_loop)


@pytest.mark.parametrize("name", ["README.md", "docs/connection.md", "docs/pool.md"])
def test_core_pages_have_runnable_examples(name: str) -> None:
    # Guards the guard: a parser that found nothing would let every page "pass".
    blocks = extract_blocks((ROOT / name).read_text(encoding="utf-8"), name)
    assert sum(block.run for block in blocks) >= 2


# -- the runner itself -------------------------------------------------------------------------

SAMPLE = """\
Text.

```python
import asyncio
x = await asyncio.sleep(0, result=1)
```

```python no-run
await never_defined()
```

```console
$ not python
```

````markdown
```python
raise AssertionError("inside a markdown example: not a block of this page")
```
````

1. In a list:

   ```py
   def plain() -> int:
       return asyncio.run(asyncio.sleep(0, result=x + 1))
   ```

~~~python
assert plain() == 2
~~~
"""


def test_extract_blocks_finds_python_fences_and_markers() -> None:
    blocks = extract_blocks(SAMPLE)
    assert [(block.line, block.run) for block in blocks] == [
        (4, True),
        (9, False),
        (25, True),
        (30, True),
    ]
    assert blocks[2].source.startswith("def plain() -> int:\n    return")


def test_run_markdown_shares_a_namespace_and_allows_both_await_styles() -> None:
    assert run_markdown(SAMPLE, "<sample>") == 3


def test_failures_point_at_the_markdown_line() -> None:
    text = "Intro.\n\n```python\nvalue = 1\nassert value == 2, 'shown wrong'\n```\n"
    with pytest.raises(AssertionError, match="shown wrong") as caught:
        run_markdown(text, "<page>")
    assert caught.traceback[-1].lineno + 1 == 5  # pytest's line numbers are 0-based


def test_no_run_blocks_must_still_compile() -> None:
    with pytest.raises(SyntaxError):
        run_markdown("```python no-run\ndef broken(:\n```\n", "<page>")


def test_an_unclosed_fence_is_an_error() -> None:
    with pytest.raises(ValueError, match="never closed"):
        extract_blocks("```python\nprint('x')\n", "<page>")


def test_tasks_left_running_fail_the_page() -> None:
    text = (
        "```python\n"
        "import asyncio\n"
        "forgotten = asyncio.ensure_future(asyncio.sleep(60))\n"
        "await asyncio.sleep(0)\n"
        "```\n"
    )
    with pytest.raises(AssertionError, match="tasks still running"):
        run_markdown(text, "<page>", grace=0.01)


def test_file_blocks_are_written_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = (
        "```python\n"
        "from pathlib import Path\n"
        "assert Path('settings.ini').read_text() == '[section]\\nkey = 1\\n'\n"
        "assert Path('helper.py').read_text() == 'VALUE = 2\\n'\n"
        "```\n\n"
        "```ini file=settings.ini\n[section]\nkey = 1\n```\n\n"
        "```python file=helper.py\nVALUE = 2\n```\n"
    )
    assert run_markdown(text, "<page>") == 1
    with pytest.raises(SyntaxError):
        run_markdown("```python file=broken.py\ndef broken(:\n```\n", "<page>")
