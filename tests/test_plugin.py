"""The pytest plugin: its leak check catches each kind of leak and says where it was created;
proxy seeds are reported and settable; it runs in pytest-asyncio's strict and auto modes."""

from __future__ import annotations

import re
import sys

import pytest

pytest_plugins = ["pytester"]

# Each run is a fresh interpreter; importing hypothesis's plugin would take most of its time.
_FAST = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

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
    pool = aioconn.Pool(aioconn.TCPConnector("127.0.0.1", echo_server.port), min_size=2)
    kept.append(await pool.open())
"""

_FREED_TESTS = """
import asyncio
import socket
import warnings

import aioconn


async def connect_to(port):
    return await aioconn.connect("127.0.0.1", port)


async def test_connection_freed_before_the_end(echo_server):
    conn = await connect_to(echo_server.port)
    del conn  # never closed; garbage now, long before the test ends
    await echo_server.wait_open_count(0)


async def test_pool_freed_before_the_end(echo_server):
    pool = aioconn.Pool(aioconn.TCPConnector("127.0.0.1", echo_server.port), min_size=2)
    await pool.open()
    del pool


async def test_stream_freed_before_the_end(echo_server):
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_server.port)
    del reader, writer


def test_socket_freed_while_warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning is raised inside __del__: unraisable
        sock = socket.socket()
        del sock


async def test_clean(echo_server):
    conn = await connect_to(echo_server.port)
    await conn.close()
"""


def _errors(output: str) -> dict[str, str]:
    """The text of each "ERROR at teardown of NAME" section, by test name."""
    parts = re.split(r"_+ ERROR at teardown of (\w+) _+\n", output)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    return {name: text.split("\n=====")[0].split("\n____")[0] for name, text in sections.items()}


def test_plugin_fails_each_leaky_test_and_names_the_creation_site(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(_INI)
    pytester.makepyfile(test_leaky=_LEAKY_TESTS)
    result = pytester.runpytest_subprocess(*_FAST, "-W", "ignore", "--asyncio-debug")
    result.assert_outcomes(passed=4, errors=3)
    errors = _errors(result.stdout.str())
    assert sorted(errors) == [
        "test_leaves_connection_open",
        "test_leaves_pool_open",
        "test_leaves_task_pending",
    ]
    assert re.match(
        r"aioconn leak check:\n"
        r"  open <aioconn.Connection 127.0.0.1:\d+ \[open\]>, created at \S+test_leaky.py:12,"
        r" still referenced \(this Connection was never closed\)\n"
        r"    opened at \(most recent call last\):\n"
        r'      File "\S+test_leaky.py", line 12, in test_leaves_connection_open\n'
        r"        kept.append\(await aioconn.connect",
        errors["test_leaves_connection_open"],
    ), errors["test_leaves_connection_open"]
    assert re.fullmatch(
        r"aioconn leak check:\n  pending <Task pending name='Task-\d+' coro=<sleep\(\) .*>\n"
        r"    created at \(most recent call last\):\n"
        r'      File "\S+test_leaky.py", line 15, in test_leaves_task_pending\n'
        r"        kept.append\(asyncio.create_task\(asyncio.sleep\(30\)\)\)\n",
        errors["test_leaves_task_pending"],
    ), errors["test_leaves_task_pending"]
    assert re.match(
        r"aioconn leak check:\n  open <aioconn.Pool .*>, created at \S+test_leaky.py:18,",
        errors["test_leaves_pool_open"],
    ), errors["test_leaves_pool_open"]
    assert "aioconn.Connection" not in errors["test_leaves_pool_open"]  # they go with the pool


@pytest.mark.parametrize("filters", [[], ["-W", "ignore"]])
def test_leaks_freed_before_the_test_ends_are_caught_whatever_the_warning_filters(
    pytester: pytest.Pytester, filters: list[str]
) -> None:
    pytester.makeini(_INI)
    pytester.makepyfile(test_freed=_FREED_TESTS)
    result = pytester.runpytest_subprocess(*_FAST, *filters)
    result.assert_outcomes(passed=5, errors=4)
    errors = _errors(result.stdout.str())
    assert sorted(errors) == [
        "test_connection_freed_before_the_end",
        "test_pool_freed_before_the_end",
        "test_socket_freed_while_warnings_are_errors",
        "test_stream_freed_before_the_end",
    ]
    # The creation site, then the stack outermost first, user code only (no asyncio, pytest).
    connection = errors["test_connection_freed_before_the_end"]
    assert re.fullmatch(
        r"aioconn leak check:\n"
        r"  unclosed <aioconn.Connection 127.0.0.1:\d+ \[open\]>, created at \S+test_freed.py:9,"
        r" was freed without being closed\n"
        r"    opened at \(most recent call last\):\n"
        r'      File "\S+test_freed.py", line 13, in test_connection_freed_before_the_end\n'
        r"        conn = await connect_to\(echo_server.port\)\n"
        r'      File "\S+test_freed.py", line 9, in connect_to\n'
        r'        return await aioconn.connect\("127.0.0.1", port\)\n',
        connection,
    ), connection
    # The pool, where it was created and opened; its connections are not listed apart. (What
    # else a dropped pool leaves behind, such as sockets or its maintenance task, depends on
    # the pool core and is reported as such.)
    pool = errors["test_pool_freed_before_the_end"]
    assert pool.startswith("aioconn leak check:\n"), pool
    assert re.search(
        r"\n  unclosed <aioconn.Pool .*>, created at \S+test_freed.py:19, was freed without"
        r" being closed\n"
        r"    opened at \(most recent call last\):\n"
        r'      File "\S+test_freed.py", line 20, in test_pool_freed_before_the_end\n'
        r"        await pool.open\(\)\n",
        pool,
    ), pool
    assert "aioconn.Connection" not in pool
    stream = errors["test_stream_freed_before_the_end"]
    assert stream.startswith("aioconn leak check:\n  ResourceWarning: unclosed <StreamWriter")
    sock = errors["test_socket_freed_while_warnings_are_errors"]
    assert sock.startswith("aioconn leak check:\n  ResourceWarning: unclosed <socket.socket fd=")


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
    result = pytester.runpytest_subprocess(*_FAST, "-W", "ignore")
    result.assert_outcomes(passed=2, errors=1)
    assert "ERROR at teardown of test_checked" in result.stdout.str()


_STRICT_TESTS = """
import asyncio
import pytest
import aioconn

kept = []

@pytest.mark.asyncio
async def test_fixtures_work(echo_server, chaos_proxy):
    async with aioconn.connect(chaos_proxy.host, chaos_proxy.port, read_timeout=5) as conn:
        await conn.send(b"hi\\n")
        assert await conn.readline() == b"hi\\n"

@pytest.mark.asyncio
async def test_leaks_a_connection(echo_server):
    kept.append(await aioconn.connect("127.0.0.1", echo_server.port))

@pytest.mark.asyncio(loop_scope="module")
async def test_leaks_a_task_in_a_module_loop():
    kept.append(asyncio.create_task(asyncio.sleep(30)))

def test_sync_is_checked_too():
    import socket
    socket.socket()  # dropped at once: a ResourceWarning
"""


def test_strict_mode_runs_the_fixtures_and_the_leak_check(pytester: pytest.Pytester) -> None:
    pytester.makeini(_INI.replace("asyncio_mode = auto", "asyncio_mode = strict"))
    pytester.makepyfile(test_strict=_STRICT_TESTS)
    result = pytester.runpytest_subprocess(*_FAST)
    result.assert_outcomes(passed=4, errors=3)
    errors = _errors(result.stdout.str())
    assert sorted(errors) == [
        "test_leaks_a_connection",
        "test_leaks_a_task_in_a_module_loop",
        "test_sync_is_checked_too",
    ]
    assert "  open <aioconn.Connection 127.0.0.1:" in errors["test_leaks_a_connection"]
    assert "  pending <Task pending" in errors["test_leaks_a_task_in_a_module_loop"]
    assert "  ResourceWarning: unclosed <socket.socket" in errors["test_sync_is_checked_too"]


def test_without_pytest_asyncio_the_error_says_what_is_missing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\naioconn_leak_check = true\n")
    pytester.makepyfile(
        test_no_asyncio="""
async def test_async():
    pass

def test_fixture(echo_server):
    pass

def test_plain():
    pass
"""
    )
    result = pytester.runpytest_subprocess(*_FAST, "-p", "no:asyncio")
    result.assert_outcomes(passed=1, errors=2)
    output = result.stdout.str()
    for name, needs in [("test_async", "an async test function"), ("test_fixture", "echo_server")]:
        assert (
            f"aioconn: {name} needs pytest-asyncio ({needs}), which is disabled (-p no:asyncio):"
            " pip install 'aioconn[pytest]', and set asyncio_mode = auto (or mark async tests"
            " with @pytest.mark.asyncio)\n"
        ) in output
    assert "Traceback" not in output
    assert "fixtures.py" not in output
    assert len(output.splitlines()) < 30


def test_without_pytest_asyncio_installed_the_plugin_still_loads(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\naioconn_leak_check = true\n")
    pytester.makepyfile(
        test_no_asyncio="""
import socket

def test_fixture(chaos_proxy):
    pass

def test_sync_leak_check_works():
    socket.socket()  # dropped at once: a ResourceWarning
"""
    )
    # As if pytest-asyncio were not installed: it cannot be imported, and no plugin is loaded
    # from entry points but aioconn's.
    code = (
        "import sys; sys.modules['pytest_asyncio'] = None; import pytest;"
        " sys.exit(pytest.main(['-p', 'aioconn.testing.plugin', *sys.argv[1:]]))"
    )
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.run(sys.executable, "-c", code, "-q", "-p", "no:cacheprovider")
    assert result.ret == 1
    output = result.stdout.str()
    assert (
        "aioconn: test_fixture needs pytest-asyncio (echo_server, chaos_proxy,"
        " chaos_proxy_factory), which is not installed: pip install 'aioconn[pytest]'"
    ) in output
    assert "ERROR at teardown of test_sync_leak_check_works" in output
    assert "1 passed, 2 errors" in output


_SEED_TESTS = """
import asyncio
import pytest
from aioconn.testing import ChaosProxy, EchoServer

async def test_fixture_fails(chaos_proxy):
    assert False, "deliberate"

@pytest.mark.aioconn_seed(5)
async def test_marker_sets_the_seed(chaos_proxy, chaos_proxy_factory, echo_server):
    assert chaos_proxy.seed == 5
    assert (await chaos_proxy_factory(echo_server.host, echo_server.port)).seed == 5
    assert (await chaos_proxy_factory(echo_server.host, echo_server.port, seed=8)).seed == 8

async def test_option_sets_the_seed(chaos_proxy):
    assert chaos_proxy.seed == 77

async def test_factory_fronts_any_server(chaos_proxy_factory):
    async def shout(reader, writer):
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(shout, "127.0.0.1", 0)
    async with server:
        proxy = await chaos_proxy_factory("127.0.0.1", server.sockets[0].getsockname()[1])
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        writer.write(b"hi\\n")
        assert await reader.readline() == b"HI\\n"
        writer.close()
        await writer.wait_closed()
        await proxy.wait_for(open=0)
    assert proxy.stats.accepted == 1

async def test_own_proxy_fails(echo_server):
    async with ChaosProxy(echo_server.host, echo_server.port, seed=4242):
        assert False, "deliberate"
"""


def test_seeds_reported_and_set_by_option_and_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini(_INI)
    pytester.makepyfile(test_seeded=_SEED_TESTS)
    result = pytester.runpytest_subprocess(*_FAST, "-W", "ignore", "--aioconn-seed=77")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_fixture_fails _*",
            "*aioconn ChaosProxy seeds*",
            "ChaosProxy on 127.0.0.1:*: seed=77",
            "replay: pytest --aioconn-seed=77 (or @pytest.mark.aioconn_seed(77))",
            "*_ test_own_proxy_fails _*",
            "*aioconn ChaosProxy seeds*",
            "ChaosProxy on 127.0.0.1:*: seed=4242",
        ]
    )
    # A seed the test chose itself is named, but replaying it is up to the test.
    own = result.stdout.str().split("_ test_own_proxy_fails _")[1]
    assert "replay:" not in own


def test_random_fixture_seed_is_reported_on_failure(pytester: pytest.Pytester) -> None:
    pytester.makeini(_INI)
    pytester.makepyfile(
        test_random="""
async def test_fails(chaos_proxy):
    print(f"seed was {chaos_proxy.seed}")
    assert False
"""
    )
    result = pytester.runpytest_subprocess(*_FAST)
    result.assert_outcomes(failed=1)
    [seed] = re.findall(r"seed was (\d+)", result.stdout.str())
    result.stdout.fnmatch_lines([f"ChaosProxy on 127.0.0.1:*: seed={seed}"])


def test_bad_seed_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(_INI)
    pytester.makepyfile(
        test_bad="""
import pytest

@pytest.mark.aioconn_seed("five")
async def test_it(chaos_proxy):
    pass
"""
    )
    result = pytester.runpytest_subprocess(*_FAST)
    result.assert_outcomes(errors=1)
    assert "@pytest.mark.aioconn_seed takes one int >= 0, got ('five',)" in result.stdout.str()
