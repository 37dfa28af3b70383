"""``aioconn.Endpoints``: a connector that spreads a pool's connections over several servers.

It plugs into ``Pool`` through the pool's balancing hooks (``choose_idle``, ``on_acquire``,
``on_release``, ``endpoint_of``, ``bind_events``, ``endpoint_stats``, ``drain``,
``update_endpoints``). A strategy (``_balance``) picks the endpoint of every acquire; a circuit
breaker per endpoint (``_breaker``) takes failing ones out of rotation and probes them back in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl as _ssl
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from . import _validate
from ._balance import make_strategy
from ._breaker import EJECTED, HEALTHY, BreakerPolicy
from ._endpoint import Endpoint, EndpointSpec, parse_address, resolve_all
from ._endpoint_resources import PASSED_ON, Connectors, Sockets
from ._endpoint_state import EndpointState, Member
from ._open import Target
from ._options import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HAPPY_EYEBALLS_DELAY,
    DEFAULT_LIMIT,
    ConnectOptions,
    KeepAlive,
    make_options,
)
from .connection import Connection
from .errors import NoHealthyEndpoint
from .events import EndpointEjected, EndpointRestored, PoolEvent
from .stats import EndpointStats, SummaryRecorder

__all__ = ["Endpoint", "Endpoints"]

R = TypeVar("R")

logger = logging.getLogger("aioconn.endpoints")
_monotonic = time.monotonic


class Endpoints(Generic[R]):
    """A connector over several endpoints: ``Pool(Endpoints(["10.0.0.5:80", "10.0.0.6:80"]))``.

    Each acquire goes to the endpoint the ``strategy`` picks: an idle connection to it if there
    is one, else a new one. Connect failures eject an endpoint for a cool-down (a circuit
    breaker); while it is out, callers are never sent there, and a failed attempt fails over
    to the next endpoint within the same ``connect()``. When no endpoint can take a connection,
    ``connect()`` raises ``NoHealthyEndpoint`` at once. See docs/endpoints.md.

    Args:
        endpoints: ``"host:port"`` strings, ``(host, port)`` tuples, ``"unix:/path"`` strings or
            ``aioconn.Endpoint``s (for a weight, or TLS settings of its own).
        strategy: ``"round_robin"`` (smooth, weighted), ``"random"`` (weighted),
            ``"least_in_use"`` (lowest in-use/weight), ``"p2c"`` (the better of two random
            picks) or ``"primary"`` (the first healthy one, in order).
        max_per_endpoint: the most connections open (or opening) to one endpoint; ``None``: no cap.
        eject_after: consecutive connect failures that eject an endpoint; ``None``: never.
        failure_ratio: ``(ratio, window)``: also eject when at least ``ratio`` of the last
            ``window`` attempts failed; ``None``: off.
        base_ejection: the first cool-down in seconds; each ejection in a row doubles it...
        max_ejection: ...up to this many seconds.
        seed: seeds the random choices of ``"random"`` and ``"p2c"`` (reproducible runs).
        ssl: TLS for every endpoint, as for ``Connection`` (an ``Endpoint`` may set its own).
        server_hostname: the name certificates are verified against (an ``Endpoint`` may set
            its own); default: each endpoint's host.
        connect_timeout: seconds for one attempt at one endpoint (default 10.0); ``None``: no limit.
        close_timeout: seconds a graceful close may take before the socket is aborted
            (default 2.0).
        read_timeout: default deadline of each read call in seconds, or ``None``.
        write_timeout: default deadline of each send call in seconds, or ``None``.
        local_addr: ``(host, port)`` to bind the local end to.
        happy_eyeballs_delay: seconds before racing an endpoint's next address (default 0.25).
        nodelay: keep ``TCP_NODELAY`` on.
        keepalive: ``True`` or an ``aioconn.KeepAlive`` to enable TCP keepalive probes.
        limit: the longest line or frame accepted, in bytes (default 65536).

    There is no ``retry``: failing over to the next endpoint is the retry, and the pool's
    ``connect_retry`` retries a whole ``connect()``.

    ``Endpoints.using(make_connector, endpoints)`` balances connections of another kind (an
    asyncpg connection, ...) the same way: see ``using``.

    Raises:
        TypeError, ValueError: for an invalid argument, naming it.
    """

    def __init__(
        self: Endpoints[Connection],
        endpoints: Iterable[EndpointSpec],
        *,
        strategy: str = "round_robin",
        max_per_endpoint: int | None = None,
        eject_after: int | None = 3,
        failure_ratio: tuple[float, int] | None = None,
        base_ejection: float = 1.0,
        max_ejection: float = 30.0,
        seed: int | None = None,
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
    ) -> None:
        self._setup(
            endpoints,
            Sockets(),
            strategy=strategy,
            max_per_endpoint=max_per_endpoint,
            eject_after=eject_after,
            failure_ratio=failure_ratio,
            base_ejection=base_ejection,
            max_ejection=max_ejection,
            seed=seed,
            shared=make_options(
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
            ),
        )

    @classmethod
    def using(
        cls,
        connector: Callable[..., Any],
        endpoints: Iterable[EndpointSpec],
        *,
        strategy: str = "round_robin",
        max_per_endpoint: int | None = None,
        eject_after: int | None = 3,
        failure_ratio: tuple[float, int] | None = None,
        base_ejection: float = 1.0,
        max_ejection: float = 30.0,
        seed: int | None = None,
    ) -> Endpoints[Any]:
        """Balance the connections of a connector per endpoint, e.g. asyncpg's, over ``endpoints``.

        ``connector(host=..., port=...)`` (``connector(path=...)`` for a ``unix:`` endpoint) is
        called once per endpoint and must return a connector (``connect``, ``close``, and the
        optional hooks). Connections open through the connector of the endpoint the strategy
        picks; ejection, failover, draining and stats work as for ``aioconn.Connection``s.
        The connector's ``is_reusable``, ``check``, ``abort``, ``init``, ``reset`` and
        ``recover`` apply to its own connections. Timeouts and TLS are the connector's: a
        connect fails over when the connector's ``connect()`` raises.

        Example::

            replicas = Endpoints.using(
                lambda **where: AsyncpgConnector(user="app", database="app", **where),
                ["10.0.0.5:5432", "10.0.0.6:5432"],
            )
            pool = aioconn.Pool(replicas, max_size=10)

        Args:
            connector: ``connector(host=..., port=...)`` or ``connector(path=...)`` returns the
                connector for one endpoint.
            endpoints: the endpoints, as for ``Endpoints``.
            strategy: as for ``Endpoints``.
            max_per_endpoint: as for ``Endpoints``.
            eject_after: as for ``Endpoints``.
            failure_ratio: as for ``Endpoints``.
            base_ejection: as for ``Endpoints``.
            max_ejection: as for ``Endpoints``.
            seed: as for ``Endpoints``.

        Returns:
            An ``Endpoints`` to give a ``Pool`` as its connector.

        Raises:
            TypeError, ValueError: an invalid argument (naming it), or a connector without
                ``connect``/``close``.
        """
        self: Endpoints[Any] = cls.__new__(cls)
        self._setup(
            endpoints,
            Connectors(connector),
            strategy=strategy,
            max_per_endpoint=max_per_endpoint,
            eject_after=eject_after,
            failure_ratio=failure_ratio,
            base_ejection=base_ejection,
            max_ejection=max_ejection,
            seed=seed,
            shared=make_options(),
        )
        return self

    def _setup(
        self,
        endpoints: Iterable[EndpointSpec],
        resources: Sockets | Connectors,
        *,
        strategy: str,
        max_per_endpoint: int | None,
        eject_after: int | None,
        failure_ratio: tuple[float, int] | None,
        base_ejection: float,
        max_ejection: float,
        seed: int | None,
        shared: ConnectOptions,
    ) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self._resources = resources
        self._strategy_name = strategy
        self._strategy = make_strategy(strategy, random.Random(seed))
        self._cap = (
            None
            if max_per_endpoint is None
            else _validate.integer("max_per_endpoint", max_per_endpoint, minimum=1)
        )
        self._policy = BreakerPolicy.checked(
            eject_after, failure_ratio, base_ejection, max_ejection
        )
        self._shared = shared
        self._active: list[EndpointState] = []  # in configured order (it matters to "primary")
        self._retiring: list[EndpointState] = []  # removed, still with connections
        self._by_key: dict[str, EndpointState] = {}
        self._members: dict[Any, Member] = {}
        # The endpoint choose_idle chose for a new connection: the connect() the pool starts
        # next goes there. One slot, not a queue: when the pool starts no connect (one already
        # under way will serve the caller), the wish must not linger and steer later ones.
        self._wanted: EndpointState | None = None
        self._room_for: EndpointState | None = None  # made room in a full pool for it
        self._capacity_waiters: list[asyncio.Future[None]] = []
        self._emit: Callable[[PoolEvent], None] | None = None
        self._pool_name = ""
        # The pool's: told when an endpoint gains room outside a pool event (see bind_room).
        self._room_freed: Callable[[], None] | None = None
        self._install(resolve_all(endpoints, self._shared))
        for hook in PASSED_ON:  # the pool looks optional hooks up by name: absent means None
            if not resources.has(hook):
                setattr(self, hook, None)

    # -- the connector ----------------------------------------------------------------------

    async def connect(self) -> R:
        """Open a connection to the endpoint the strategy picks, failing over on errors.

        Each endpoint is tried at most once per call. With ``max_per_endpoint``, a call that
        finds every usable endpoint at its cap waits until one has room.

        Raises:
            NoHealthyEndpoint: no endpoint may take a connection (all ejected or draining), or
                every one tried failed; the message lists each endpoint's state and last error.
        """
        attempts: list[tuple[str, str]] = []
        # By key: an endpoint removed and listed again meanwhile is a new state, same server.
        tried: set[str] = set()
        wanted, self._wanted = self._wanted, None
        while True:
            state = self._pick_for_open(wanted, tried)
            wanted = None
            if state is None:
                if not any(s.key not in tried and s.may_open() for s in self._active):
                    raise self._no_healthy(attempts)
                await self._wait_for_room()  # every usable endpoint is at max_per_endpoint
                continue
            connection = await self._attempt(state, attempts)
            if connection is not None:
                return connection
            tried.add(state.key)

    async def close(self, resource: R) -> None:
        """Close gracefully within ``close_timeout``, else abort.

        Args:
            resource: a connection this connector opened.
        """
        self._forget(resource)
        await self._resources.close(resource)

    def abort(self, resource: R) -> None:
        """Abort at once.

        Args:
            resource: a connection this connector opened.
        """
        self._forget(resource)
        self._resources.abort(resource)

    async def check(self, resource: R) -> bool:
        """Alive (as far as the socket, or the connector's ``check``, can tell) and its
        endpoint still in rotation.

        Args:
            resource: an idle connection this connector opened.
        """
        return self.is_reusable(resource) and await self._resources.check(resource)

    def is_reusable(self, resource: R) -> bool:
        """``Connection.reusable`` (or the connector's ``is_reusable``), and its endpoint was not
        ejected, drained or removed since.

        Args:
            resource: a connection this connector opened.
        """
        member = self._members.get(resource)
        return member is not None and not member.retired and self._resources.reusable(resource)

    # Passed on to the connector of the resource's endpoint; None without such connectors.

    async def init(self, resource: R) -> None:
        """The ``init`` of the connector that opened ``resource``.

        Args:
            resource: a connection this connector just opened.
        """
        await self._resources.hook(resource, "init")(resource)

    async def reset(self, resource: R) -> None:
        """The ``reset`` of the connector that opened ``resource``.

        Args:
            resource: a connection this connector opened, given back clean.
        """
        await self._resources.hook(resource, "reset")(resource)

    async def recover(self, resource: R, exc: BaseException) -> bool:
        """The ``recover`` of the connector that opened ``resource``.

        Args:
            resource: a connection whose ``acquire()`` block ended by ``exc``.
            exc: the exception that ended the block.

        Returns:
            Whether the connection may be reused.
        """
        return bool(await self._resources.hook(resource, "recover")(resource, exc))

    # -- the pool's balancing hooks -----------------------------------------------------------

    def choose_idle(self, candidates: list[R], can_open: bool) -> int | None:
        """Which idle connection serves this acquire, or None to open one (to the chosen endpoint).

        An idle connection that may not be reused is returned first, so that the pool discards
        it (and asks again) before the strategy chooses. In a full pool (``can_open`` False), an
        endpoint with no connection at all (restored, half-open, newly added) may still be
        chosen: an idle connection of the endpoint with the most per weight is then retired to
        make room for it, and the pool's next call opens one there.

        Args:
            candidates: the pool's idle connections, oldest first.
            can_open: whether the pool has room to open another connection.
        """
        members = self._members
        newest: dict[EndpointState, int] = {}
        oldest: dict[EndpointState, int] = {}
        for index, connection in enumerate(candidates):
            member = members.get(connection)
            if member is None or member.retired or not self._resources.reusable(connection):
                return index
            newest[member.state] = index  # the pool reuses the most recently returned first
            oldest.setdefault(member.state, index)
        donors: list[EndpointState] = []
        if can_open:
            room_for, self._room_for = self._room_for, None
            if room_for is not None and room_for.may_open() and self._room(room_for):
                self._wanted = room_for  # chosen by the call that made this room
                return None
            choices = [s for s in self._active if s in newest or (s.may_open() and self._room(s))]
        else:
            choices = [s for s in self._active if s in newest]
            donors = [s for s in choices if s.open >= 2]
            if donors:  # rebalancing keeps every donor represented: it cannot churn for ever
                choices = [
                    s
                    for s in self._active
                    if s in newest or (s.open + s.opening == 0 and s.may_open())
                ]
        if not choices:  # cannot happen (each candidate's endpoint is a choice); stay within spec
            return len(candidates) - 1
        chosen = choices[self._strategy.pick(choices)]
        reuse = newest.get(chosen)
        if reuse is not None:
            return reuse
        if donors:
            donor = max(donors, key=lambda s: s.open / s.weight)
            reuse = oldest[donor]
            members[candidates[reuse]].retired = True  # the pool discards it: then there is room
            self._room_for = self._wanted = chosen  # if the pool connects next, go there
            return reuse
        self._wanted = chosen  # the pool now calls connect(), which goes there
        return None

    def rebalance(self, resource: R) -> bool:
        """Whether ``resource``, given back while callers queue, should make room elsewhere.

        A saturated pool hands every return straight to a queued caller: it never has an idle
        connection to trade nor room to open one, so an endpoint that comes back (or is added)
        would get no connection until ``max_lifetime``. On such a return, this retires the
        connection when another endpoint may take one and is below its share — for
        ``"primary"``, an endpoint earlier in order; otherwise one whose open connections per
        weight, with one more, stay at or below the returning endpoint's with one less — and
        steers the connect that replaces it there (for an ejected endpoint whose cool-down
        ended, that connect is its half-open probe). Each move narrows the gap: it stops once
        the shares are even.

        Args:
            resource: a connection given back clean while callers wait.

        Returns:
            True: the pool discards it (reason ``"rebalanced"``) and opens a new one.
        """
        member = self._members.get(resource)
        if member is None or member.retired or self._wanted is not None:
            return False  # one move at a time: the last one's connect has not started yet
        receiver = self._receiver(member.state)
        if receiver is None:
            return False
        member.retired = True
        self._wanted = receiver  # the connect the pool starts next goes there
        return True

    def _receiver(self, donor: EndpointState) -> EndpointState | None:
        """The endpoint a connection of ``donor`` should move to, if any."""
        if self._strategy_name == "primary":
            for state in self._active:
                if state is donor:
                    return None  # every endpoint before the donor is full or out
                if state.may_open() and self._room(state):
                    return state
            return None
        best: EndpointState | None = None
        for state in self._active:
            if state is donor or not (state.may_open() and self._room(state)):
                continue
            if (
                best is None
                or (state.open + state.opening) / state.weight
                < (best.open + best.opening) / best.weight
            ):
                best = state
        if best is None:
            return None
        # Connections retired but not closed yet still count in `open`: they are leaving.
        leaving = sum(1 for m in self._members.values() if m.state is donor and m.retired)
        after = (best.open + best.opening + 1) / best.weight
        return best if after <= (donor.open - leaving - 1) / donor.weight else None

    def on_acquire(self, resource: R) -> None:
        """The pool handed ``resource`` to a caller.

        Args:
            resource: the connection lent out.
        """
        member = self._members.get(resource)
        if member is not None and not member.in_use:
            member.in_use = True
            member.state.in_use += 1

    def on_release(self, resource: R) -> None:
        """``resource`` came back from its caller (or was aborted).

        Args:
            resource: the connection given back.
        """
        member = self._members.get(resource)
        if member is not None and member.in_use:
            member.in_use = False
            member.state.in_use -= 1

    def endpoint_of(self, resource: R) -> str:
        """The endpoint ``resource`` is connected to, as ``host:port`` or ``unix:/path``.

        Args:
            resource: a connection this connector opened.
        """
        member = self._members.get(resource)
        return member.state.key if member is not None else self._resources.target_of(resource)

    def bind_events(self, emit: Callable[[PoolEvent], None], pool: str | None = None) -> None:
        """Send ``EndpointEjected``/``EndpointRestored`` to ``emit``; zero the counters.

        A pool calls this when it adopts the connector (one pool at a time). ``pool`` names the
        pool in the events; without it, the name of the pool whose bound method ``emit`` is.

        Args:
            emit: called with each event.
            pool: the pool's name, as the events carry it.
        """
        if pool is None:
            pool = str(getattr(getattr(emit, "__self__", None), "name", ""))
        self._emit = emit
        self._pool_name = pool
        for state in (*self._active, *self._retiring):
            state.breaker.reset_counters()
            state.connect_times = SummaryRecorder()

    def bind_room(self, room_freed: Callable[[], None]) -> None:
        """Call ``room_freed()`` whenever an endpoint gains room under ``max_per_endpoint``.

        A pool calls this when it adopts the connector. Room appears outside the pool's own
        events — when a connection's close begins, when one attempt of a ``connect()`` fails
        and the call fails over — and the pool must hear of it then, or a caller could wait
        with room to open and nothing opening for it.

        Args:
            room_freed: called synchronously, with no arguments.
        """
        self._room_freed = room_freed

    def endpoint_stats(self) -> tuple[EndpointStats, ...]:
        """A snapshot per endpoint, configured ones first (``idle`` is the pool's to fill in)."""
        return tuple(s.stats() for s in (*self._active, *self._retiring))

    def drain(self, endpoint: EndpointSpec) -> None:
        """Open no more connections to ``endpoint``; its connections are not reused.

        ``Pool.drain`` calls this and closes the idle ones; those in use close when returned.
        List the endpoint in ``update_endpoints`` again to put it back into rotation.

        Args:
            endpoint: ``"host:port"``, ``(host, port)``, ``"unix:/path"`` or an ``Endpoint``.

        Raises:
            ValueError: ``endpoint`` is not one of this connector's endpoints.
        """
        address = endpoint.address if isinstance(endpoint, Endpoint) else endpoint
        key = str(parse_address(address, "endpoint"))
        state = self._by_key.get(key)
        if state is None:
            known = ", ".join(s.key for s in self._active)
            raise ValueError(f"endpoint {key!r} is not one of the endpoints ({known})")
        if not state.draining:
            state.draining = True
            self._retire(state)
            logger.info("%s: draining endpoint %s", self._pool_name or self, state.key)

    def update_endpoints(self, endpoints: Iterable[EndpointSpec]) -> None:
        """Replace the set of endpoints; connections in use are never dropped.

        New endpoints join the rotation; those left out are drained, and vanish from the
        stats once their last connection is closed; those kept keep their breaker and counters
        (a drained one listed again is back in rotation). A changed weight applies at once; a
        changed ``ssl``/``server_hostname`` retires the endpoint's current connections.

        Args:
            endpoints: the new list, in the forms ``Endpoints`` takes.

        Raises:
            TypeError, ValueError: as the constructor, before anything changes.
        """
        resolved = resolve_all(endpoints, self._shared)
        keep = {str(target) for target, _, _ in resolved}
        for state in self._active:
            if state.key not in keep:
                state.removed = True
                self._retire(state)
                self._retiring.append(state)
        self._install(resolved)
        for state in list(self._retiring):
            self._forget_if_gone(state)
        self._wake_room_waiters()

    # -- introspection ------------------------------------------------------------------------

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The configured endpoints, in order (draining ones included, removed ones not)."""
        return tuple(s.key for s in self._active)

    @property
    def strategy(self) -> str:
        """The strategy's name."""
        return self._strategy_name

    def __repr__(self) -> str:
        states = ", ".join(f"{s.key} {s.state} {s.in_use}/{s.open}" for s in self._active)
        return f"<aioconn.Endpoints {self._strategy_name} [{states}]>"

    # -- choosing and opening -----------------------------------------------------------------

    def has_room(self) -> bool:
        """Whether some endpoint is below ``max_per_endpoint`` (the pool asks before opening).

        Only the caps count here: with every endpoint ejected there is still "room", so that
        ``connect()`` fails fast with ``NoHealthyEndpoint`` instead of callers queueing.
        """
        return self._cap is None or any(self._room(s) for s in self._active)

    def _room(self, state: EndpointState) -> bool:
        return self._cap is None or state.open + state.opening < self._cap

    def _pick_for_open(self, wanted: EndpointState | None, tried: set[str]) -> EndpointState | None:
        choices = [s for s in self._active if s.key not in tried and s.may_open() and self._room(s)]
        if not choices:
            return None
        if wanted is not None and wanted in choices:
            return wanted  # choose_idle already spent a strategy step on this acquire
        return choices[self._strategy.pick(choices)]

    async def _attempt(self, state: EndpointState, attempts: list[tuple[str, str]]) -> R | None:
        """One connect to ``state``: the connection if it may be handed out, else None."""
        probe = state.breaker.begin()
        state.opening += 1
        started = _monotonic()
        try:
            connection: R = await self._resources.open(state)
        except Exception as exc:
            state.opening -= 1
            error = str(exc) or repr(exc)
            attempts.append((state.key, error))
            self._failed(state, error, probe)
            self._forget_if_gone(state)
            self._wake_room_waiters()  # its place is free while this call fails over
            return None
        except BaseException:
            state.opening -= 1
            state.breaker.cancelled(probe)
            self._forget_if_gone(state)
            self._wake_room_waiters()
            raise
        state.opening -= 1
        state.connect_times.add(_monotonic() - started)
        if state.breaker.succeeded(probe):
            logger.info("%s: endpoint %s is back in rotation", self._pool_name or self, state.key)
            self._send(EndpointRestored(self._pool_name, state.key))
            self._wake_room_waiters()
        if state.state != HEALTHY:  # ejected, drained or removed while connecting
            attempts.append((state.key, f"{state.state} while connecting"))
            self._forget_if_gone(state)
            self._wake_room_waiters()
            await self._resources.close(connection)
            return None
        self._members[connection] = Member(state)
        state.open += 1
        return connection

    def _failed(self, state: EndpointState, error: str, probe: bool) -> None:
        ejection = state.breaker.failed(error, probe)
        if ejection is None:
            return
        self._retire(state)
        logger.warning(
            "%s: ejected endpoint %s for %.3g s after %d failures; last: %s",
            self._pool_name or self,
            state.key,
            ejection.cooldown,
            ejection.failures,
            error,
        )
        self._send(
            EndpointEjected(self._pool_name, state.key, ejection.failures, ejection.cooldown, error)
        )

    def _no_healthy(self, attempts: list[tuple[str, str]]) -> NoHealthyEndpoint:
        states = "; ".join(s.describe() for s in self._active)
        tried = f", {len(attempts)} tried by this call" if attempts else ""
        return NoHealthyEndpoint(
            f"no healthy endpoint among {len(self._active)}{tried}: {states}",
            attempts=tuple(attempts),
        )

    async def _wait_for_room(self) -> None:
        """Until a connection closes or the endpoints change (or a cool-down ends)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._capacity_waiters.append(future)
        cooling = [s.breaker.remaining for s in self._active if s.state == EJECTED]
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(cooling) if cooling else None):
                    await future
        finally:
            if future in self._capacity_waiters:
                self._capacity_waiters.remove(future)

    def _wake_room_waiters(self) -> None:
        """Room may have appeared: wake the calls parked for it, and tell the pool."""
        waiters, self._capacity_waiters = self._capacity_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)
        if self._room_freed is not None and self._cap is not None:
            self._room_freed()

    # -- bookkeeping ----------------------------------------------------------------------------

    def _install(self, resolved: list[tuple[Target, Endpoint, ConnectOptions]]) -> None:
        active = []
        for target, endpoint, options in resolved:
            state = self._by_key.get(str(target))
            if state is None:
                state = EndpointState(target, endpoint, options, self._policy)
                self._resources.prepare(state)
                self._by_key[state.key] = state
            else:
                if state.removed:
                    self._retiring.remove(state)
                state.removed = state.draining = False
                if options != state.options:
                    state.options = options
                    self._retire(state)  # opened with the old TLS settings
                state.endpoint = endpoint
            active.append(state)
        self._active = active

    def _retire(self, state: EndpointState) -> None:
        for member in self._members.values():
            if member.state is state:
                member.retired = True

    def _forget(self, resource: R) -> None:
        member = self._members.pop(resource, None)
        if member is None:
            return
        state = member.state
        state.open -= 1
        if member.in_use:
            state.in_use -= 1
        self._forget_if_gone(state)
        self._wake_room_waiters()

    def _forget_if_gone(self, state: EndpointState) -> None:
        if state.removed and state.open == 0 and state.opening == 0 and state in self._retiring:
            self._retiring.remove(state)
            del self._by_key[state.key]
            self._strategy.forget(state)

    def _send(self, event: PoolEvent) -> None:
        if self._emit is not None:
            self._emit(event)
