"""A single TCP, TLS or Unix-socket byte stream whose close cannot be skipped or hang."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import ssl as _ssl
import struct
import sys
import time
import warnings
from types import FrameType, TracebackType
from typing import Any, Final, Self

from . import _registry, _validate
from ._open import Target, open_transport
from ._options import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HAPPY_EYEBALLS_DELAY,
    DEFAULT_LIMIT,
    ConnectOptions,
    KeepAlive,
    make_options,
)
from ._slot import LEASED, Slot
from ._where import caller_site
from .errors import (
    ConnectError,
    ConnectionClosed,
    ConnectionReleased,
    ProtocolError,
    ReadTimeout,
    WriteTimeout,
)
from .retry import Retry

__all__ = ["DEFAULT", "CallTimeout", "Connection"]

logger = logging.getLogger("aioconn.connection")


class _Default(enum.Enum):
    DEFAULT = "DEFAULT"


DEFAULT: Final = _Default.DEFAULT
"""Per-call ``timeout=`` default: use the connection's ``read_timeout``/``write_timeout``."""

CallTimeout = float | _Default | None

_NEW, _CONNECTING, _OPEN, _CLOSED = range(4)
_FRAME_HEADER = struct.Struct("!I")


# A tuple, not `bytes | bytearray | memoryview`: that union is built anew on every call
# (isinstance with it cost ~110 ns, with the tuple ~15 ns, on every send).
_BYTES_LIKE = (bytes, bytearray, memoryview)


class _Reader(asyncio.StreamReader):
    """A StreamReader that tells how many received bytes nobody has read yet."""

    # StreamReader keeps unread bytes in `_buffer` (a bytearray), its EOF flag in `_eof` and a
    # pending error in `_exception`, all since Python 3.4; typeshed calls them private.

    @property
    def buffered(self) -> int:
        return len(self._buffer)  # type: ignore[attr-defined]  # private in typeshed


def connection_reusable(connection: Connection) -> bool:
    """``connection.reusable``, as one plain function: the built-in connectors' ``is_reusable``.

    A pool asks it on every return; as a function it costs one Python frame where the property
    (through an attrgetter) and a reader property cost three. It never raises.
    """
    reader = connection._reader
    transport = connection._transport
    return (
        reader is not None
        and transport is not None
        and not connection._broken
        # nothing unread, no EOF, no error pending: at_eof() and exception() in one look
        and not reader._buffer  # type: ignore[attr-defined]  # private in typeshed
        and not reader._eof  # type: ignore[attr-defined]  # private in typeshed
        and reader._exception is None  # type: ignore[attr-defined]  # private in typeshed
        and not transport.is_closing()
    )


class Connection:
    """One byte stream to a server, opened with ``connect()`` and always closed.

    Use it as ``async with Connection(host, port) as conn:`` — leaving the block closes the
    connection on every path (return, exception, timeout, cancellation) and never replaces
    the block's exception. ``Connection.unix(path)`` builds one for a Unix socket.

    Args:
        host: the name or address to connect to.
        port: the TCP port, 0..65535.
        ssl: ``True`` for a default, verifying TLS context; an ``ssl.SSLContext`` to use as
            given; ``None``/``False`` for plain TCP. Verification is never turned off for you.
        server_hostname: the name to verify the certificate against (default: ``host``).
        connect_timeout: seconds to resolve, connect and handshake (default 10.0);
            ``None``: no limit.
        close_timeout: seconds a graceful close may take before the socket is aborted
            (default 2.0).
        read_timeout: default deadline of each read call in seconds, or ``None``.
        write_timeout: default deadline of each send call in seconds, or ``None``.
        local_addr: ``(host, port)`` to bind the local end to.
        happy_eyeballs_delay: seconds before racing the next address (RFC 8305; default 0.25), or
            ``None`` to try addresses one after another.
        nodelay: keep ``TCP_NODELAY`` on (asyncio's default).
        keepalive: ``True`` or an ``aioconn.KeepAlive`` to enable TCP keepalive probes.
        limit: the longest line or frame accepted, in bytes (default 65536).
        retry: an ``aioconn.Retry`` policy for connect failures.

    Raises:
        TypeError, ValueError: for an invalid argument, naming it.
    """

    __slots__ = (
        "__weakref__",
        "_broken",
        "_created_where",
        "_lent",
        "_options",
        "_pool_name",
        "_reader",
        "_state",
        "_target",
        "_transport",
        "_writer",
        "created_at",
        "last_used_at",
    )

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: bool | _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        local_addr: tuple[str, int] | None = None,
        happy_eyeballs_delay: float | None = DEFAULT_HAPPY_EYEBALLS_DELAY,
        nodelay: bool = True,
        keepalive: bool | KeepAlive = False,
        limit: int = DEFAULT_LIMIT,
        retry: Retry | None = None,
    ) -> None:
        options = make_options(
            ssl=ssl,
            server_hostname=server_hostname,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            local_addr=local_addr,
            happy_eyeballs_delay=happy_eyeballs_delay,
            nodelay=nodelay,
            keepalive=keepalive,
            limit=limit,
            retry=retry,
        )
        self._setup(Target(host=_validate.host(host), port=_validate.port(port)), options)

    @classmethod
    def unix(
        cls,
        path: str | os.PathLike[str],
        *,
        ssl: bool | _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        limit: int = DEFAULT_LIMIT,
        retry: Retry | None = None,
    ) -> Connection:
        """A connection to the Unix socket at ``path`` (same options as TCP where they apply).

        Args:
            path: the socket's file system path.
            ssl: TLS over the socket, as for TCP (rarely needed on a Unix socket).
            server_hostname: the name to verify the certificate against; required with ``ssl``.
            connect_timeout: seconds for the connect and any handshake (default 10.0);
                ``None``: no limit.
            close_timeout: seconds a graceful close may take before the socket is aborted
                (default 2.0).
            read_timeout: default deadline of each read call in seconds, or ``None``.
            write_timeout: default deadline of each send call in seconds, or ``None``.
            limit: the longest line or frame accepted, in bytes (default 65536).
            retry: an ``aioconn.Retry`` policy for connect failures.

        Raises:
            TypeError, ValueError: for an invalid argument, naming it.
        """
        options = make_options(
            ssl=ssl,
            server_hostname=server_hostname,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            limit=limit,
            retry=retry,
        )
        if options.ssl is not None and options.server_hostname is None:
            raise ValueError("server_hostname is required with ssl on a Unix socket (no host name)")
        return cls._from_options(Target(path=_unix_path(path)), options)

    @classmethod
    def _from_options(cls, target: Target, options: ConnectOptions) -> Connection:
        """Build from pre-validated options (the connectors validate once, not per connection)."""
        self = cls.__new__(cls)
        self._setup(target, options)
        return self

    def _setup(self, target: Target, options: ConnectOptions) -> None:
        self._target = target
        self._options = options
        self._state = _NEW
        self._broken = False
        self._reader: _Reader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._transport: asyncio.Transport | None = None
        # The pool's record of this connection, when a pool owns it: I/O is refused while
        # the record says it is given back (idle in the pool, or closed by it).
        self._lent: Slot[Any] | None = None
        self._pool_name = ""
        self.created_at = time.time()
        self.last_used_at = time.monotonic()
        self._created_where = _caller_outside_aioconn(sys._getframe(2))

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> Self:
        """Open the connection (with ``retry`` if configured) and return ``self``.

        Raises:
            ConnectError: every address failed; ``attempts`` says which and why.
            ConnectTimeout: ``connect_timeout`` passed.
            RuntimeError: ``connect()`` was already called on this connection.
        """
        if self._state != _NEW:
            raise RuntimeError(f"connect() was already called on {self!r}")
        self._state = _CONNECTING
        started = time.monotonic()
        logger.debug("connecting to %s", self._target)
        try:
            retry = self._options.retry
            if retry is None:
                opened = await self._open_once()
            else:
                opened = await retry.call(
                    self._open_once, retry_on=(ConnectError,), description=f"connect {self._target}"
                )
        except BaseException as exc:
            self._state = _CLOSED
            logger.debug("connecting to %s failed: %r", self._target, exc)
            raise
        transport, protocol, reader = opened
        if self._state != _CONNECTING:  # close() or abort() ran while we were connecting
            transport.abort()
            raise ConnectionClosed(f"connection to {self._target} was closed while connecting")
        self._transport = transport
        self._reader = reader
        self._writer = asyncio.StreamWriter(transport, protocol, reader, asyncio.get_running_loop())
        self._state = _OPEN
        _registry.open_connections.add(self)
        self.last_used_at = time.monotonic()
        logger.debug(
            "connected to %s (peer %s) in %.1f ms",
            self._target,
            self.peername,
            (self.last_used_at - started) * 1000,
        )
        return self

    async def _open_once(
        self,
    ) -> tuple[asyncio.Transport, asyncio.StreamReaderProtocol, _Reader]:
        limit = self._options.limit
        transport, protocol, reader = await open_transport(
            self._target, self._options, lambda: _Reader(limit=limit)
        )
        assert isinstance(reader, _Reader)
        return transport, protocol, reader

    async def close(self) -> None:
        """Close the connection: gracefully within ``close_timeout``, else abort the socket.

        Idempotent. If the calling task is cancelled meanwhile the socket is aborted (never left
        open) and ``CancelledError`` propagates. Errors the peer caused on the way out (resets)
        are not raised: the connection is closed either way.
        """
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        _registry.open_connections.discard(self)
        writer, transport = self._writer, self._transport
        self._reader = None
        self._writer = None
        if writer is None or transport is None:
            return
        started = time.monotonic()
        logger.debug("closing connection to %s", self._target)
        writer.close()  # synchronous first: from here on nothing can leave the socket open
        try:
            async with asyncio.timeout(self._options.close_timeout):
                await writer.wait_closed()
        except TimeoutError:
            transport.abort()
            logger.warning(
                "connection to %s did not close within close_timeout=%s s; aborted",
                self._target,
                self._options.close_timeout,
            )
            return
        except OSError as exc:
            logger.debug("connection to %s closed with %r", self._target, exc)
        except BaseException:
            transport.abort()
            logger.debug("close of connection to %s interrupted; aborted", self._target)
            raise
        logger.debug(
            "closed connection to %s in %.1f ms",
            self._target,
            (time.monotonic() - started) * 1000,
        )

    def abort(self) -> None:
        """Close the socket at once, discarding unsent data (a TCP RST where possible)."""
        if self._state == _CLOSED and self._transport is None:
            return
        self._state = _CLOSED
        _registry.open_connections.discard(self)
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()  # before dropping the writer, whose __del__ checks is_closing()
            logger.debug("aborted connection to %s", self._target)
        self._reader = None
        self._writer = None

    async def __aenter__(self) -> Self:
        if self._state == _NEW:
            await self.connect()
        elif self._state != _OPEN:
            raise ConnectionClosed(f"connection to {self._target} is closed")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __del__(self) -> None:
        if getattr(self, "_state", _CLOSED) == _OPEN and self._transport is not None:
            transport = self._transport
            warnings.warn(
                f"unclosed {self!r}, created at {self._created_where}",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                transport.abort()

    # -- state -------------------------------------------------------------------------------

    @property
    def created_where(self) -> str:
        """``file:line`` of the code outside aioconn that created this connection."""
        return self._created_where

    @property
    def closed(self) -> bool:
        """True once ``close()``/``abort()`` ran or ``connect()`` failed."""
        return self._state == _CLOSED

    @property
    def broken(self) -> bool:
        """True once an I/O call was cancelled, timed out or failed: protocol state unknown."""
        return self._broken

    @property
    def reusable(self) -> bool:
        """Open, not broken, not at EOF, no error pending and nothing unread: safe to hand on."""
        return connection_reusable(self)

    def mark_broken(self) -> None:
        """Declare the protocol state unknown, so a pool will close this connection."""
        self._broken = True

    @property
    def buffered(self) -> int:
        """Bytes received from the peer that nobody has read yet."""
        reader = self._reader
        return 0 if reader is None else reader.buffered

    @property
    def target(self) -> str:
        """Where this connection goes, as ``host:port`` or ``unix:/path``."""
        return str(self._target)

    @property
    def peername(self) -> Any:
        """The peer's address as the socket reports it, or None when not open."""
        if self._state != _OPEN or self._transport is None:
            return None
        return self._transport.get_extra_info("peername")

    @property
    def sockname(self) -> Any:
        """The local address, or None when not open."""
        if self._state != _OPEN or self._transport is None:
            return None
        return self._transport.get_extra_info("sockname")

    @property
    def tls_version(self) -> str | None:
        """The negotiated TLS version (e.g. ``"TLSv1.3"``), or None without TLS."""
        ssl_object = self._ssl_object()
        return None if ssl_object is None else ssl_object.version()

    @property
    def cipher(self) -> tuple[str, str, int] | None:
        """The negotiated cipher ``(name, protocol, secret bits)``, or None without TLS."""
        ssl_object = self._ssl_object()
        return None if ssl_object is None else ssl_object.cipher()

    @property
    def peer_certificate(self) -> dict[str, Any] | None:
        """The verified peer certificate as ``ssl.SSLSocket.getpeercert()`` returns it."""
        ssl_object = self._ssl_object()
        if ssl_object is None:
            return None
        return dict(ssl_object.getpeercert() or {})

    def _ssl_object(self) -> _ssl.SSLObject | None:
        if self._transport is None:
            return None
        ssl_object: _ssl.SSLObject | None = self._transport.get_extra_info("ssl_object")
        return ssl_object

    def __repr__(self) -> str:
        state = ("new", "connecting", "open", "closed")[self._state]
        if self._broken:
            state += ", broken"
        return f"<aioconn.Connection {self._target} [{state}]>"

    # -- I/O ---------------------------------------------------------------------------------

    async def send(
        self, data: bytes | bytearray | memoryview, *, timeout: CallTimeout = DEFAULT
    ) -> None:
        """Write ``data`` and wait until the transport's buffer drained below its high-water mark.

        Args:
            data: the bytes to send (``bytes``, ``bytearray`` or ``memoryview``).
            timeout: seconds for this call; ``None``: no limit; default: the connection's
                ``write_timeout``.

        Raises:
            TypeError: ``data`` is not bytes-like.
            WriteTimeout: the peer did not take the data in time (the connection is broken).
            ConnectionClosed: the connection is closed or was reset.
        """
        if (lent := self._lent) is not None and lent.state is not LEASED and lent.given_back:
            raise self._released_error("send")
        writer = self._writer
        if writer is None:
            raise self._closed_error()
        if not isinstance(data, _BYTES_LIKE):
            raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
        deadline = self._options.write_timeout if timeout is DEFAULT else _call_timeout(timeout)
        try:
            writer.write(data)
            # Everything went to the kernel and the transport is open: drain() would return at
            # once, after two coroutine frames (~0.4 µs, ~4 % of a loopback echo on uvloop).
            transport = writer.transport
            if transport.get_write_buffer_size() or transport.is_closing():
                if deadline is None:
                    await writer.drain()
                else:
                    async with asyncio.timeout(deadline):
                        await writer.drain()
        except BaseException as exc:
            self._broken = True
            mapped = self._map_error(exc, "write", deadline)
            if mapped is exc:
                raise
            raise mapped from exc
        self.last_used_at = time.monotonic()

    async def recv(self, max_bytes: int = 65536, *, timeout: CallTimeout = DEFAULT) -> bytes:
        """Read up to ``max_bytes`` as soon as any are available.

        Unlike the other read helpers this returns ``b""`` at EOF, as sockets do.

        Args:
            max_bytes: the most bytes to return (>= 1).
            timeout: seconds for this call; ``None``: no limit; default: the connection's
                ``read_timeout``.

        Raises:
            ReadTimeout: nothing arrived within the deadline (the connection is broken).
            ConnectionClosed: the connection is closed or was reset.
        """
        if (lent := self._lent) is not None and lent.state is not LEASED and lent.given_back:
            raise self._released_error("recv")
        reader = self._reader
        if reader is None:
            raise self._closed_error()
        _validate.integer("max_bytes", max_bytes, minimum=1)
        deadline = self._options.read_timeout if timeout is DEFAULT else _call_timeout(timeout)
        try:
            if deadline is None:
                data = await reader.read(max_bytes)
            else:
                async with asyncio.timeout(deadline):
                    data = await reader.read(max_bytes)
        except BaseException as exc:
            mapped = self._read_failed(exc, deadline)
            if mapped is exc:
                raise
            raise mapped from exc
        self.last_used_at = time.monotonic()
        return data

    async def readexactly(self, n: int, *, timeout: CallTimeout = DEFAULT) -> bytes:
        """Read exactly ``n`` bytes.

        Args:
            n: how many bytes (>= 0).
            timeout: seconds for this call; ``None``: no limit; default: the connection's
                ``read_timeout``.

        Raises:
            ConnectionClosed: EOF came first, or the connection is closed or was reset.
            ReadTimeout: the bytes did not all arrive within the deadline.
        """
        if (lent := self._lent) is not None and lent.state is not LEASED and lent.given_back:
            raise self._released_error("readexactly")
        reader = self._reader
        if reader is None:
            raise self._closed_error()
        _validate.integer("n", n, minimum=0)
        deadline = self._options.read_timeout if timeout is DEFAULT else _call_timeout(timeout)
        try:
            if deadline is None:
                data = await reader.readexactly(n)
            else:
                async with asyncio.timeout(deadline):
                    data = await reader.readexactly(n)
        except BaseException as exc:
            mapped = self._read_failed(exc, deadline)
            if mapped is exc:
                raise
            raise mapped from exc
        self.last_used_at = time.monotonic()
        return data

    async def readline(self, *, timeout: CallTimeout = DEFAULT) -> bytes:
        """Read one line, ``b"\\n"`` included.

        Args:
            timeout: seconds for this call; ``None``: no limit; default: the connection's
                ``read_timeout``.

        Raises:
            ProtocolError: the line is longer than ``limit``; its bytes stay unread.
            ConnectionClosed: EOF before a full line.
            ReadTimeout: no full line within the deadline.
        """
        if (lent := self._lent) is not None and lent.state is not LEASED and lent.given_back:
            raise self._released_error("readline")
        reader = self._reader
        if reader is None:
            raise self._closed_error()
        deadline = self._options.read_timeout if timeout is DEFAULT else _call_timeout(timeout)
        try:
            if deadline is None:
                line = await reader.readuntil(b"\n")
            else:
                async with asyncio.timeout(deadline):
                    line = await reader.readuntil(b"\n")
        except BaseException as exc:
            mapped = self._read_failed(exc, deadline)
            if mapped is exc:
                raise
            raise mapped from exc
        self.last_used_at = time.monotonic()
        return line

    async def readuntil(self, separator: bytes = b"\n", *, timeout: CallTimeout = DEFAULT) -> bytes:
        """Read up to and including ``separator``.

        Args:
            separator: the non-empty byte string that ends the chunk.
            timeout: seconds for this call; ``None``: no limit; default: the connection's
                ``read_timeout``.

        Raises:
            ValueError: ``separator`` is empty or not bytes.
            ProtocolError: no separator within ``limit`` bytes; they stay unread.
            ConnectionClosed: EOF before the separator.
            ReadTimeout: no separator within the deadline.
        """
        if (lent := self._lent) is not None and lent.state is not LEASED and lent.given_back:
            raise self._released_error("readuntil")
        reader = self._reader
        if reader is None:
            raise self._closed_error()
        if not isinstance(separator, bytes) or not separator:
            raise ValueError(f"separator must be non-empty bytes, got {separator!r}")
        deadline = self._options.read_timeout if timeout is DEFAULT else _call_timeout(timeout)
        try:
            if deadline is None:
                data = await reader.readuntil(separator)
            else:
                async with asyncio.timeout(deadline):
                    data = await reader.readuntil(separator)
        except BaseException as exc:
            mapped = self._read_failed(exc, deadline)
            if mapped is exc:
                raise
            raise mapped from exc
        self.last_used_at = time.monotonic()
        return data

    async def send_frame(self, payload: bytes, *, timeout: CallTimeout = DEFAULT) -> None:
        """Send ``payload`` behind a 4-byte big-endian length prefix.

        Args:
            payload: the frame's bytes, at most ``limit`` of them.
            timeout: seconds for this call; ``None``: no limit; default: the connection's
                ``write_timeout``.

        Raises:
            TypeError: ``payload`` is not bytes-like.
            ProtocolError: ``payload`` is longer than ``limit``; nothing was sent.
            WriteTimeout: the peer did not take the frame in time.
            ConnectionClosed: the connection is closed or was reset.
        """
        if (lent := self._lent) is not None and lent.state is not LEASED and lent.given_back:
            raise self._released_error("send_frame")
        if not isinstance(payload, _BYTES_LIKE):
            raise TypeError(f"payload must be bytes-like, got {type(payload).__name__}")
        if len(payload) > self._options.limit:
            raise ProtocolError(
                f"frame of {len(payload)} bytes exceeds limit={self._options.limit} bytes"
            )
        await self.send(_FRAME_HEADER.pack(len(payload)) + payload, timeout=timeout)

    async def read_frame(self, *, timeout: CallTimeout = DEFAULT) -> bytes:
        """Read one length-prefixed frame (see ``send_frame``).

        Args:
            timeout: seconds for this call; ``None``: no limit; default: the connection's
                ``read_timeout``.

        Raises:
            ProtocolError: the announced length exceeds ``limit``; the payload is left unread
                and the connection marked broken.
            ConnectionClosed: EOF before the whole frame.
            ReadTimeout: the frame did not arrive within the deadline.
        """
        if (lent := self._lent) is not None and lent.state is not LEASED and lent.given_back:
            raise self._released_error("read_frame")
        reader = self._reader
        if reader is None:
            raise self._closed_error()
        deadline = self._options.read_timeout if timeout is DEFAULT else _call_timeout(timeout)
        try:
            async with asyncio.timeout(deadline):
                (length,) = _FRAME_HEADER.unpack(await reader.readexactly(_FRAME_HEADER.size))
                if length > self._options.limit:
                    raise ProtocolError(
                        f"frame of {length} bytes from {self._target} exceeds"
                        f" limit={self._options.limit} bytes"
                    )
                data = await reader.readexactly(length)
        except BaseException as exc:
            mapped = self._read_failed(exc, deadline)
            if mapped is exc:
                raise
            raise mapped from exc
        self.last_used_at = time.monotonic()
        return data

    # -- errors ------------------------------------------------------------------------------

    def _read_failed(self, exc: BaseException, deadline: float | None) -> BaseException:
        self._broken = True
        return self._map_error(exc, "read", deadline)

    def _map_error(self, exc: BaseException, phase: str, deadline: float | None) -> BaseException:
        """Translate a low-level failure into aioconn's hierarchy (cancellation passes through)."""
        target = self._target
        if isinstance(exc, asyncio.CancelledError | ProtocolError | ConnectionClosed):
            return exc
        if isinstance(exc, TimeoutError):
            error_type = ReadTimeout if phase == "read" else WriteTimeout
            direction = "from" if phase == "read" else "to"
            return error_type(f"{phase} {direction} {target} timed out after {deadline} s")
        if isinstance(exc, asyncio.IncompleteReadError) and exc.expected is None:
            return ConnectionClosed(
                f"connection closed by {target} after {len(exc.partial)} bytes"
                " without the separator"
            )
        if isinstance(exc, asyncio.IncompleteReadError):
            return ConnectionClosed(
                f"connection closed by {target} after {len(exc.partial)} of"
                f" {exc.expected} expected bytes"
            )
        if isinstance(exc, asyncio.LimitOverrunError):
            return ProtocolError(
                f"line from {target} is longer than limit={self._options.limit} bytes"
                " (the bytes stay unread)"
            )
        if isinstance(exc, OSError):
            return ConnectionClosed(f"{phase} on connection to {target} failed: {exc!r}")
        return exc

    def _released_error(self, call: str) -> ConnectionReleased:
        return ConnectionReleased(
            f"{call}() on a connection to {self._target} that was given back to"
            f" {self._pool_name}: use a pooled connection only inside its acquire() block"
            " (or between get() and put())"
        )

    def _adopt(self, slot: Slot[Any], pool: str) -> None:
        """A pool now owns this connection (``slot`` is its record there)."""
        self._lent = slot
        self._pool_name = pool

    def _closed_error(self) -> ConnectionClosed:
        if self._state == _NEW or self._state == _CONNECTING:
            return ConnectionClosed(f"connection to {self._target} is not connected yet")
        return ConnectionClosed(f"connection to {self._target} is closed")


def _caller_outside_aioconn(frame: FrameType | None) -> str:
    """``file:line`` of the user's code that created the connection, for leak reports."""
    return caller_site(frame)


def _call_timeout(timeout: float | _Default | None) -> float | None:
    return _validate.timeout("timeout", timeout)


def _unix_path(path: object) -> str:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise ValueError(f"path must be a non-empty str path, got {path!r}")
    return text
