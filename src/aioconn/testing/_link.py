"""One client connection through ChaosProxy: two sockets and a toxic chain per direction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._toxic_base import Chunk, Direction, Toxic, ToxicContext

if TYPE_CHECKING:
    from ._proxy import ChaosProxy, ToxicHandle

logger = logging.getLogger("aioconn.proxy")

_READ_SIZE = 65536
_QUEUE_CHUNKS = 64  # read-ahead per direction; a full queue stops reading (TCP backpressure)
_CONNECT_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 1.0

_Stage = tuple[Toxic[Any], ToxicContext[Any]]


def reset_socket(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s socket with a TCP RST: ``SO_LINGER`` on with a zero timeout, abort."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: abort() below is all that is left
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Flow:
    """One direction: a reader task queues chunks, a forwarder runs them down the chain."""

    def __init__(
        self,
        link: Link,
        direction: Direction,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
    ) -> None:
        self.link = link
        self.direction: Direction = direction
        self.source = source
        self.sink = sink
        self.queue: asyncio.Queue[Chunk] = asyncio.Queue(_QUEUE_CHUNKS)
        self.rng = random.Random(f"{link.proxy.seed}/{link.id}/{direction}")
        # In the order the toxics were added: that order is the chain's.
        self.contexts: dict[ToxicHandle, ToxicContext[Any]] = {}
        self.finished = False  # EOF was delivered

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await self.source.read(_READ_SIZE)
            await self.queue.put(Chunk(data, loop.time()))
            # Counted once queued: an idle forwarder then runs (and e.g. drops the chunk)
            # before the tasks that wait_for() this count wake up.
            self.link.proxy._count(self.direction, read=len(data))
            if not data:
                return

    async def forward(self) -> None:
        while True:
            chunk = await self.queue.get()
            # The chain is taken per chunk, so toxics added, updated or removed apply at once.
            stages = [
                (handle.toxic, ctx)
                for handle, ctx in self.contexts.items()
                if ctx.draw < handle.toxic.toxicity
            ]
            await self._through(stages, 0, chunk)
            if chunk.eof:
                return

    async def _through(self, stages: list[_Stage], index: int, chunk: Chunk) -> None:
        if index == len(stages):
            await self._deliver(chunk)
            return
        toxic, ctx = stages[index]

        async def send(piece: Chunk) -> None:
            await self._through(stages, index + 1, piece)

        await toxic.pipe(chunk, send, ctx)

    async def _deliver(self, chunk: Chunk) -> None:
        await self.link.proxy._flowing[self.direction].wait()  # ChaosProxy.hold()
        if self.link.closing:
            return
        if chunk.eof:
            self.finished = True
            if self.sink.can_write_eof():
                self.sink.write_eof()
            self.link.flow_finished()
            return
        self.sink.write(chunk.data)
        self.link.proxy._count(self.direction, forwarded=len(chunk.data))
        await self.sink.drain()


class Link:
    """A client connection, its upstream connection, and the tasks that move bytes between."""

    def __init__(
        self,
        proxy: ChaosProxy,
        link_id: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.id = link_id
        self.task: asyncio.Task[None] | None = None  # run(); set by the proxy
        self.closing = False
        self._client = (reader, writer)
        self._server: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._done = asyncio.Event()
        self._connecting = False
        self._flows: dict[Direction, _Flow] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watches: dict[ToxicHandle, asyncio.Task[None]] = {}

    def __repr__(self) -> str:
        state = "closing" if self.closing else "connecting" if not self._flows else "open"
        return f"<Link {self.id} {state}>"

    def _writers(self) -> list[asyncio.StreamWriter]:
        server = [] if self._server is None else [self._server[1]]
        return [self._client[1], *server]

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect upstream, forward until the link closes, then release everything."""
        try:
            if await self._connect():
                self._start()
                await self._done.wait()
        finally:
            await self._teardown()
            self.proxy._link_closed(self)

    async def _connect(self) -> bool:
        proxy = self.proxy
        self._connecting = True
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                self._server = await asyncio.open_connection(
                    proxy.upstream_host, proxy.upstream_port
                )
        except OSError as exc:  # includes TimeoutError
            self._connecting = False  # so that abort() below does not cancel this very task
            logger.warning(
                "link %d: cannot reach upstream %s:%d (%r); resetting the client",
                self.id,
                proxy.upstream_host,
                proxy.upstream_port,
                exc,
            )
            self.abort(rst=True)
            return False
        finally:
            self._connecting = False
        return not self.closing

    def _start(self) -> None:
        assert self._server is not None
        client_reader, client_writer = self._client
        server_reader, server_writer = self._server
        self._flows = {
            "upstream": _Flow(self, "upstream", client_reader, server_writer),
            "downstream": _Flow(self, "downstream", server_reader, client_writer),
        }
        for handle in self.proxy.toxics:
            self.attach(handle)
        for flow in self._flows.values():
            self._spawn(flow.read, f"read {flow.direction}")
            self._spawn(flow.forward, f"forward {flow.direction}")
        logger.debug("link %d: open (%s)", self.id, client_writer.get_extra_info("peername"))

    async def _teardown(self) -> None:
        self.closing = True
        for flow in self._flows.values():
            for ctx in flow.contexts.values():
                ctx.mark_removed()
        writers = self._writers()
        for writer in writers:  # synchronously first: nothing can leave a socket open now
            if not writer.transport.is_closing():
                writer.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for writer in writers:
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await writer.wait_closed()
            except TimeoutError:
                writer.transport.abort()
            except OSError:
                pass  # reset by the peer: closed all the same
        logger.debug("link %d: closed", self.id)

    def _spawn(self, work: Callable[[], Awaitable[None]], what: str) -> asyncio.Task[None]:
        # A callable, not a coroutine: a task cancelled before it starts leaves nothing unawaited.
        async def guarded() -> None:
            try:
                await work()
            except OSError as exc:
                if self.closing:
                    return  # fallout of our own close: it must stay graceful, not turn to RST
                logger.debug("link %d: %s failed (%r); resetting both sides", self.id, what, exc)
                self.abort(rst=True)
            except Exception:
                logger.exception("link %d: %s failed; resetting both sides", self.id, what)
                self.abort(rst=True)

        task = asyncio.get_running_loop().create_task(guarded(), name=f"link {self.id}: {what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _finish(self) -> None:
        self.closing = True
        self._done.set()
        if self._connecting and self.task is not None:
            self._connecting = False  # cancel once
            self.task.cancel()

    # -- what toxics and the proxy do to a link ----------------------------------------------

    def close(self) -> None:
        """Flush what was forwarded, then close both sides (FIN)."""
        if self.closing:
            return
        for writer in self._writers():
            writer.close()
        self._finish()

    def abort(self, *, rst: bool) -> None:
        """Close both sockets at once, discarding unsent data; with ``rst`` send a TCP RST."""
        for writer in self._writers():
            if rst:
                reset_socket(writer)
            else:
                writer.transport.abort()
        self._finish()

    def flow_finished(self) -> None:
        """Called when a direction delivered EOF: the link closes once both did."""
        if all(flow.finished for flow in self._flows.values()):
            self.close()

    def attach(self, handle: ToxicHandle) -> None:
        """Start applying ``handle``'s toxic to this link (if its toxicity draw says so)."""
        flow = self._flows.get(handle.direction)
        if flow is None or self.closing:
            return  # still connecting: _start() attaches every toxic installed by then
        toxic = handle.toxic
        # A draw per (seed, link, toxic name): which links a toxic hits is reproducible.
        draw = random.Random(f"{self.proxy.seed}/{self.id}/{handle.name}").random()
        ctx = ToxicContext(self, toxic.new_state(), flow.rng, draw)
        flow.contexts[handle] = ctx
        logger.debug(
            "link %d: toxic %s %s",
            self.id,
            handle.name,
            "applies" if draw < toxic.toxicity else "skipped",
        )
        self._start_watch(handle, ctx)

    def refresh(self, handle: ToxicHandle) -> None:
        """``handle``'s toxic was updated: restart its ``watch`` (timers count from now)."""
        flow = self._flows.get(handle.direction)
        ctx = None if flow is None else flow.contexts.get(handle)
        if ctx is not None:
            self._stop_watch(handle)
            self._start_watch(handle, ctx)

    def detach(self, handle: ToxicHandle) -> None:
        """Stop applying ``handle``'s toxic; chunks it is holding go on at once."""
        self._stop_watch(handle)
        flow = self._flows.get(handle.direction)
        ctx = None if flow is None else flow.contexts.pop(handle, None)
        if ctx is not None:
            ctx.mark_removed()

    def _start_watch(self, handle: ToxicHandle, ctx: ToxicContext[Any]) -> None:
        toxic = handle.toxic
        if ctx.draw < toxic.toxicity and type(toxic).watch is not Toxic.watch:
            self._watches[handle] = self._spawn(lambda: toxic.watch(ctx), f"toxic {handle.name}")

    def _stop_watch(self, handle: ToxicHandle) -> None:
        task = self._watches.pop(handle, None)
        if task is not None:
            task.cancel()
