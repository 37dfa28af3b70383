"""A schedule-exploring event loop: each seed runs the ready callbacks in another order.

asyncio runs the callbacks that are ready in one loop iteration in the order they became
ready, so an ordinary test sees one interleaving of its tasks. ``ExploringEventLoop`` shuffles
the tasks' steps within each iteration (other callbacks — transports, protocols, futures'
plumbing — keep their relative order, which asyncio's own machinery relies on), and may
defer a task's step to the next iteration. Run a test under many seeds and it meets many
schedules, as Loom and Shuttle do for Rust; a failing seed replays the same schedule.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

__all__ = ["ExploringEventLoop", "ScheduleFailure", "explore", "on_every_iteration"]


class _ShuffledReady(collections.deque):  # type: ignore[type-arg]  # holds asyncio.Handle objects
    """The loop's ready queue, reordered at the start of each iteration's batch."""

    def __init__(self, loop: ExploringEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self.left = 0  # handles left in the batch the loop is running

    def popleft(self) -> Any:
        if self.left <= 0:
            self._reorder()
        self.left -= 1
        handle = super().popleft()
        loop = self._loop
        if loop.defer and _is_task_step(handle) and loop.rng.random() < loop.defer:
            loop.deferred += 1
            # Run it one iteration later: what runs now only queues it again.
            return asyncio.Handle(self.append, (handle,), loop)
        return handle

    def _reorder(self) -> None:
        # The loop pops exactly len(self) handles per iteration (its `ntodo`).
        batch = list(self)
        self.left = len(batch)
        if len(batch) < 2:
            return
        rng = self._loop.rng
        steps = [h for h in batch if _is_task_step(h)]
        if len(steps) < 2:
            return
        rng.shuffle(steps)
        others = collections.deque(h for h in batch if not _is_task_step(h))
        merged = []
        queue = collections.deque(steps)
        while queue or others:
            # A riffle: the task steps land among the other callbacks at random places,
            # while those keep their own order.
            take_step = bool(queue) and (
                not others or rng.random() < len(queue) / (len(queue) + len(others))
            )
            merged.append(queue.popleft() if take_step else others.popleft())
        self.clear()
        self.extend(merged)


def _is_task_step(handle: Any) -> bool:
    callback = getattr(handle, "_callback", None)
    return isinstance(getattr(callback, "__self__", None), asyncio.Task)


class ExploringEventLoop(asyncio.SelectorEventLoop):
    """An event loop whose schedule is chosen by ``seed``.

    Args:
        seed: picks the schedule; the same seed and the same program give the same one.
        defer: the probability that a task's step is put off to the next iteration (an extra
            yield the program did not write), 0 to 1.

    Hooks added with ``add_iteration_hook`` run at the start of every iteration, i.e. after
    every batch of callbacks: a hook that raises stops the loop with that exception.
    """

    def __init__(self, seed: int, *, defer: float = 0.0) -> None:
        if not 0.0 <= defer <= 1.0:
            raise ValueError(f"defer must be between 0 and 1, got {defer!r}")
        super().__init__()
        self.seed = seed
        self.defer = defer
        self.rng = random.Random(seed)
        self.deferred = 0
        self.iterations = 0
        self._hooks: list[Callable[[], object]] = []
        self._ready: _ShuffledReady = _ShuffledReady(self)

    def add_iteration_hook(self, hook: Callable[[], object]) -> Callable[[], None]:
        """Run ``hook()`` after every loop iteration; returns a function that removes it."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook) if hook in self._hooks else None

    def _process_events(self, event_list: Any) -> None:
        super()._process_events(event_list)  # type: ignore[misc]  # SelectorEventLoop's own
        self._ready.left = 0  # a new iteration: its batch is reordered on first pop
        self.iterations += 1
        for hook in list(self._hooks):
            hook()


def on_every_iteration(hook: Callable[[], object]) -> Callable[[], None]:
    """Run ``hook`` after every iteration of the running ``ExploringEventLoop``.

    Returns a function that removes it. Raises ``RuntimeError`` on another loop.
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, ExploringEventLoop):
        raise RuntimeError(f"not running on an ExploringEventLoop but on {loop!r}")
    return loop.add_iteration_hook(hook)


class ScheduleFailure(AssertionError):
    """A scenario failed under one seed's schedule; ``seed`` replays it."""

    def __init__(self, seed: int, error: BaseException) -> None:
        super().__init__(
            f"failed under schedule seed {seed}: {error!r}"
            f" (replay with explore(..., seeds=[{seed}]) or --aioconn-explore-seed={seed})"
        )
        self.seed = seed
        self.error = error


def explore(
    scenario: Callable[[], Awaitable[object]],
    *,
    seeds: Iterable[int],
    defer: float = 0.05,
    timeout: float = 30.0,
) -> int:
    """Run ``scenario()`` once per seed, each on a new ``ExploringEventLoop``.

    Returns how many seeds ran. A scenario that raises (or does not finish within
    ``timeout`` seconds: a deadlock) raises ``ScheduleFailure`` naming the seed, with the
    original error as its cause.
    """
    ran = 0
    for seed in seeds:
        loop = ExploringEventLoop(seed, defer=defer)
        try:
            loop.run_until_complete(_bounded(scenario, timeout))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise ScheduleFailure(seed, exc) from exc
        finally:
            _shut_down(loop)
        ran += 1
    return ran


async def _bounded(scenario: Callable[[], Awaitable[object]], timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            await scenario()
    except TimeoutError:
        raise TimeoutError(f"the scenario did not finish within {timeout} s") from None


def _shut_down(loop: ExploringEventLoop) -> None:
    """Cancel what the scenario left running, then close the loop."""
    loop._hooks.clear()
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5.0))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
