"""Pool set-up helpers: states, turning a factory into a connector, size checks, error wrapping."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from . import _validate
from .connector import Connector, FactoryConnector
from .errors import ConnectError

R = TypeVar("R")


def as_connector(
    connector: Connector[R] | Callable[[], Awaitable[R]], **hooks: Callable[..., Any] | None
) -> Connector[R]:
    """The connector itself, or a ``FactoryConnector`` over a factory and its hooks."""
    if hasattr(connector, "connect") and hasattr(connector, "close"):
        given = [name for name, hook in hooks.items() if hook is not None]
        if given:
            raise TypeError(
                f"{', '.join(given)} can only be given with a factory function;"
                f" {connector!r} is a connector with its own methods"
            )
        return connector
    if not callable(connector):
        raise TypeError(
            f"connector must be an aioconn Connector or an async factory, got {connector!r}"
        )
    return FactoryConnector(connector, **hooks)


def check_sizes(min_size: object, max_size: object) -> tuple[int, int]:
    """Validated ``(min_size, max_size)``."""
    low = _validate.integer("min_size", min_size, minimum=0)
    high = _validate.integer("max_size", max_size, minimum=1)
    if low > high:
        raise ValueError(f"min_size must be <= max_size, got min_size={low} and max_size={high}")
    return low, high


def as_connect_error(exc: Exception, name: str) -> Exception:
    """A connect failure as the waiter should see it: misuse as is, the rest as ConnectError."""
    if isinstance(exc, ConnectError | TypeError | ValueError):
        return exc
    error = ConnectError(f"{name}: opening a connection failed: {exc!r}")
    error.__cause__ = exc
    return error
