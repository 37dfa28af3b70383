"""What the driver connectors share: the ``init`` hook, argument checks, the lazy import."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, Generic, Literal, TypeVar

from .. import _validate

R = TypeVar("R")

ResetMode = Literal["transaction", "session"]
RESET_MODES: tuple[ResetMode, ...] = ("transaction", "session")

DEFAULT_RECOVER_TIMEOUT = 2.0
DEFAULT_CLOSE_TIMEOUT = 5.0

InitHook = Callable[[R], Awaitable[Any] | Any]


def require(module: str, extra: str, connector: str) -> ModuleType:
    """Import ``module``, or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{connector} needs the {module!r} package: pip install 'aioconn[{extra}]'"
        ) from exc


def reset_mode(value: object) -> ResetMode:
    for mode in RESET_MODES:
        if value == mode:
            return mode
    raise ValueError(f"reset must be 'transaction' or 'session', got {value!r}")


class DriverConnector(Generic[R]):
    """The ``init`` hook and the timeouts; subclasses add the driver's own methods.

    ``init`` is exposed only when given (``connector.init`` is None otherwise), so a pool
    skips the hook when there is none, as it does for the other optional hooks.
    """

    def __init__(
        self,
        *,
        init: InitHook[R] | None,
        reset: ResetMode,
        recover_timeout: float,
        close_timeout: float,
    ) -> None:
        if init is not None and not callable(init):
            raise TypeError(f"init must be callable or None, got {init!r}")
        self._init = init
        self.reset_mode: ResetMode = reset_mode(reset)
        recover = _validate.timeout("recover_timeout", recover_timeout, allow_none=False)
        close = _validate.timeout("close_timeout", close_timeout, allow_none=False)
        assert recover is not None
        assert close is not None
        self.recover_timeout: float = recover
        self.close_timeout: float = close
        if init is None:
            self.init = None  # type: ignore[assignment]  # the pool looks optional hooks up by name

    async def init(self, resource: R) -> None:
        """Run the ``init`` callable on a new connection (the pool calls it after connect)."""
        assert self._init is not None
        result = self._init(resource)
        if inspect.isawaitable(result):
            await result
