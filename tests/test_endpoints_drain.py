"""Endpoints at run time: drain, update_endpoints under load, exact per-endpoint stats, TLS/Unix."""

from __future__ import annotations

import asyncio
import ssl
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trustme

from aioconn import Connection, Endpoint, Endpoints, NoHealthyEndpoint, Pool, Summary
from aioconn.testing import EchoServer
from test_endpoints_support import Load, all_closed, dead_addresses, echo_servers, serve


def by_endpoint(pool: Pool[Connection]) -> dict[str, tuple[str, int, int, int]]:
    """endpoint -> (state, open, in_use, idle)."""
    return {e.endpoint: (e.state, e.open, e.in_use, e.idle) for e in pool.stats().endpoints}


async def test_drain_under_load_loses_no_request_and_sends_nothing_more_there() -> None:
    async with echo_servers() as servers:
        a, b, c = (s.address for s in servers)
        async with Pool(Endpoints([a, b, c], read_timeout=5), max_size=9) as pool:
            async with Load(pool, workers=6) as load:
                await load.more(200)
                while by_endpoint(pool)[b][2] == 0:  # drain while b serves requests
                    await load.more(1)
                pool.drain(b)  # b's idle connections close now, those in use when returned
                assert pool.stats().endpoints[1].state == "draining"
                async with asyncio.timeout(5):
                    await servers[1].wait_open_count(0)
                served_b, received_b, opened_b = (
                    load.served[b],
                    servers[1].bytes_received,
                    servers[1].opened,
                )
                await load.more(300)
                assert (load.served[b], servers[1].bytes_received) == (served_b, received_b)
                assert servers[1].opened == opened_b
            assert load.errors == []
            assert by_endpoint(pool)[b] == ("draining", 0, 0, 0)
            assert pool.stats().discarded.error == 0
            pool.drain(b)  # again: nothing changes
            # Listed again by update_endpoints, a drained endpoint is back in rotation.
            pool.update_endpoints([a, b, c])
            assert by_endpoint(pool)[b] == ("healthy", 0, 0, 0)
            async with Load(pool, workers=3) as load:
                await load.until(lambda: load.served[b] >= 10)
            assert load.errors == []
        await all_closed(*servers)


async def test_update_endpoints_under_load_adds_and_retires_without_losing_requests() -> None:
    async with echo_servers(4) as servers:  # the fourth is on 127.0.0.1 again, another port
        a, b, c, d = (s.address for s in servers)
        async with Pool(Endpoints([a, b, c], read_timeout=5), max_size=12) as pool:
            async with Load(pool, workers=6) as load:
                await load.more(200)
                while by_endpoint(pool)[c][2] == 0:  # remove c while it serves requests
                    await load.more(1)
                pool.update_endpoints([a, d, b])  # c leaves, d joins
                states = by_endpoint(pool)
                # c still has connections in use: it is listed, draining, after the others.
                assert list(states) == [a, d, b, c]
                assert states[c][0] == "draining"
                assert states[d] == ("healthy", 0, 0, 0)
                async with asyncio.timeout(5):
                    await servers[2].wait_open_count(0)
                assert [e.endpoint for e in pool.stats().endpoints] == [a, d, b]  # c is gone
                await load.until(lambda: load.served[d] >= 50)
                served_c = load.served[c]
                await load.more(200)
                assert load.served[c] == served_c
            assert load.errors == []
            assert pool.stats().discarded.error == 0
        await all_closed(*servers)


async def test_a_full_pool_makes_room_for_an_endpoint_with_no_connection() -> None:
    async with echo_servers() as servers:
        a, b, c = (s.address for s in servers)
        async with Pool(Endpoints([a, b]), max_size=4) as pool:
            async with AsyncExitStack() as stack:
                for _ in range(4):
                    await stack.enter_async_context(pool.acquire())
            assert by_endpoint(pool) == {a: ("healthy", 2, 0, 2), b: ("healthy", 2, 0, 2)}
            pool.update_endpoints([a, b, c])
            for i in range(3):  # round robin comes to c within three acquires
                async with pool.acquire() as conn:
                    await serve(conn, b"%d\n" % i)
            # One idle connection of a (the first with the most per weight) made room for c.
            stats = pool.stats()
            assert [e.open for e in stats.endpoints] == [1, 2, 1]
            assert (stats.size, stats.created, stats.discarded.not_reusable) == (4, 5, 1)
            for i in range(30):  # every endpoint has a connection: no more churn
                async with pool.acquire() as conn:
                    await serve(conn, b"%d\n" % i)
            assert (pool.stats().created, pool.stats().discarded.total) == (5, 1)
        await all_closed(*servers)


async def test_stats_are_exact() -> None:
    (dead,) = await dead_addresses(1)
    async with echo_servers(2) as servers:
        a, b = (s.address for s in servers)
        endpoints = Endpoints([Endpoint(a, weight=2), b, dead], eject_after=2, base_ejection=30)
        async with Pool(endpoints, max_size=6) as pool:
            fresh = pool.stats().endpoints
            assert [(e.endpoint, e.state, e.weight, e.open, e.failures) for e in fresh] == [
                (a, "healthy", 2.0, 0, 0),
                (b, "healthy", 1.0, 0, 0),
                (dead, "healthy", 1.0, 0, 0),
            ]
            assert fresh[0].connect_time == Summary()
            async with AsyncExitStack() as stack:
                conns = [await stack.enter_async_context(pool.acquire()) for _ in range(4)]
                # Weighted round robin over 2, 1, 1 picks a, b, dead, a; the attempt to `dead`
                # fails over, within the same acquire, to the next pick among a and b: a.
                assert [conn.target for conn in conns] == [a, b, a, a]
                assert by_endpoint(pool) == {
                    a: ("healthy", 3, 3, 0),
                    b: ("healthy", 1, 1, 0),
                    dead: ("healthy", 0, 0, 0),
                }
                stats = {e.endpoint: e for e in pool.stats().endpoints}
                assert (stats[dead].failures, stats[dead].consecutive_failures) == (1, 1)
                assert "Connect call failed" in (stats[dead].last_error or "")
            assert by_endpoint(pool) == {
                a: ("healthy", 3, 0, 3),
                b: ("healthy", 1, 0, 1),
                dead: ("healthy", 0, 0, 0),
            }
            # Four more: b's idle one, a's, then `dead` once more (its second failure: ejected),
            # failed over to a new connection to a; then a's idle one.
            for _ in range(4):
                async with pool.acquire():
                    pass
            stats = {e.endpoint: e for e in pool.stats().endpoints}
            assert [(stats[x].connect_time.count, stats[x].failures) for x in (a, b, dead)] == [
                (4, 0),
                (1, 0),
                (0, 2),
            ]
            assert (stats[dead].state, stats[dead].ejections) == ("ejected", 1)
            assert stats[a].connect_time.max > 0
            total = pool.stats()
            assert (total.created, total.connect_failures, total.acquired) == (5, 0, 8)
            assert by_endpoint(pool)[a] == ("healthy", 4, 0, 4)
        await all_closed(*servers)


async def test_every_endpoint_drained_fails_fast() -> None:
    async with echo_servers(2) as servers:
        a, b = (s.address for s in servers)
        async with Pool(Endpoints([a, b])) as pool:
            async with pool.acquire() as conn:
                pool.drain(a)
                pool.drain(b)
                await serve(conn, b"still served\n")  # in use: never dropped
            with pytest.raises(NoHealthyEndpoint, match=f"{a} draining; {b} draining"):
                await pool.get()
            assert [(e.open, e.idle) for e in pool.stats().endpoints] == [(0, 0), (0, 0)]
            assert pool.stats().discarded.not_reusable == 1  # closed when it came back
        await all_closed(*servers)


async def test_unknown_endpoint_cannot_be_drained() -> None:
    async with echo_servers(1) as (server,):
        endpoints = Endpoints([server.address])
        with pytest.raises(ValueError, match=r"endpoint '127\.0\.0\.9:1' is not one of"):
            endpoints.drain("127.0.0.9:1")
        with pytest.raises(ValueError, match=r"endpoint: 'nonsense' is not an address"):
            endpoints.drain("nonsense")
        endpoints.drain(Endpoint(server.address))  # an Endpoint names its address too
        assert endpoints.endpoint_stats()[0].state == "draining"


async def test_per_endpoint_tls_and_a_unix_socket_in_one_pool(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("db.internal").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with (
        EchoServer(host="127.0.0.2", ssl=server_ctx) as tls,
        EchoServer(host="127.0.0.3") as plain,
        EchoServer(path=tmp_path / "echo.sock") as unix,
    ):
        endpoints = Endpoints(
            [
                Endpoint(tls.address, ssl=client_ctx, server_hostname="db.internal"),
                plain.address,
                unix.address,
            ],
            read_timeout=5,
        )
        async with Pool(endpoints, max_size=3) as pool:
            async with AsyncExitStack() as stack:
                conns = [await stack.enter_async_context(pool.acquire()) for _ in range(3)]
                assert [c.target for c in conns] == [tls.address, plain.address, unix.address]
                assert [c.tls_version is not None for c in conns] == [True, False, False]
                for conn in conns:
                    await serve(conn, b"hello\n")
        await all_closed(tls, plain, unix)
