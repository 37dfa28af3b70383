"""pytest side of the schedule-exploring loop: the ``explore_schedules`` fixture and options.

``--aioconn-explore-seeds=N`` runs each exploring test under N seeds (the ini setting
``aioconn_explore_seeds`` sets the default, 20); ``--aioconn-explore-seed=S`` replays one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from ._explore import explore

__all__ = ["Explorer"]


class Explorer:
    """Runs a scenario under the seeds the command line asks for (see ``explore``)."""

    def __init__(self, seeds: list[int]) -> None:
        self.seeds = seeds

    def __call__(
        self,
        scenario: Callable[[], Awaitable[object]],
        *,
        defer: float = 0.05,
        timeout: float = 30.0,
    ) -> int:
        """Run ``scenario`` under every seed; ``ScheduleFailure`` names the first that fails."""
        return explore(scenario, seeds=self.seeds, defer=defer, timeout=timeout)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aioconn-explore", "aioconn schedule exploration")
    group.addoption(
        "--aioconn-explore-seeds",
        type=int,
        default=None,
        metavar="N",
        help="run each test using the explore_schedules fixture under N seeds (default: the"
        " aioconn_explore_seeds ini setting, 20)",
    )
    group.addoption(
        "--aioconn-explore-seed",
        type=int,
        default=None,
        metavar="S",
        help="replay one schedule: the seed a failing exploring test printed",
    )
    parser.addini(
        "aioconn_explore_seeds", "seeds per exploring test (explore_schedules)", default="20"
    )


@pytest.fixture
def explore_schedules(request: pytest.FixtureRequest) -> Explorer:
    """Run an async scenario under many schedules of ``ExploringEventLoop`` (a sync test)."""
    config = request.config
    one = config.getoption("--aioconn-explore-seed")
    if one is not None:
        return Explorer([one])
    count = config.getoption("--aioconn-explore-seeds")
    if count is None:
        count = int(config.getini("aioconn_explore_seeds"))
    if count < 1:
        raise pytest.UsageError(f"--aioconn-explore-seeds must be >= 1, got {count}")
    return Explorer(list(range(count)))
