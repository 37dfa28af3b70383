"""ChaosProxy's port: listening, or held closed so that connects are refused (as by a downed
server) while no other program can take the port."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

logger = logging.getLogger("aioconn.proxy")

_BACKLOG = 100
_ACCEPT_PAUSE = 0.1  # out of file descriptors: stop accepting for a moment, as asyncio does
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Listener:
    """A TCP port that is either listening or reserved-but-refusing; switching is synchronous.

    Refusing closes the listening socket (queued, not yet accepted connections are reset by
    the kernel) and keeps a socket bound to the port without ``listen()``: the kernel answers a
    SYN with RST, so ``connect()`` fails with ``ECONNREFUSED``, and the port stays ours. Both
    sockets use ``SO_REUSEADDR``: the links accepted on the port (open, or in TIME_WAIT) inherit
    it, and only then may a new socket bind beside them. It keeps off every program that binds
    without ``SO_REUSEADDR``; one that sets it could still take the port while the proxy is
    disabled (on Linux), and ``enable()`` would then fail with ``OSError``.

    Each accepted socket is passed to ``on_socket``, non-blocking, on the event loop.
    """

    def __init__(
        self,
        host: str,
        port: int,
        on_socket: Callable[[socket.socket], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        family, _, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        self._family = family
        self._proto = proto
        self._address = address
        self._on_socket = on_socket
        self._loop = loop
        self._sock: socket.socket | None = None
        self._listening = False
        self._resume: asyncio.TimerHandle | None = None
        self._bind()  # reserves the port; port 0 picks one
        self.port: int = self._sock_or_raise().getsockname()[1]
        self._address = (address[0], self.port, *address[2:])

    @property
    def listening(self) -> bool:
        """True between ``listen()`` and ``refuse()``/``close()``."""
        return self._listening

    def listen(self) -> None:
        """Accept connections (from this call on, connects succeed); idempotent."""
        if self._listening:
            return
        self._sock_or_raise().listen(_BACKLOG)
        self._listening = True
        self._loop.add_reader(self._sock_or_raise(), self._accept_ready)

    def refuse(self) -> None:
        """Refuse connections (from this call on, connects fail), keeping the port; idempotent."""
        if not self._listening:
            return
        self._stop_reading()
        old = self._sock_or_raise()
        self._listening = False
        # A listening socket cannot stop listening: replace it by a bound one. No await between
        # the close and the bind, so nothing in this process can take the port meanwhile.
        old.close()
        self._bind()

    def close(self) -> None:
        """Release the port; idempotent."""
        if self._sock is None:
            return
        if self._listening:
            self._stop_reading()
        self._listening = False
        sock, self._sock = self._sock, None
        sock.close()

    def _bind(self) -> None:
        sock = socket.socket(self._family, socket.SOCK_STREAM, self._proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind(self._address)
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def _sock_or_raise(self) -> socket.socket:
        if self._sock is None:
            raise RuntimeError("the proxy's port was released")
        return self._sock

    def _stop_reading(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        else:
            self._loop.remove_reader(self._sock_or_raise())

    def _accept_ready(self) -> None:
        sock = self._sock_or_raise()
        for _ in range(_BACKLOG):
            try:
                client, _ = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                logger.warning("proxy cannot accept on port %d: %s; pausing", self.port, exc)
                self._loop.remove_reader(sock)
                self._resume = self._loop.call_later(_ACCEPT_PAUSE, self._resume_reading)
                return
            client.setblocking(False)
            # Small request/reply exchanges stall ~40 ms on Nagle + delayed ACK without it.
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._on_socket(client)

    def _resume_reading(self) -> None:
        self._resume = None
        if self._listening and self._sock is not None:
            self._loop.add_reader(self._sock, self._accept_ready)
