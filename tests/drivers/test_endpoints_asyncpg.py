"""``Endpoints.using`` with AsyncpgConnector against a real primary and its streaming replica:
balancing, the connector's hooks passed on, failover when an endpoint refuses connections."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

import aioconn
from aioconn import Endpoints, FactoryConnector, Pool
from aioconn.drivers import AsyncpgConnector
from aioconn.testing import ChaosProxy
from servers.postgres import PostgresReplica, PostgresServer

if TYPE_CHECKING:
    import asyncpg

    Conn = asyncpg.Connection[Any]
else:
    Conn = Any


def postgres(**where: Any) -> AsyncpgConnector:
    return AsyncpgConnector(user="postgres", database="postgres", timeout=5, **where)


async def server_port(conn: Conn) -> int:
    port: int = await conn.fetchval("SELECT inet_server_port()")
    return port


async def test_round_robin_over_primary_and_replica(
    postgres_server: PostgresServer, postgres_replica: PostgresReplica
) -> None:
    primary = f"{postgres_server.host}:{postgres_server.port}"
    replica = f"{postgres_replica.host}:{postgres_replica.port}"
    async with Pool(Endpoints.using(postgres, [primary, replica]), max_size=4) as pool:
        ports = []
        for _ in range(4):
            async with pool.acquire() as conn:
                ports.append(await server_port(conn))
        assert ports == [postgres_server.port, postgres_replica.port] * 2
        by_endpoint = {s.endpoint: s.state for s in pool.stats().endpoints}
        assert by_endpoint == {primary: "healthy", replica: "healthy"}


async def test_the_connectors_reset_runs_on_return(postgres_server: PostgresServer) -> None:
    endpoints = Endpoints.using(postgres, [f"{postgres_server.host}:{postgres_server.port}"])
    assert endpoints.reset is not None
    assert endpoints.recover is not None
    assert endpoints.init is None  # AsyncpgConnector without init= has none
    async with Pool(endpoints, max_size=1) as pool:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            first = conn
        async with pool.acquire() as conn:
            assert conn is first
            assert not conn.is_in_transaction()


async def test_a_refusing_endpoint_is_ejected_and_reads_fail_over(
    postgres_server: PostgresServer, postgres_replica: PostgresReplica
) -> None:
    primary = f"{postgres_server.host}:{postgres_server.port}"
    async with ChaosProxy(postgres_replica.host, postgres_replica.port) as proxy:
        replica = f"{proxy.host}:{proxy.port}"
        endpoints = Endpoints.using(postgres, [replica, primary], strategy="primary", eject_after=1)
        async with Pool(endpoints, max_size=2) as pool:
            async with pool.acquire() as conn:
                assert await server_port(conn) == postgres_replica.port
                assert await conn.fetchval("SELECT pg_is_in_recovery()")
            proxy.disable()  # the replica's idle connection is closed; connects are refused
            await proxy.wait_for(open=0)
            async with pool.acquire() as conn:
                assert await server_port(conn) == postgres_server.port  # failed over
            by_endpoint = {s.endpoint: s.state for s in pool.stats().endpoints}
            assert by_endpoint == {replica: "ejected", primary: "healthy"}


def test_a_factory_that_makes_no_connector_is_named() -> None:
    with pytest.raises(TypeError, match=r"connector\(host='127.0.0.1', port=5432\) returned 42"):
        Endpoints.using(lambda **where: 42, ["127.0.0.1:5432"])


async def test_hooks_the_connectors_lack_are_none() -> None:
    def plain(**where: Any) -> FactoryConnector[int]:
        async def make() -> int:
            await asyncio.sleep(0)
            return 1

        return FactoryConnector(make)

    endpoints = Endpoints.using(plain, ["127.0.0.1:1", "unix:/tmp/x.sock"])
    hooks: tuple[object, ...] = (endpoints.init, endpoints.reset, endpoints.recover)
    assert hooks == (None, None, None)
    assert isinstance(endpoints, aioconn.Endpoints)
