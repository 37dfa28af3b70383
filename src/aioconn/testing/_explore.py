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

    Raises:
        ValueError: ``defer`` is not between 0 and 1.
    """

    def __init__(self, seed: int, *, defer: float = 0.0) -> None:
        if not 0.0 <= defer <= 1.0:
            raise ValueError(f"defer must be between 0 and 1, got {defer!r}")
        super().__init__()
        self.seed = seed
        """The seed this loop's schedule comes from."""
        self.defer = defer
        """The probability that a task's step is put off to the next iteration."""
        self.rng = random.Random(seed)
        """The random generator that picks the schedule (seeded with ``seed``)."""
        self.deferred = 0
        """How many task steps were put off so far."""
        self.iterations = 0
        """How many loop iterations ran so far."""
        self._hooks: list[Callable[[], object]] = []
        self._ready: _ShuffledReady = _ShuffledReady(self)

    def add_iteration_hook(self, hook: Callable[[], object]) -> Callable[[], None]:
        """Run ``hook()`` after every loop iteration; returns a function that removes it.

        Args:
            hook: called with no arguments; what it raises stops the loop.
        """
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

    Args:
        hook: called with no arguments after every iteration, e.g. ``pool.check_invariants``.

    Returns:
        A function that removes the hook.

    Raises:
        RuntimeError: the running loop is not an ``ExploringEventLoop``.
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, ExploringEventLoop):
        raise RuntimeError(f"not running on an ExploringEventLoop but on {loop!r}")
    return loop.add_iteration_hook(hook)


class ScheduleFailure(AssertionError):
    """A scenario failed under one seed's schedule; ``seed`` replays it.

    Args:
        seed: the seed whose schedule failed.
        error: what the scenario raised (also the ``__cause__``).
    """

    def __init__(self, seed: int, error: BaseException) -> None:
        super().__init__(
            f"failed under schedule seed {seed}: {error!r}"
            f" (replay with explore(..., seeds=[{seed}]) or --aioconn-explore-seed={seed})"
        )
        self.seed = seed
        """The seed whose schedule failed: ``explore(..., seeds=[seed])`` replays it."""
        self.error = error
        """What the scenario raised under that schedule."""


def explore(
    scenario: Callable[[], Awaitable[object]],
    *,
    seeds: Iterable[int],
    defer: float = 0.05,
    timeout: float = 30.0,
) -> int:
    """Run ``scenario()`` once per seed, each on a new ``ExploringEventLoop``.

    Call it where no event loop runs (a sync test, a script): each seed gets its own loop.

    Args:
        scenario: an async function with no arguments; build everything it uses inside it.
        seeds: the schedules to run, e.g. ``range(100)``.
        defer: the probability that a task's step is put off to the next iteration.
        timeout: seconds one run may take; longer counts as a deadlock.

    Returns:
        How many seeds ran.

    Raises:
        ScheduleFailure: the scenario raised, or did not finish within ``timeout`` seconds,
            under a seed; the original error is its cause.
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
