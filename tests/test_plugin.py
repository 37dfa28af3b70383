"""The pytest plugin catches a deliberately leaky test and names where the leak was created."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

_INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
aioconn_leak_check = true
"""

_LEAKY_TESTS = """
import asyncio
import aioconn

kept = []

async def test_clean(echo_server):
    async with aioconn.connect("127.0.0.1", echo_server.port) as conn:
        await conn.send(b"hi\\n")
        assert await conn.readline() == b"hi\\n"

async def test_leaves_connection_open(echo_server):
    kept.append(await aioconn.connect("127.0.0.1", echo_server.port))

async def test_leaves_task_pending():
    kept.append(asyncio.create_task(asyncio.sleep(30)))

async def test_leaves_pool_open(echo_server):
    pool = aioconn.Pool(aioconn.TCPConnector("127.0.0.1", echo_server.port))
    kept.append(await pool.open())
"""


def test_plugin_fails_each_leaky_test_and_names_the_creation_site(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(_INI)
    pytester.makepyfile(test_leaky=_LEAKY_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore")
    result.assert_outcomes(passed=4, errors=3)
    output = result.stdout.str()
    assert "ERROR at teardown of test_leaves_connection_open" in output
    assert "open <aioconn.Connection 127.0.0.1:" in output
    assert "created at " in output
    assert "test_leaky.py:12" in output  # the line that opened the leaked connection
    assert "ERROR at teardown of test_leaves_task_pending" in output
    assert "pending <Task pending" in output
    assert "ERROR at teardown of test_leaves_pool_open" in output
    assert "test_leaky.py:18" in output  # where the leaked pool was created
    assert "ERROR at teardown of test_clean" not in output


def test_marker_opts_in_a_single_test(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        test_marked="""
import asyncio
import pytest

kept = []

@pytest.mark.aioconn_leak_check
async def test_checked():
    kept.append(asyncio.create_task(asyncio.sleep(30)))

async def test_unchecked():
    kept.append(asyncio.create_task(asyncio.sleep(30)))
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore")
    result.assert_outcomes(passed=2, errors=1)
    assert "ERROR at teardown of test_checked" in result.stdout.str()


def test_failing_test_reports_its_chaos_proxy_seed(pytester: pytest.Pytester) -> None:
    pytester.makeini(_INI)
    pytester.makepyfile(
        test_seeded="""
from aioconn.testing import ChaosProxy

async def test_fails(echo_server):
    async with ChaosProxy(echo_server.host, echo_server.port, seed=4242):
        assert False, "deliberate"
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*aioconn ChaosProxy seeds*", "ChaosProxy on 127.0.0.1:*: seed=4242"]
    )
