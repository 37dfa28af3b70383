"""A gated fake connector for pool-logic tests: every phase can succeed, fail or hang on a gate.

The idea is deadpool's ``GatedManager``: the pool talks to ``GatedConnector`` exactly as it talks
to a real one, while a test decides, phase by phase (connect, check, reset, close), whether the
next call succeeds, raises ``OSError`` or blocks until the test opens the phase's gate. The
connector remembers every ``FakeResource`` it ever created, so a test can account for all of
them with ``assert_accounted``: each one is idle in the pool, held by a live caller, being
closed, or closed — exactly one of these, and none lost.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Collection
from dataclasses import dataclass, field

from aioconn import PoolStats

__all__ = ["FakeResource", "GatedConnector", "Outcome", "Phase", "assert_accounted"]


class Outcome(enum.Enum):
    """What a call of a phase does."""

    SUCCEED = "succeed"
    FAIL = "fail"  # raise OSError
    HANG = "hang"  # block until the gate is opened (or the call is cancelled)


@dataclass(eq=False)
class FakeResource:
    """A stand-in pooled resource. ``dirty`` makes ``is_reusable`` (and ``check``) say no."""

    id: int
    closed: bool = False
    closing: bool = False
    dirty: bool = False
    aborted: bool = False

    def __repr__(self) -> str:
        flags = [name for name in ("closed", "closing", "dirty", "aborted") if getattr(self, name)]
        return f"<FakeResource #{self.id}{' ' if flags else ''}{' '.join(flags)}>"


@dataclass(eq=False)
class _Gate:
    event: asyncio.Event = field(default_factory=asyncio.Event)
    fail: bool = False  # what the calls blocked on this gate do once it opens


class Phase:
    """One gated phase of the connector, with counters a test can assert exactly.

    ``outcome`` applies to every call; ``fail_next(n)`` makes only the next ``n`` calls fail,
    whatever ``outcome`` says. A ``HANG`` call blocks until ``release()``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.outcome = Outcome.SUCCEED
        self.calls = 0
        """Calls started."""
        self.succeeded = 0
        self.failed = 0
        self.cancelled = 0
        """Calls interrupted (cancelled) while they hung."""
        self.hanging = 0
        """Calls blocked on the gate right now."""
        self._fail_next = 0
        self._gate = _Gate()
        self._changed = asyncio.Event()

    def succeed(self) -> None:
        """From now on calls succeed (calls already hanging keep hanging)."""
        self.outcome = Outcome.SUCCEED

    def fail(self) -> None:
        """From now on calls raise ``OSError``."""
        self.outcome = Outcome.FAIL

    def hang(self) -> None:
        """From now on calls block until ``release()``."""
        self.outcome = Outcome.HANG

    def fail_next(self, count: int = 1) -> None:
        """Make the next ``count`` calls raise ``OSError`` (on top of any armed already)."""
        self._fail_next += count

    @property
    def armed_failures(self) -> int:
        """Calls still to fail because of ``fail_next``."""
        return self._fail_next

    def release(self, *, fail: bool = False) -> None:
        """Open the gate: calls hanging now finish (raising ``OSError`` if ``fail``).

        Later calls succeed: ``outcome`` goes back to ``SUCCEED``.
        """
        gate, self._gate = self._gate, _Gate()
        gate.fail = fail
        gate.event.set()
        self.outcome = Outcome.SUCCEED

    async def wait_hanging(self, count: int = 1) -> None:
        """Wait until at least ``count`` calls block on the gate."""
        while self.hanging < count:
            self._changed.clear()
            await self._changed.wait()

    async def __call__(self, resource: FakeResource | None = None) -> None:
        self.calls += 1
        if self._fail_next:
            self._fail_next -= 1
            self._failure(resource)
        if self.outcome is Outcome.FAIL:
            self._failure(resource)
        if self.outcome is Outcome.HANG:
            gate = self._gate
            self.hanging += 1
            self._changed.set()
            try:
                await gate.event.wait()
            except BaseException:
                self.cancelled += 1
                raise
            finally:
                self.hanging -= 1
            if gate.fail:
                self._failure(resource)
        self.succeeded += 1

    def _failure(self, resource: FakeResource | None) -> None:
        self.failed += 1
        target = "" if resource is None else f" of {resource!r}"
        raise OSError(f"{self.name}{target} failed (injected by GatedConnector)")

    def __repr__(self) -> str:
        return (
            f"<Phase {self.name} {self.outcome.value}: {self.calls} calls, {self.succeeded} ok,"
            f" {self.failed} failed, {self.cancelled} cancelled, {self.hanging} hanging>"
        )


class GatedConnector:
    """An ``aioconn.Connector[FakeResource]`` whose every phase a test controls.

    ``created`` lists every resource ever opened, in order. ``errors`` collects misuse the
    connector saw (closing a closed resource, checking or resetting a closed one); a correct
    pool leaves it empty.

    A close that raises ``OSError`` still counts as closed (like ``transport.close()``, whose
    failure still frees the socket); a close that is cancelled leaves the resource open, so the
    pool must ``abort`` it or it is counted as lost.
    """

    def __init__(self) -> None:
        self.connect_phase = Phase("connect")
        self.check_phase = Phase("check")
        self.reset_phase = Phase("reset")
        self.close_phase = Phase("close")
        self.created: list[FakeResource] = []
        self.aborts = 0
        self.errors: list[str] = []

    async def connect(self) -> FakeResource:
        """Open a resource, unless the connect phase fails or is cancelled first."""
        await self.connect_phase()
        resource = FakeResource(id=len(self.created) + 1)
        self.created.append(resource)
        return resource

    async def check(self, resource: FakeResource) -> bool:
        """Alive unless dirty; the phase may also raise or hang."""
        if resource.closed:
            self.errors.append(f"check of closed {resource!r}")
        await self.check_phase(resource)
        return not resource.dirty

    async def reset(self, resource: FakeResource) -> None:
        """Run the reset phase."""
        if resource.closed:
            self.errors.append(f"reset of closed {resource!r}")
        await self.reset_phase(resource)

    def is_reusable(self, resource: FakeResource) -> bool:
        """Neither closed nor dirty."""
        return not (resource.closed or resource.dirty)

    async def close(self, resource: FakeResource) -> None:
        """Run the close phase; the resource is closed unless the close is cancelled."""
        if resource.closed or resource.closing:
            self.errors.append(
                f"close of {'closed' if resource.closed else 'closing'} {resource!r}"
            )
        resource.closing = True
        try:
            await self.close_phase(resource)
        except OSError:
            resource.closed = True
            raise
        finally:
            resource.closing = False
        resource.closed = True

    def abort(self, resource: FakeResource) -> None:
        """Close at once, synchronously (a close hanging on the gate stays blocked)."""
        self.aborts += 1
        resource.closed = True
        resource.aborted = True

    def release_all(self) -> None:
        """Open every phase's gate; from now on every phase succeeds."""
        for phase in self.phases():
            phase.release()

    def phases(self) -> tuple[Phase, Phase, Phase, Phase]:
        """The four phases: connect, check, reset, close."""
        return (self.connect_phase, self.check_phase, self.reset_phase, self.close_phase)

    def live(self) -> list[FakeResource]:
        """Resources created and neither closed nor being closed."""
        return [r for r in self.created if not (r.closed or r.closing)]

    def closing(self) -> list[FakeResource]:
        """Resources whose ``close`` is in progress."""
        return [r for r in self.created if r.closing and not r.closed]

    def closed(self) -> list[FakeResource]:
        """Resources closed (gracefully, by a failed close, or aborted)."""
        return [r for r in self.created if r.closed]

    def __repr__(self) -> str:
        return f"<GatedConnector {len(self.created)} created, {len(self.closed())} closed>"


def assert_accounted(
    connector: GatedConnector, stats: PoolStats, held: Collection[FakeResource]
) -> None:
    """Every resource ever created is exactly one of: idle, held, being closed, closed.

    ``held`` must be every resource leased from the pool right now (by any caller); the pool's
    idle ones (and those out for a keepalive check) are the live resources nobody holds.
    """
    assert not connector.errors, connector.errors
    held_ids = [r.id for r in held]
    assert len(set(held_ids)) == len(held_ids), f"a resource is held twice: {sorted(held_ids)}"
    unknown = [r for r in held if r not in connector.created]
    assert not unknown, f"held resources the connector never created: {unknown}"
    dead = [r for r in held if r.closed or r.closing]
    assert not dead, f"held resources that are closed or closing: {dead}"
    assert stats.in_use == len(held_ids), f"pool leases {stats.in_use}, callers hold {held}"
    loose = [r for r in connector.live() if r.id not in set(held_ids)]
    assert len(loose) == stats.idle + stats.checking, (
        f"{len(loose)} live resources nobody holds, but the pool has {stats.idle} idle and"
        f" {stats.checking} checking: {loose}"
    )
    both = [r for r in connector.created if r.closed and r.closing]
    assert not both, f"resources both closing and closed: {both}"
