"""A server process on a free loopback port: started, waited for, stopped, never left behind."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

START_TIMEOUT = 30.0  # seconds a server gets to become ready (the wheels need ~0.5 s here)
STOP_TIMEOUT = 10.0
_POLL = 0.01  # only the wait for a child process polls: there is no event to wait on
_PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    """A server could not be found, started or stopped; the message says which and why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:
    # If the test session dies without running its finalizers (SIGKILL, a hard timeout), the
    # kernel kills the server too, so no stray server outlives the session.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ServerProcess:
    """One child process running a server: ``start()`` waits until ``ready()`` says so.

    Subclasses give the command line and the readiness test. Output goes to ``log_path``,
    which every error message quotes.
    """

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, base: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.base = base
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.log_path = base / f"{self.name.lower()}.log"
        self.started_in: float | None = None  # seconds the last start() took
        self._process: subprocess.Popen[bytes] | None = None

    # -- for subclasses ---------------------------------------------------------------------

    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def user(self) -> int | None:
        """The uid to run as, or None for this process's own."""
        return None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError(f"{self.name} is not running")
        return self._process.pid

    def start(self) -> float:
        """Start the server on ``port`` and wait until it is ready; returns the seconds taken.

        Raises:
            ServerError: the process exited or was not ready within START_TIMEOUT; the
                message quotes the end of its log.
        """
        if self.running:
            raise ServerError(f"{self.name} is already running (pid {self.pid})")
        began = time.monotonic()
        uid = self.user()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                list(self.command()),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                user=uid,
                group=None if uid is None else _gid_of(uid),
                extra_groups=None if uid is None else [],
                preexec_fn=_die_with_parent,  # runs after the uid switch
                start_new_session=True,  # a process group of its own, for kill()
            )
        self._wait(lambda: self.ready(), began)
        self.started_in = time.monotonic() - began
        return self.started_in

    def _wait(self, condition: Callable[[], bool], began: float) -> None:
        process = self._process
        assert process is not None
        while not condition():
            if process.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with status {process.returncode} while starting"
                    f" on {self.host}:{self.port}.\n{self.log_tail()}"
                )
            if time.monotonic() - began > START_TIMEOUT:
                self.kill()
                raise ServerError(
                    f"{self.name} was not ready on {self.host}:{self.port} within"
                    f" {START_TIMEOUT} s.\n{self.log_tail()}"
                )
            # Synchronous on purpose: another process's readiness has no event to wait on, only
            # a bounded poll. A test with load on its loop calls this in an executor thread
            # (tests/integration); the others have nothing else running while they wait.
            time.sleep(_POLL)

    def stop(self) -> None:
        """Ask the server to shut down, wait for it, and kill it if it takes too long."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(self.stop_signal)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """SIGKILL the server and every process it started (PostgreSQL's backends), as a crash
        of the machine would, and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        # The server's children die a moment later; a restart before they are gone finds their
        # resources (PostgreSQL: the shared memory block) still in use.
        deadline = time.monotonic() + STOP_TIMEOUT
        while _live_members(process.pid):
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.name}'s processes outlived SIGKILL: {_live_members(process.pid)}"
                )
            time.sleep(_POLL)  # a bounded poll, as in start()

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").splitlines()
            return f"last lines of {self.log_path}:\n" + "\n".join(text[-lines:])
        return f"(no log at {self.log_path})"

    def __repr__(self) -> str:
        state = f"pid {self._process.pid}" if self._process is not None else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"


S = TypeVar("S", bound=ServerProcess)


@contextlib.contextmanager
def running(kind: type[S], *args: object) -> Iterator[S]:
    """A ``kind`` server started in a new temporary directory on a free loopback port; stopped,
    and its directory removed, on exit. The test fixtures and the benchmarks both start theirs
    here.

    Raises:
        ServerError: it could not be found or started (the message says why).
    """
    prefix = kind.name.lower().replace(" ", "-")
    base = Path(tempfile.mkdtemp(prefix=f"aioconn-{prefix}-"))
    try:
        server = kind(base, *args)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _live_members(group: int) -> list[int]:
    """The processes of process group ``group`` that have not exited (zombies excluded)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rpartition(")")[2].split()
        except OSError:  # exited meanwhile
            continue
        state, process_group = fields[0], int(fields[2])
        if process_group == group and state != "Z":
            members.append(int(entry))
    return members


def _gid_of(uid: int) -> int:
    import pwd

    return pwd.getpwuid(uid).pw_gid


def package_dir(distribution: str, module: str) -> Path:
    """Where ``module`` (from the pip distribution ``distribution``) is installed.

    Found without importing it, so a package with import-time side effects stays inert.

    Raises:
        ServerError: not installed, naming the pin that provides it.
    """
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(
            f"the {distribution!r} wheel is not installed (module {module!r} not found): it is"
            " pinned in the 'dev' extra of pyproject.toml; run `make test`, or"
            " `pip install -e '.[dev]'`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def executable(path: Path, what: str) -> Path:
    """``path`` if it is an executable file, else a ServerError naming ``what`` is missing."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ServerError(f"{what} is missing: no executable at {path}")
    return path
