"""Endpoints rejects bad input at once, with an error that names the parameter."""

from __future__ import annotations

import math
from typing import Any

import pytest

import aioconn
from aioconn import Endpoint, Endpoints


@pytest.mark.parametrize(
    ("endpoints", "error", "message"),
    [
        ([], ValueError, "endpoints must not be empty"),
        ("127.0.0.1:80", TypeError, "endpoints must be a list"),
        (("127.0.0.1", 80), TypeError, r"endpoints must be a list; for one endpoint write \["),
        (None, TypeError, "endpoints must be a list"),
        (["localhost"], ValueError, r"endpoints\[0\]: 'localhost' is not an address"),
        (["a:1", ":80"], ValueError, r"endpoints\[1\]: ':80' is not an address"),
        (["a:http"], ValueError, r"endpoints\[0\]: 'a:http' has a port that is not a number"),
        (["a:70000"], ValueError, r"endpoints\[0\]: the port of 'a:70000' must be in 1..65535"),
        (["a:0"], ValueError, r"the port of 'a:0' must be in 1..65535"),
        (["::1:80"], ValueError, r"'::1:80' is ambiguous; write an IPv6 host as \[::1\]"),
        (["unix:"], ValueError, r"endpoints\[0\]: 'unix:' has no socket path"),
        ([("a", "80")], TypeError, r"endpoints\[0\]: the port of \('a', '80'\) must be an int"),
        ([("a", 1, 2)], TypeError, r"endpoints\[0\]: \('a', 1, 2\) is not a \(host, port\)"),
        ([("", 80)], ValueError, r"endpoints\[0\]: \('', 80\) has an empty host"),
        ([42], TypeError, r"endpoints\[0\] must be a str, a \(host, port\) tuple or an aioconn"),
        (["a:1", "b:2", "a:1"], ValueError, r"endpoints\[2\]: 'a:1' is listed twice"),
        (["a:1", ("a", 1)], ValueError, r"endpoints\[1\]: 'a:1' is listed twice"),
    ],
)
def test_bad_endpoint_lists(endpoints: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Endpoints(endpoints)


@pytest.mark.parametrize(
    ("weight", "error"),
    [
        (0, ValueError),
        (-1.5, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (True, TypeError),
        ("2", TypeError),
    ],
)
def test_weight_must_be_a_positive_number(weight: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="weight must be a"):
        Endpoint("a:1", weight=weight)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"strategy": "fastest"}, ValueError, "strategy must be one of 'round_robin', 'random',"),
        ({"strategy": None}, TypeError, "strategy must be a str"),
        ({"eject_after": 0}, ValueError, "eject_after must be >= 1, got 0"),
        ({"eject_after": 1.5}, TypeError, "eject_after must be an int"),
        ({"failure_ratio": 0.5}, TypeError, r"failure_ratio must be None or a \(ratio, window\)"),
        ({"failure_ratio": (0, 10)}, ValueError, r"failure_ratio's ratio must be in \(0, 1\]"),
        ({"failure_ratio": (1.5, 10)}, ValueError, r"failure_ratio's ratio must be in \(0, 1\]"),
        ({"failure_ratio": (0.5, 0)}, ValueError, "failure_ratio's window must be >= 1"),
        ({"base_ejection": 0}, ValueError, "base_ejection must be a positive finite number"),
        ({"max_ejection": None}, TypeError, "max_ejection must be a number of seconds"),
        ({"base_ejection": 5, "max_ejection": 1}, ValueError, "max_ejection must be >= base"),
        ({"max_per_endpoint": 0}, ValueError, "max_per_endpoint must be >= 1"),
        ({"seed": "x"}, TypeError, "seed must be an int or None"),
        ({"connect_timeout": -1}, ValueError, "connect_timeout must be a positive"),
        ({"server_hostname": "x"}, ValueError, "server_hostname is only meaningful with ssl"),
        ({"retry": aioconn.Retry()}, TypeError, "unexpected keyword argument 'retry'"),
    ],
)
def test_bad_options(options: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Endpoints(["127.0.0.1:1"], **options)


def test_bad_per_endpoint_tls() -> None:
    with pytest.raises(ValueError, match=r"endpoints\[1\]: server_hostname is only meaningful"):
        Endpoints(["a:1", Endpoint("b:2", server_hostname="b")])
    with pytest.raises(ValueError, match=r"endpoints\[0\]: server_hostname is required with ssl"):
        Endpoints([Endpoint("unix:/run/db.sock", ssl=True)])
    with pytest.raises(TypeError, match=r"ssl must be None, a bool or an ssl\.SSLContext"):
        Endpoint("a:1", ssl="yes")  # type: ignore[arg-type]  # the bad input under test
    with pytest.raises(ValueError, match="server_hostname must be a non-empty str"):
        Endpoint("a:1", ssl=True, server_hostname="")
    with pytest.raises(ValueError, match=r"address: 'a' is not an address"):
        Endpoint("a")
    # A shared TLS setting with a plain endpoint: that endpoint drops the shared name.
    Endpoints([Endpoint("a:1", ssl=False), "b:2"], ssl=True, server_hostname="db.internal")


def test_update_endpoints_checks_everything_before_changing_anything() -> None:
    endpoints = Endpoints(["127.0.0.1:1", "127.0.0.2:1"])
    with pytest.raises(ValueError, match=r"endpoints\[1\]: 'nope' is not an address"):
        endpoints.update_endpoints(["127.0.0.3:1", "nope"])
    with pytest.raises(ValueError, match="endpoints must not be empty"):
        endpoints.update_endpoints([])
    assert endpoints.endpoints == ("127.0.0.1:1", "127.0.0.2:1")


def test_accepted_forms_and_their_names() -> None:
    endpoints = Endpoints(
        ["db1:5432", ("10.0.0.2", 5432), "[::1]:5432", "unix:/run/db.sock", Endpoint("db3:1", 2)]
    )
    assert endpoints.endpoints == (
        "db1:5432",
        "10.0.0.2:5432",
        "[::1]:5432",
        "unix:/run/db.sock",
        "db3:1",
    )
    assert Endpoint(("::1", 80)).name == "[::1]:80"
    assert Endpoint("db3:1", 2).weight == 2.0


async def test_pool_drain_needs_an_endpoints_connector() -> None:
    async def make() -> object:
        return object()

    async with aioconn.Pool(make) as pool:
        with pytest.raises(TypeError, match=r"drain\(\) needs an aioconn.Endpoints connector"):
            pool.drain("127.0.0.1:1")
