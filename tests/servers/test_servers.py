"""The session's real servers: they run where the fixtures say, restart on the same port, and a
missing wheel is an error that names it."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from servers import postgres
from servers._process import ServerError, package_dir
from servers.pg_watch import until_replayed
from servers.postgres import PostgresServer
from servers.redis import RedisServer


async def test_postgres_answers_on_its_port(postgres_server: PostgresServer) -> None:
    conn = await asyncpg.connect(postgres_server.dsn)
    try:
        assert await conn.fetchval("SHOW server_version_num") >= "180000"
        assert await conn.fetchval("SHOW port") == str(postgres_server.port)
        assert await conn.fetchval("SHOW fsync") == "off"
        assert await conn.fetchval("SELECT current_user") == "postgres"
    finally:
        await conn.close()


async def test_redis_answers_on_its_port(redis_server: RedisServer) -> None:
    reader, writer = await asyncio.open_connection(redis_server.host, redis_server.port)
    try:
        writer.write(b"SET servers:test 42\r\nGET servers:test\r\nDEL servers:test\r\n")
        expected = b"+OK\r\n$2\r\n42\r\n:1\r\n"
        assert await reader.readexactly(len(expected)) == expected
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="aioconn-test-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


async def _refused(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def test_redis_restarts_on_the_same_port(scratch_dir: Path) -> None:
    server = RedisServer(scratch_dir)
    server.start()
    try:
        first_pid = server.pid
        server.stop()
        assert not server.running
        assert await _refused(server.host, server.port)
        server.start()
        assert server.pid != first_pid
        assert server.ready()
    finally:
        server.stop()


async def test_postgres_restarts_and_keeps_its_data(scratch_dir: Path) -> None:
    server = PostgresServer(scratch_dir)
    server.start()
    try:
        conn = await asyncpg.connect(server.dsn)
        await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        server.kill()  # a crash: every server process dies, the session's socket closes
        for _ in range(1000):  # asyncpg sees the connection lost on its next loop iteration
            if conn.is_closed():
                break
            await asyncio.sleep(0.005)
        assert conn.is_closed()
        conn.terminate()
        assert await _refused(server.host, server.port)
        server.start()  # crash recovery replays the WAL
        conn = await asyncpg.connect(server.dsn)
        try:
            assert await conn.fetchval("SELECT n FROM kept") == 7
        finally:
            await conn.close()
    finally:
        server.stop()


def test_a_missing_wheel_fails_with_its_name() -> None:
    with pytest.raises(ServerError, match=r"'embedded-postgres-nightly' wheel is not installed"):
        package_dir("embedded-postgres-nightly", "embedded_postgres_nightly")


class MisconfiguredRedis(RedisServer):
    def command(self) -> list[str]:
        return [*super().command(), "--no-such-directive", "1"]


def test_a_server_that_exits_while_starting_quotes_its_log(scratch_dir: Path) -> None:
    server = MisconfiguredRedis(scratch_dir)
    with pytest.raises(
        ServerError, match=r"(?s)Redis exited with status 1 while starting.*no-such-directive"
    ):
        server.start()
    assert not server.running


async def test_the_replica_streams_the_primarys_writes(
    postgres_server: PostgresServer, postgres_replica: PostgresServer
) -> None:
    primary = await asyncpg.connect(postgres_server.dsn)
    replica = await asyncpg.connect(postgres_replica.dsn)
    try:
        assert await replica.fetchval("SELECT pg_is_in_recovery()") is True
        await primary.execute("CREATE TABLE IF NOT EXISTS replicated (n int)")
        await primary.execute("INSERT INTO replicated VALUES (1)")
        written = await primary.fetchval("SELECT pg_current_wal_lsn()")
        await until_replayed(replica, written)
        assert await replica.fetchval("SELECT count(*) FROM replicated") >= 1
        with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
            await replica.execute("INSERT INTO replicated VALUES (2)")
    finally:
        await primary.close()
        await replica.close()


async def test_postgres_runs_from_a_copy_when_its_user_cannot_reach_the_venv(
    scratch_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "traversable_by_others", lambda path: False)
    if os.geteuid() != 0:  # as root it runs as nobody anyway; else run as ourselves, explicitly
        monkeypatch.setattr(PostgresServer, "user", lambda self: os.geteuid())
    server = PostgresServer(scratch_dir)
    assert server.bin_dir == scratch_dir / "embedded-postgres/embedded_postgres/pginstall/bin"
    server.start()
    try:
        conn = await asyncpg.connect(server.dsn)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    finally:
        server.stop()
