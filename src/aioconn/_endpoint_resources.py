"""What ``aioconn.Endpoints`` opens at an endpoint: its own ``Connection``s, or whatever a
connector made for that endpoint opens (an asyncpg connection, ...), with that connector's
hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._endpoint_state import EndpointState
from .connection import Connection

# The connector hooks Endpoints passes on to the connector of a resource's endpoint.
PASSED_ON = ("init", "reset", "recover")


class Sockets:
    """The default: an ``aioconn.Connection`` opened with the endpoint's options."""

    def prepare(self, state: EndpointState) -> None:
        """Nothing to prepare: the options live on the state."""

    async def open(self, state: EndpointState) -> Any:
        return await Connection._from_options(state.target, state.options).connect()

    def reusable(self, resource: Any) -> bool:
        return bool(resource.reusable)

    async def check(self, resource: Any) -> bool:
        return bool(resource.reusable)

    async def close(self, resource: Any) -> None:
        await resource.close()

    def abort(self, resource: Any) -> None:
        resource.abort()

    def has(self, hook: str) -> bool:
        return False

    def hook(self, resource: Any, name: str) -> Callable[..., Any]:
        raise AttributeError(name)

    def target_of(self, resource: Any) -> str:
        return str(resource.target)


class Connectors:
    """One connector per endpoint, made by ``make(host=, port=)`` or ``make(path=)``."""

    def __init__(self, make: Callable[..., Any]) -> None:
        if not callable(make):
            raise TypeError(f"connector must be callable, got {make!r}")
        self._make = make
        self._by_key: dict[str, Any] = {}
        self._owner: dict[Any, tuple[str, Any]] = {}  # resource -> (endpoint, its connector)
        self._sample: Any = None

    def prepare(self, state: EndpointState) -> None:
        if state.key in self._by_key:
            return
        target = state.target
        where: dict[str, Any] = (
            {"path": target.path}
            if target.path is not None
            else {"host": target.host, "port": target.port}
        )
        connector = self._make(**where)
        for required in ("connect", "close"):
            if not callable(getattr(connector, required, None)):
                raise TypeError(
                    f"connector({', '.join(f'{k}={v!r}' for k, v in where.items())}) returned"
                    f" {connector!r}, which has no {required}()"
                )
        self._by_key[state.key] = connector
        if self._sample is None:
            self._sample = connector

    async def open(self, state: EndpointState) -> Any:
        connector = self._by_key[state.key]
        resource = await connector.connect()
        self._owner[resource] = (state.key, connector)
        return resource

    def _connector(self, resource: Any) -> Any:
        return self._owner[resource][1]

    def reusable(self, resource: Any) -> bool:
        hook = getattr(self._connector(resource), "is_reusable", None)
        return True if hook is None else bool(hook(resource))

    async def check(self, resource: Any) -> bool:
        if not self.reusable(resource):
            return False
        hook = getattr(self._connector(resource), "check", None)
        return True if hook is None else bool(await hook(resource))

    async def close(self, resource: Any) -> None:
        owner = self._owner.pop(resource, None)
        if owner is not None:  # else closed or aborted already
            await owner[1].close(resource)

    def abort(self, resource: Any) -> None:
        owner = self._owner.pop(resource, None)
        hook = None if owner is None else getattr(owner[1], "abort", None)
        if hook is not None:
            hook(resource)

    def has(self, hook: str) -> bool:
        return self._sample is not None and callable(getattr(self._sample, hook, None))

    def hook(self, resource: Any, name: str) -> Callable[..., Any]:
        hook: Callable[..., Any] = getattr(self._connector(resource), name)
        return hook

    def target_of(self, resource: Any) -> str:
        owner = self._owner.get(resource)
        return owner[0] if owner is not None else "?"
