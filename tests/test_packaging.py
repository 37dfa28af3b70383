"""The wheel users install: MIT LICENSE inside, project URLs, no development pins, valid links."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: hatchling comes from the dev group, so no index is needed.
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--wheel-dir", str(out), str(ROOT)),
        ],
        check=True,
        timeout=120,
    )
    [built] = out.glob("aioconn-*.whl")
    return zipfile.ZipFile(built)


def metadata(wheel: zipfile.ZipFile) -> Message:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(name).decode())


def test_wheel_carries_the_mit_license(wheel: zipfile.ZipFile) -> None:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    text = wheel.read(name).decode()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 The aioconn developers\n")
    meta = metadata(wheel)
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]


def test_wheel_names_the_project_urls(wheel: zipfile.ZipFile) -> None:
    urls = dict(u.split(", ", 1) for u in metadata(wheel).get_all("Project-URL") or [])
    assert urls == {
        "Homepage": "https://github.com/aioconn/aioconn",
        "Documentation": "https://github.com/aioconn/aioconn/tree/main/docs",
        "Repository": "https://github.com/aioconn/aioconn",
        "Issues": "https://github.com/aioconn/aioconn/issues",
        "Changelog": "https://github.com/aioconn/aioconn/blob/main/CHANGELOG.md",
    }


def test_wheel_publishes_no_development_pins(wheel: zipfile.ZipFile) -> None:
    meta = metadata(wheel)
    assert meta.get_all("Provides-Extra") == [
        "asyncpg",
        "cli",
        "otel",
        "prometheus",
        "psycopg",
        "pytest",
        "sqlite",
        "uvloop",
    ]
    requires = meta.get_all("Requires-Dist") or []
    pinned = [r for r in requires if re.search(r"[=~]=\s*\d", r.split(";")[0])]
    assert pinned == []
    assert "pytest-asyncio>=1.0; extra == 'pytest'" in requires


def test_long_description_links_work_off_github(wheel: zipfile.ZipFile) -> None:
    # PyPI renders the README without the repository around it: relative links would 404.
    description = metadata(wheel).get_payload()
    assert isinstance(description, str)
    targets = re.findall(r"\]\(([^)\s]+)\)", description)
    assert targets, "the README has links"
    assert [t for t in targets if not t.startswith(("https://", "#"))] == []
