"""What a toxic is and what it sees: chunks, the per-link context, the ``Toxic`` base class."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, Protocol, TypeVar

from .. import _validate

__all__ = ["DIRECTIONS", "Chunk", "Direction", "LinkControl", "Send", "Toxic", "ToxicContext"]

Direction = Literal["upstream", "downstream"]
"""``"upstream"`` is client → server, ``"downstream"`` is server → client (Toxiproxy's names)."""

DIRECTIONS: tuple[Direction, ...] = ("upstream", "downstream")

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes read from one side of a link; empty ``data`` stands for EOF (the peer's FIN).

    ``time`` is the loop time at which the proxy read the bytes, or at which the previous toxic
    in the chain let them go.
    """

    data: bytes
    time: float

    @property
    def eof(self) -> bool:
        """True for the end-of-stream marker."""
        return not self.data


Send = Callable[[Chunk], Awaitable[None]]


class LinkControl(Protocol):
    """What a toxic may do to the link it runs on."""

    def close(self) -> None:
        """Flush what was forwarded, then close both sides (FIN)."""

    def abort(self, *, rst: bool) -> None:
        """Close both sides at once, discarding unsent data; with ``rst`` send TCP RSTs."""


class ToxicContext(Generic[S]):
    """One toxic on one link in one direction: its per-link ``state``, ``rng`` and controls."""

    __slots__ = ("_link", "_removed", "draw", "rng", "state")

    def __init__(self, link: LinkControl, state: S, rng: random.Random, draw: float) -> None:
        self._link = link
        self._removed = asyncio.Event()
        self.state = state
        self.rng = rng
        self.draw = draw  # the link applies the toxic while draw < toxicity

    @property
    def removed(self) -> bool:
        """True once the toxic was removed from the proxy (or the link closed)."""
        return self._removed.is_set()

    def mark_removed(self) -> None:
        """Wake every sleep of this toxic on this link; close() and reset() do nothing anymore."""
        self._removed.set()

    @staticmethod
    def time() -> float:
        """The event loop's clock, in seconds."""
        return asyncio.get_running_loop().time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the loop time is ``deadline`` or later, or until the toxic is removed."""
        loop = asyncio.get_running_loop()
        # Loop: a timer may fire up to the clock resolution early, and lower bounds must hold.
        while not self._removed.is_set() and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._removed.wait()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or until the toxic is removed."""
        await self.sleep_until(self.time() + seconds)

    async def wait_removed(self) -> None:
        """Wait until the toxic is removed from the proxy (or the link closes)."""
        await self._removed.wait()

    def close(self) -> None:
        """Close the link gracefully on both sides (unless the toxic was removed)."""
        if not self.removed:
            self._link.close()

    def reset(self) -> None:
        """Reset both sides of the link with a TCP RST (unless the toxic was removed)."""
        if not self.removed:
            self._link.abort(rst=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Toxic(Generic[S]):
    """One fault, applied to one direction of every link the proxy holds.

    A toxic is a unit over a stream of chunks: ``pipe`` receives each chunk in order and passes
    on what the next stage (another toxic, or finally the socket) should get, by awaiting
    ``send``. Toxics that act on time rather than data also override ``watch``. Per-link state
    comes from ``new_state``. Toxics are immutable; ``ToxicHandle.update`` swaps in a copy.

    Args:
        direction: ``"downstream"`` (server → client, the default) or ``"upstream"``.
        toxicity: probability in [0, 1] that the toxic applies to a given link.
        name: unique name on the proxy; default ``"<kind>_<direction>"``.
    """

    direction: Direction = "downstream"
    toxicity: float = 1.0
    name: str | None = None

    kind: ClassVar[str] = "toxic"
    """The toxic's type, such as ``"latency"``; default names start with it."""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"direction must be 'upstream' or 'downstream', got {self.direction!r}"
            )
        toxicity = _validate.non_negative("toxicity", self.toxicity)
        if toxicity > 1:
            raise ValueError(f"toxicity must be in [0, 1], got {self.toxicity!r}")
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            raise ValueError(f"name must be a non-empty str or None, got {self.name!r}")
        self._check()

    def _check(self) -> None:
        """Validate the subclass's own parameters (raise ``ValueError``/``TypeError``)."""

    def new_state(self) -> S:
        """Fresh per-link state for this toxic."""
        raise NotImplementedError

    async def pipe(self, chunk: Chunk, send: Send, ctx: ToxicContext[S]) -> None:
        """Pass ``chunk`` on, changed, split, delayed or not at all. The default forwards it.

        Args:
            chunk: the bytes read (empty ``data``: EOF) and when they were read.
            send: awaited with each chunk the next stage should get, in order.
            ctx: this link's state, RNG and controls (sleep, close, reset).
        """
        await send(chunk)

    async def watch(self, ctx: ToxicContext[S]) -> None:
        """Run on each link from the moment the toxic applies until it is removed or updated.

        Args:
            ctx: this link's state, RNG and controls (sleep, close, reset).
        """
