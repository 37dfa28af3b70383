"""ChaosProxy: an in-process fault-injection TCP proxy in the manner of Toxiproxy."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from .. import _registry, _validate
from ._link import Link, reset_socket
from ._listener import Listener
from ._toxic_base import DIRECTIONS, Direction, Toxic

__all__ = ["ChaosProxy", "ChaosProxyFactory", "ProxyStats", "ToxicHandle"]

logger = logging.getLogger("aioconn.proxy")


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """A snapshot of a ChaosProxy's counters.

    Attributes:
        open: links open now (``accepted - closed``).
        accepted: client connections taken on as links, ever.
        closed: links fully closed (both sockets), ever.
        refused: client connections reset because the proxy was disabled (or closed) after the
            kernel accepted them and before they became links. ``disable()`` itself refuses new
            connections in the kernel (``ECONNREFUSED``), which the proxy never sees or counts.
        upstream_bytes: bytes written to the server, after the toxics (dropped bytes never
            count, held bytes count once released).
        downstream_bytes: bytes written to the clients, after the toxics (likewise).
        upstream_read: bytes read from the clients.
        downstream_read: bytes read from the server.
    """

    open: int = 0
    accepted: int = 0
    closed: int = 0
    refused: int = 0
    upstream_bytes: int = 0
    downstream_bytes: int = 0
    upstream_read: int = 0
    downstream_read: int = 0


class ToxicHandle:
    """A toxic installed on a ChaosProxy, as returned by ``ChaosProxy.add``.

    Made by the proxy; you do not build one yourself.

    Args:
        proxy: the proxy the toxic is installed on.
        toxic: the toxic, with its name filled in.
    """

    __slots__ = ("_active", "_proxy", "_toxic")

    def __init__(self, proxy: ChaosProxy, toxic: Toxic[Any]) -> None:
        self._proxy = proxy
        self._toxic = toxic
        self._active = True

    @property
    def toxic(self) -> Toxic[Any]:
        """The toxic's current parameters."""
        return self._toxic

    @property
    def name(self) -> str:
        """The toxic's unique name on its proxy."""
        assert self._toxic.name is not None  # ChaosProxy.add() fills it in
        return self._toxic.name

    @property
    def direction(self) -> Direction:
        """``"upstream"`` or ``"downstream"``."""
        return self._toxic.direction

    @property
    def active(self) -> bool:
        """False once removed."""
        return self._active

    def update(self, **params: Any) -> None:
        """Change parameters (e.g. ``delay=0.2``, ``toxicity=0``) on every link, live.

        Chunks not yet through the toxic see the new values; time-driven toxics (``timeout``,
        ``reset_peer``) restart their timers; per-link state (bytes counted by ``limit_data``)
        is kept. A link's toxicity draw is kept too, so raising ``toxicity`` only adds links.

        Args:
            **params: the toxic's parameters to change, by name.

        Raises:
            ValueError: a bad value, or an attempt to change ``direction`` or ``name``.
            TypeError: a parameter this toxic does not have.
            RuntimeError: the toxic was removed.
        """
        if not self._active:
            raise RuntimeError(f"toxic {self.name!r} was removed")
        for fixed in ("direction", "name"):
            if fixed in params:
                raise ValueError(f"{fixed} cannot change; remove the toxic and add another")
        self._toxic = dataclasses.replace(self._toxic, **params)
        logger.debug("toxic updated: %r", self._toxic)
        for link in self._proxy._links.values():
            link.refresh(self)

    def remove(self) -> None:
        """Remove the toxic from the proxy and every link; idempotent."""
        self._proxy.remove(self)

    def __repr__(self) -> str:
        state = "" if self._active else " removed"
        return f"<ToxicHandle {self._toxic!r}{state}>"


class ChaosProxy:
    """A TCP proxy on loopback that injects faults ("toxics") between clients and a server.

    Use as ``async with ChaosProxy(host, port) as proxy:`` and point clients at
    ``proxy.host``/``proxy.port``. Each accepted client connection becomes a link with its own
    connection to the upstream server, and each direction of a link runs the installed toxics
    in the order they were added. Leaving the block closes every link and socket.

    Args:
        upstream_host: the server to forward to.
        upstream_port: its port.
        listen_host: the address to listen on (loopback by default).
        listen_port: the port to listen on; 0 picks a free one (read it from ``port``).
        seed: seeds the RNG behind jitter, slicing and toxicity; ``None`` picks one at random,
            readable as ``proxy.seed`` (log it to replay a failure).

    Attributes:
        host: the address the proxy listens on.
        port: the port it listens on (the bound one, once started).
        upstream_host: the server it forwards to.
        upstream_port: that server's port.
        seed: the seed of its RNG, given or drawn.

    Example::

        async with EchoServer() as server, ChaosProxy(server.host, server.port) as proxy:
            proxy.add(latency(0.1))  # every reply now arrives >= 100 ms later
            reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        seed: int | None = None,
    ) -> None:
        self.upstream_host = _validate.host(upstream_host)
        self.upstream_port = _validate.port(upstream_port)
        self.host = _validate.host(listen_host)
        self.port = _validate.port(listen_port)
        if seed is None:
            seed = random.SystemRandom().randrange(2**32)
        self.seed: int = _validate.integer("seed", seed, minimum=0)
        self._listener: Listener | None = None
        self._closed = False
        self._enabled = True
        self._handles: dict[str, ToxicHandle] = {}
        self._links: dict[int, Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = {direction: asyncio.Event() for direction in DIRECTIONS}
        for event in self._flowing.values():
            event.set()
        self._waiters: list[tuple[Callable[[ProxyStats], bool], asyncio.Future[ProxyStats]]] = []
        self._counters = dict.fromkeys(
            (f.name for f in dataclasses.fields(ProxyStats) if f.name != "open"), 0
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Self:
        """Start listening; returns self. ``port`` then holds the bound port."""
        if self._listener is not None or self._closed:
            raise RuntimeError(f"{self!r} was already started (or closed)")
        self._listener = Listener(self.host, self.port, self._adopt, asyncio.get_running_loop())
        self.port = self._listener.port
        if self._enabled:
            self._listener.listen()
        _registry.proxy_seeds.append((f"{self.host}:{self.port}", self.seed))
        _registry.open_proxies.add(self)
        logger.info(
            "chaos proxy %s:%d -> %s:%d (seed %d)",
            self.host,
            self.port,
            self.upstream_host,
            self.upstream_port,
            self.seed,
        )
        return self

    async def close(self) -> None:
        """Stop listening, close every link and both its sockets, and wait for that; idempotent.

        Pending ``wait_for`` calls whose condition is not met raise ``RuntimeError``.
        """
        first = not self._closed
        self._closed = True
        _registry.open_proxies.discard(self)
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        for link in list(self._links.values()):
            link.abort(rst=False)
        while self._tasks:  # a second, concurrent close() waits for the links as well
            await asyncio.wait(list(self._tasks))
        self._notify()
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(RuntimeError(f"{self!r} closed"))
        if first:
            logger.info("chaos proxy %s:%d closed", self.host, self.port)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        s = self.stats
        state = "closed" if self._closed else "enabled" if self._enabled else "disabled"
        return (
            f"<ChaosProxy {self.host}:{self.port} -> {self.upstream_host}:{self.upstream_port} "
            f"[{state} | open={s.open} accepted={s.accepted} closed={s.closed} | "
            f"toxics: {', '.join(self._handles) or 'none'}]>"
        )

    # -- toxics ------------------------------------------------------------------------------

    @property
    def toxics(self) -> tuple[ToxicHandle, ...]:
        """The installed toxics, in the order they were added (their order in each chain)."""
        return tuple(self._handles.values())

    def add(self, toxic: Toxic[Any]) -> ToxicHandle:
        """Install ``toxic`` on every link, open now or opened later; returns its handle.

        Args:
            toxic: made by one of ``latency``, ``bandwidth``, ``slicer``, ``limit_data``,
                ``timeout``, ``reset_peer``, ``slow_close``, or a ``Toxic`` of your own.

        Raises:
            TypeError: ``toxic`` is not a ``Toxic``.
            ValueError: a toxic with the same name is installed (default names are
                ``"<kind>_<direction>"``: pass ``name=`` to install two of a kind).
        """
        if not isinstance(toxic, Toxic):
            raise TypeError(f"expected a toxic such as latency(0.1), got {toxic!r}")
        name = toxic.name or f"{toxic.kind}_{toxic.direction}"
        if name in self._handles:
            raise ValueError(f"a toxic named {name!r} is already installed; pass name=")
        handle = ToxicHandle(self, dataclasses.replace(toxic, name=name))
        self._handles[name] = handle
        logger.debug("toxic added: %r", handle.toxic)
        for link in self._links.values():
            link.attach(handle)
        return handle

    def remove(self, handle: ToxicHandle) -> None:
        """Remove ``handle``'s toxic from the proxy and every link; idempotent.

        Args:
            handle: what ``add`` returned.
        """
        if self._handles.get(handle.name) is not handle:
            return
        del self._handles[handle.name]
        handle._active = False
        logger.debug("toxic removed: %s", handle.name)
        for link in self._links.values():
            link.detach(handle)

    @contextlib.asynccontextmanager
    async def toxic(self, toxic: Toxic[Any]) -> AsyncIterator[ToxicHandle]:
        """``async with proxy.toxic(latency(0.1)) as handle:`` installs a toxic for the block.

        Args:
            toxic: the toxic to install, as for ``add``.
        """
        handle = self.add(toxic)
        try:
            yield handle
        finally:
            handle.remove()

    # -- switches ----------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """False between ``disable()`` and ``enable()``."""
        return self._enabled

    def disable(self) -> None:
        """Act like a downed server, until ``enable()``: close every link (FIN to both sides)
        and refuse new connections (``connect()`` fails with ``ConnectionRefusedError``).

        The port stays reserved: a bound, non-listening socket holds it, so another program
        cannot bind it meanwhile (unless it sets ``SO_REUSEADDR``, on Linux), and ``enable()``
        listens on the same port again.
        """
        self._enabled = False
        if self._listener is not None:
            self._listener.refuse()
        logger.info("chaos proxy %s:%d disabled", self.host, self.port)
        for link in list(self._links.values()):
            link.close()

    def enable(self) -> None:
        """Listen, accept and forward new connections again, on the same port."""
        self._enabled = True
        if self._listener is not None:
            self._listener.listen()
        logger.info("chaos proxy %s:%d enabled", self.host, self.port)

    def hold(self, direction: Direction) -> None:
        """Freeze forwarding in ``direction`` on every link, from now until ``release``.

        Bytes keep being read (up to a bounded read-ahead) and are forwarded, in order and
        with any EOF after them, on ``release``.

        Args:
            direction: ``"upstream"`` (client to server) or ``"downstream"``.
        """
        self._flowing[_direction(direction)].clear()

    def release(self, direction: Direction) -> None:
        """Resume forwarding in ``direction``.

        Args:
            direction: ``"upstream"`` or ``"downstream"``.
        """
        self._flowing[_direction(direction)].set()

    # -- counters and events -----------------------------------------------------------------

    @property
    def stats(self) -> ProxyStats:
        """The counters right now."""
        c = self._counters
        return ProxyStats(open=c["accepted"] - c["closed"], **c)

    async def wait_for(
        self,
        *,
        open: int | None = None,
        accepted: int | None = None,
        closed: int | None = None,
        refused: int | None = None,
        upstream_bytes: int | None = None,
        downstream_bytes: int | None = None,
        upstream_read: int | None = None,
        downstream_read: int | None = None,
    ) -> ProxyStats:
        """Wait until every given counter is reached; returns the stats of that moment.

        ``open`` must equal its value; the other counters only grow and must be at least
        theirs. Bound the wait with ``asyncio.timeout``. Example::

            await proxy.wait_for(accepted=2, upstream_bytes=10)

        Args:
            open: links open now, exactly.
            accepted: client connections taken on, at least.
            closed: links fully closed, at least.
            refused: connections refused while disabled, at least.
            upstream_bytes: bytes written to the server, at least.
            downstream_bytes: bytes written to the clients, at least.
            upstream_read: bytes read from the clients, at least.
            downstream_read: bytes read from the server, at least.

        Raises:
            TypeError: no counter given.
            RuntimeError: the proxy closed before the condition held.
        """
        given = {
            "open": open,
            "accepted": accepted,
            "closed": closed,
            "refused": refused,
            "upstream_bytes": upstream_bytes,
            "downstream_bytes": downstream_bytes,
            "upstream_read": upstream_read,
            "downstream_read": downstream_read,
        }
        targets = {name: value for name, value in given.items() if value is not None}
        if not targets:
            raise TypeError("wait_for() needs at least one counter, e.g. accepted=1")

        def ready(stats: ProxyStats) -> bool:
            return all(
                getattr(stats, name) == value if name == "open" else getattr(stats, name) >= value
                for name, value in targets.items()
            )

        stats = self.stats
        if ready(stats):
            return stats
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        future: asyncio.Future[ProxyStats] = asyncio.get_running_loop().create_future()
        entry = (ready, future)
        self._waiters.append(entry)
        try:
            return await future
        finally:
            self._waiters.remove(entry)

    def _notify(self) -> None:
        if not self._waiters:
            return
        stats = self.stats
        for ready, future in self._waiters:
            if not future.done() and ready(stats):
                future.set_result(stats)

    def _count(self, direction: Direction, *, read: int = 0, forwarded: int = 0) -> None:
        self._counters[f"{direction}_read"] += read
        self._counters[f"{direction}_bytes"] += forwarded
        self._notify()

    # -- links -------------------------------------------------------------------------------

    def _adopt(self, sock: socket.socket) -> None:
        """Wrap a socket the listener accepted in streams, then take it on as a link."""
        task = asyncio.get_running_loop().create_task(
            self._wrap(sock), name=f"aioconn proxy accept {self.host}:{self.port}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wrap(self, sock: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=sock)
        except OSError as exc:  # the client is gone already
            sock.close()
            logger.debug("accepted connection lost before it became a link: %s", exc)
            return
        except BaseException:
            sock.close()
            raise
        self._accept(reader, writer)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed or not self._enabled:
            self._counters["refused"] += 1
            logger.debug("refused %s", writer.get_extra_info("peername"))
            reset_socket(writer)
            self._notify()
            return
        self._counters["accepted"] += 1
        link = Link(self, self._counters["accepted"], reader, writer)
        self._links[link.id] = link
        task = asyncio.get_running_loop().create_task(link.run(), name=f"aioconn proxy {link!r}")
        link.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._notify()

    def _link_closed(self, link: Link) -> None:
        del self._links[link.id]
        self._counters["closed"] += 1
        self._notify()


class ChaosProxyFactory(Protocol):
    """The type of the pytest fixture ``chaos_proxy_factory``.

    ``await chaos_proxy_factory(host, port)`` starts a ``ChaosProxy`` in front of the server at
    ``host:port`` and returns it; the fixture closes every proxy it started after the test.
    ``seed`` defaults to the test's seed (``@pytest.mark.aioconn_seed``, ``--aioconn-seed``).
    """

    def __call__(
        self, host: str, port: int, *, seed: int | None = None
    ) -> Awaitable[ChaosProxy]: ...


def _direction(value: object) -> Direction:
    if value == "upstream":
        return "upstream"
    if value == "downstream":
        return "downstream"
    raise ValueError(f"direction must be 'upstream' or 'downstream', got {value!r}")
