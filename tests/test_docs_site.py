"""The documentation site builds strict, and the strict build catches what it should: a broken
cross-reference, an undocumented public name or parameter, a name on no reference page
(``tools/mkdocs_hooks.py``); the reference pages carry the API."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import griffe
import pytest

ROOT = Path(__file__).resolve().parent.parent
MKDOCS = [sys.executable, "-m", "mkdocs", "build", "--strict"]  # --quiet would hide warnings


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "tools/mkdocs_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while being made
    spec.loader.exec_module(module)
    return module


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MKDOCS, "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_the_site_builds_strict_with_reference_pages_and_a_search_index(tmp_path: Path) -> None:
    result = build(ROOT / "mkdocs.yml", tmp_path)
    assert result.returncode == 0, result.stderr
    pool = (tmp_path / "reference/pool/index.html").read_text()
    assert 'id="aioconn.Pool"' in pool
    assert 'id="aioconn.Pool.acquire"' in pool
    assert "max_size" in pool
    index = (tmp_path / "reference/index.html").read_text()
    assert 'href="pool/#aioconn.Pool"' in index  # a cross-reference, resolved
    for page in (
        "connection",
        "connector",
        "endpoints",
        "errors",
        "retry",
        "stats",
        "events",
        "testing",
        "metrics",
    ):
        assert (tmp_path / f"reference/{page}/index.html").is_file(), page
    assert '<h2 id="unreleased">[Unreleased]' in (tmp_path / "changelog/index.html").read_text()
    docs = json.loads((tmp_path / "search/search_index.json").read_text())["docs"]
    assert any(d["location"] == "reference/pool/#aioconn.Pool.acquire" for d in docs)


def test_a_broken_cross_reference_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Broken\n\nSee [the pool][aioconn.NoSuchPool].\n")
    config = tmp_path / "mkdocs.yml"
    text = (ROOT / "mkdocs.yml").read_text()
    text = text.replace("docs_dir: docs", f"docs_dir: {docs}").split("\nnav:")[0]
    config.write_text(
        text.replace("tools/mkdocs_hooks.py", str(ROOT / "tools/mkdocs_hooks.py")).replace(
            "paths: [src]", f"paths: [{ROOT / 'src'}]"
        )
    )
    result = build(config, tmp_path / "site")
    assert result.returncode == 1
    assert "Could not find cross-reference target 'aioconn.NoSuchPool'" in result.stderr


@pytest.fixture
def sample(tmp_path: Path) -> Iterator[griffe.Module]:
    """A small package with every kind of gap the hooks look for, loaded by griffe."""
    package = tmp_path / "sample"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent('''
            """A sample package."""

            from dataclasses import dataclass

            __all__ = ["Bare", "Documented", "Fields", "helper"]


            class Documented:
                """Has a docstring.

                Args:
                    size: described here, which counts for the parameter and the attribute.
                    *names: so is a star parameter.
                """

                described: int = 0
                """Its own docstring."""

                def __init__(self, size: int, *names: str, colour: str = "") -> None:
                    self.size = size

                def method(self, count: int) -> None:
                    pass


            @dataclass
            class Fields:
                """A dataclass: a documented field documents its parameter."""

                kept: int
                """Documented."""
                forgotten: int


            class Bare:
                pass


            def helper(first: int, second: int) -> None:
                """Documents one of two.

                Args:
                    first: the first.
                """


            def _private(anything: int) -> None:
                pass
        ''')
    )
    loaded = griffe.load("sample", search_paths=[str(tmp_path)])
    assert isinstance(loaded, griffe.Module)
    yield loaded
    shutil.rmtree(package)


def test_the_hook_names_every_undocumented_name_and_parameter(sample: griffe.Module) -> None:
    found = [str(gap) for gap in load_hooks().gaps(sample, ("sample",))]
    assert found == [
        "sample.Bare: no docstring",
        "sample.Documented: parameter 'colour' not in Args",
        "sample.Documented.method: no docstring",
        "sample.Documented.method: parameter 'count' not in Args",
        "sample.Fields: parameter 'forgotten' not in Args",
        "sample.Fields.forgotten: no docstring",
        "sample.helper: parameter 'second' not in Args",
    ]


def test_the_hook_names_every_public_name_no_reference_page_renders(
    sample: griffe.Module, tmp_path: Path
) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Sample\n\n::: sample.Documented\n\n:::sample.helper\n")
    hooks = load_hooks()
    assert hooks.unrendered(sample, [page], ("sample",)) == ["sample.Bare", "sample.Fields"]
    page.write_text("# Sample\n\n::: sample\n")  # the whole module renders every name
    assert hooks.unrendered(sample, [page], ("sample",)) == []


def test_the_defaults_the_docstrings_state_are_the_defaults() -> None:
    # Signatures show these as constant names, so the Args of connect(), Connection and the
    # connectors state the values; this keeps the two in step.
    from aioconn import _options

    assert _options.DEFAULT_CONNECT_TIMEOUT == 10.0
    assert _options.DEFAULT_CLOSE_TIMEOUT == 2.0
    assert _options.DEFAULT_HAPPY_EYEBALLS_DELAY == 0.25
    assert _options.DEFAULT_LIMIT == 65536
