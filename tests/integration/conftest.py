"""The integration tests' measurements, reported at the end of the run."""

from __future__ import annotations

import pytest

from integration.integration_kit import REPORTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in REPORTS:
        terminalreporter.write_line(f"integration: {line}")
