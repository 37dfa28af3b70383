"""ChaosProxy's toxics: Toxiproxy's seven, each a small unit over one direction's chunks."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import ClassVar

from .. import _validate
from ._toxic_base import Chunk, Direction, Send, Toxic, ToxicContext

__all__ = [
    "bandwidth",
    "latency",
    "limit_data",
    "reset_peer",
    "slicer",
    "slow_close",
    "timeout",
]


class _Stateless(Toxic[None]):
    __slots__ = ()

    def new_state(self) -> None:
        return None


@dataclass(slots=True)
class _Clock:
    free_at: float = -math.inf


@dataclass(slots=True)
class _Count:
    forwarded: int = 0


@dataclass(frozen=True, slots=True)
class Latency(_Stateless):
    """Each chunk leaves ``delay`` ± ``jitter`` seconds after it entered (see ``latency``)."""

    delay: float
    jitter: float = 0.0
    kind: ClassVar[str] = "latency"

    def _check(self) -> None:
        _validate.non_negative("delay", self.delay)
        _validate.non_negative("jitter", self.jitter)

    async def pipe(self, chunk: Chunk, send: Send, ctx: ToxicContext[None]) -> None:
        offset = ctx.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        await ctx.sleep_until(chunk.time + max(0.0, self.delay + offset))
        await send(Chunk(chunk.data, ctx.time()))  # re-stamped: stacked latencies add up


@dataclass(frozen=True, slots=True)
class Bandwidth(Toxic[_Clock]):
    """Paces the direction to ``bytes_per_second`` (see ``bandwidth``)."""

    bytes_per_second: float
    kind: ClassVar[str] = "bandwidth"

    def _check(self) -> None:
        if _validate.non_negative("bytes_per_second", self.bytes_per_second) == 0:
            raise ValueError("bytes_per_second must be > 0, got 0 (use timeout(0) to stop data)")

    def new_state(self) -> _Clock:
        return _Clock()

    async def pipe(self, chunk: Chunk, send: Send, ctx: ToxicContext[_Clock]) -> None:
        if chunk.eof:
            await send(chunk)
            return
        rate = self.bytes_per_second
        step = max(1, int(rate / 10))  # write 100 ms worth of bytes at a time
        for start in range(0, len(chunk.data), step):
            piece = chunk.data[start : start + step]
            # A piece leaves only once its whole transmission time has passed: N bytes >= N/rate.
            ctx.state.free_at = max(ctx.state.free_at, ctx.time()) + len(piece) / rate
            await ctx.sleep_until(ctx.state.free_at)
            await send(Chunk(piece, ctx.time()))


@dataclass(frozen=True, slots=True)
class Slicer(_Stateless):
    """Splits chunks into pieces of ``average_size`` ± ``size_variation`` (see ``slicer``)."""

    average_size: int
    size_variation: int = 0
    delay: float = 0.0
    kind: ClassVar[str] = "slicer"

    def _check(self) -> None:
        _validate.integer("average_size", self.average_size, minimum=1)
        _validate.integer("size_variation", self.size_variation, minimum=0)
        if self.size_variation >= self.average_size:
            raise ValueError(
                f"size_variation must be smaller than average_size={self.average_size}, "
                f"got {self.size_variation}"
            )
        _validate.non_negative("delay", self.delay)

    async def pipe(self, chunk: Chunk, send: Send, ctx: ToxicContext[None]) -> None:
        if chunk.eof:
            await send(chunk)
            return
        low = self.average_size - self.size_variation
        high = self.average_size + self.size_variation
        start = 0
        for index, size in enumerate(_slice_sizes(len(chunk.data), low, high, ctx.rng)):
            if index and self.delay:
                await ctx.sleep(self.delay)
            await send(Chunk(chunk.data[start : start + size], ctx.time()))
            start += size


def _slice_sizes(total: int, low: int, high: int, rng: random.Random) -> list[int]:
    """Sizes in [low, high] summing to ``total``; only the last may be short, if it must be."""
    sizes: list[int] = []
    while total > high:
        # Never leave a remainder below `low` when a split with every piece in range exists.
        top = min(high, total - low)
        size = rng.randint(low, top) if top >= low else high
        sizes.append(size)
        total -= size
    sizes.append(total)
    return sizes


@dataclass(frozen=True, slots=True)
class LimitData(Toxic[_Count]):
    """Forwards ``nbytes`` bytes, then closes the link (see ``limit_data``)."""

    nbytes: int
    kind: ClassVar[str] = "limit_data"

    def _check(self) -> None:
        _validate.integer("nbytes", self.nbytes, minimum=0)

    def new_state(self) -> _Count:
        return _Count()

    async def pipe(self, chunk: Chunk, send: Send, ctx: ToxicContext[_Count]) -> None:
        if chunk.eof:
            await send(chunk)
            return
        room = self.nbytes - ctx.state.forwarded
        if room > 0:
            part = chunk.data[:room]
            ctx.state.forwarded += len(part)
            await send(Chunk(part, chunk.time))
        if ctx.state.forwarded >= self.nbytes:
            ctx.close()


@dataclass(frozen=True, slots=True)
class Timeout(_Stateless):
    """Drops data and holds back EOF; closes the link after ``after`` seconds unless 0 (see
    ``timeout``)."""

    after: float
    kind: ClassVar[str] = "timeout"

    def _check(self) -> None:
        _validate.non_negative("after", self.after)

    async def pipe(self, chunk: Chunk, send: Send, ctx: ToxicContext[None]) -> None:
        if chunk.eof:
            # Held, not dropped: once the toxic is removed the peer learns of the close, and
            # the link (which closes when both directions ended) does not stay open for good.
            await ctx.wait_removed()
            await send(chunk)
        # data is dropped: it never gets through

    async def watch(self, ctx: ToxicContext[None]) -> None:
        if self.after > 0:
            await ctx.sleep(self.after)
            ctx.close()


@dataclass(frozen=True, slots=True)
class ResetPeer(_Stateless):
    """Answers the first chunk with a reset ``after`` seconds later (see ``reset_peer``)."""

    after: float = 0.0
    kind: ClassVar[str] = "reset_peer"

    def _check(self) -> None:
        _validate.non_negative("after", self.after)

    async def pipe(self, chunk: Chunk, send: Send, ctx: ToxicContext[None]) -> None:
        # Blocking here also holds back every later chunk: none reaches the peer.
        await ctx.sleep(self.after)
        if ctx.removed:
            await send(chunk)  # removed meanwhile: nothing is lost
        else:
            ctx.reset()


@dataclass(frozen=True, slots=True)
class SlowClose(_Stateless):
    """Holds back EOF for ``delay`` seconds (see ``slow_close``)."""

    delay: float
    kind: ClassVar[str] = "slow_close"

    def _check(self) -> None:
        _validate.non_negative("delay", self.delay)

    async def pipe(self, chunk: Chunk, send: Send, ctx: ToxicContext[None]) -> None:
        if chunk.eof:
            await ctx.sleep(self.delay)
        await send(chunk)


def latency(
    delay: float,
    jitter: float = 0.0,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    name: str | None = None,
) -> Latency:
    """Delay data: each chunk reaches the peer ``delay`` ± ``jitter`` seconds after the proxy
    read it (jitter drawn uniformly from the seeded RNG, never below 0). Chunks keep their order
    and are delayed in parallel, so throughput is unchanged; EOF is delayed like data.

    Args:
        delay: seconds each chunk is held back (>= 0).
        jitter: at most this many seconds more or less, drawn per chunk (>= 0).
        direction: ``"downstream"`` (server to client, the default) or ``"upstream"``.
        toxicity: the probability, in [0, 1], that the toxic applies to a given link.
        name: its unique name on the proxy; default ``"<kind>_<direction>"``.

    Raises:
        ValueError: a parameter is out of range.
    """
    return Latency(delay, jitter, direction=direction, toxicity=toxicity, name=name)


def bandwidth(
    bytes_per_second: float,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    name: str | None = None,
) -> Bandwidth:
    """Limit throughput: N bytes take at least N / ``bytes_per_second`` seconds to reach the
    peer. Data is written in pieces worth 100 ms each; idle time earns no burst credit.

    Args:
        bytes_per_second: the rate (> 0).
        direction: ``"downstream"`` (server to client, the default) or ``"upstream"``.
        toxicity: the probability, in [0, 1], that the toxic applies to a given link.
        name: its unique name on the proxy; default ``"<kind>_<direction>"``.

    Raises:
        ValueError: a parameter is out of range.
    """
    return Bandwidth(bytes_per_second, direction=direction, toxicity=toxicity, name=name)


def slicer(
    average_size: int,
    size_variation: int = 0,
    delay: float = 0.0,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    name: str | None = None,
) -> Slicer:
    """Fragment data: each chunk is written in pieces of ``average_size`` ± ``size_variation``
    bytes (sizes from the seeded RNG), ``delay`` seconds apart, so the reader sees short reads.
    A piece is shorter only when the chunk is, or when it cannot be split with every piece in
    range (possible only if ``2 * size_variation + 1 < average_size``).

    Args:
        average_size: the average piece, in bytes (>= 1).
        size_variation: pieces are at most this many bytes longer or shorter (< average_size).
        delay: seconds between pieces (>= 0).
        direction: ``"downstream"`` (server to client, the default) or ``"upstream"``.
        toxicity: the probability, in [0, 1], that the toxic applies to a given link.
        name: its unique name on the proxy; default ``"<kind>_<direction>"``.

    Raises:
        ValueError: a parameter is out of range.
    """
    return Slicer(
        average_size, size_variation, delay, direction=direction, toxicity=toxicity, name=name
    )


def limit_data(
    nbytes: int,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    name: str | None = None,
) -> LimitData:
    """Truncate: the peer receives exactly the first ``nbytes`` bytes of this direction, then
    both sides of the link are closed (FIN, after what was forwarded is flushed). With 0 the
    link closes when the first data arrives.

    Args:
        nbytes: how many bytes get through (>= 0).
        direction: ``"downstream"`` (server to client, the default) or ``"upstream"``.
        toxicity: the probability, in [0, 1], that the toxic applies to a given link.
        name: its unique name on the proxy; default ``"<kind>_<direction>"``.

    Raises:
        ValueError: a parameter is out of range.
    """
    return LimitData(nbytes, direction=direction, toxicity=toxicity, name=name)


def timeout(
    after: float,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    name: str | None = None,
) -> Timeout:
    """Black-hole the direction: nothing more reaches the peer (data is dropped, not buffered;
    an EOF is held back until the toxic is removed). ``after`` seconds after the toxic takes
    effect on a link, both sides are closed (FIN); with ``after=0`` the link stays open and
    silent until the toxic is removed.

    Args:
        after: seconds until both sides are closed; 0: never (>= 0).
        direction: ``"downstream"`` (server to client, the default) or ``"upstream"``.
        toxicity: the probability, in [0, 1], that the toxic applies to a given link.
        name: its unique name on the proxy; default ``"<kind>_<direction>"``.

    Raises:
        ValueError: a parameter is out of range.
    """
    return Timeout(after, direction=direction, toxicity=toxicity, name=name)


def reset_peer(
    after: float = 0.0,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    name: str | None = None,
) -> ResetPeer:
    """Reset instead of forwarding: when the first chunk (data or EOF) reaches the toxic, it is
    held back with everything after it, and ``after`` seconds later both the client and the
    server get a TCP RST (``SO_LINGER`` 0), so their next read raises ``ConnectionResetError``.
    Idle links are left alone.

    Args:
        after: seconds between the first chunk and the reset (>= 0).
        direction: ``"downstream"`` (server to client, the default) or ``"upstream"``.
        toxicity: the probability, in [0, 1], that the toxic applies to a given link.
        name: its unique name on the proxy; default ``"<kind>_<direction>"``.

    Raises:
        ValueError: a parameter is out of range.
    """
    return ResetPeer(after, direction=direction, toxicity=toxicity, name=name)


def slow_close(
    delay: float,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    name: str | None = None,
) -> SlowClose:
    """Delay the close: when one side closes, the peer sees EOF ``delay`` seconds later than it
    would have; data before it is not delayed.

    Args:
        delay: seconds the EOF is held back (>= 0).
        direction: ``"downstream"`` (server to client, the default) or ``"upstream"``.
        toxicity: the probability, in [0, 1], that the toxic applies to a given link.
        name: its unique name on the proxy; default ``"<kind>_<direction>"``.

    Raises:
        ValueError: a parameter is out of range.
    """
    return SlowClose(delay, direction=direction, toxicity=toxicity, name=name)
