"""``aioconn.Endpoint``: one server of an ``Endpoints`` connector, and parsing its address."""

from __future__ import annotations

import dataclasses
import math
import ssl as _ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._open import Target
from ._options import ConnectOptions

__all__ = ["Endpoint", "EndpointSpec", "parse_address", "resolve", "resolve_all"]

Address = str | tuple[str, int]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One server, with its own weight and TLS settings: ``Endpoint("10.0.0.5:5432", weight=2)``.

    Args:
        address: ``"host:port"`` (``"[::1]:5432"`` for IPv6), ``(host, port)`` or
            ``"unix:/path/to.sock"``.
        weight: its share of the traffic relative to the other endpoints (> 0).
        ssl: ``True``, an ``ssl.SSLContext`` or ``False`` for this endpoint; ``None`` (default)
            uses the ``Endpoints``' shared ``ssl`` option.
        server_hostname: the name to verify its certificate against; ``None`` uses the shared
            option, else the host.

    Raises:
        TypeError, ValueError: for an invalid argument, naming it.
    """

    address: Address
    weight: float = 1.0
    ssl: bool | _ssl.SSLContext | None = None
    server_hostname: str | None = None

    def __post_init__(self) -> None:
        parse_address(self.address, "address")
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise TypeError(f"weight must be a number, got {weight!r}")
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"weight must be a positive finite number, got {weight!r}")
        object.__setattr__(self, "weight", float(weight))  # frozen: stats show a float
        if self.ssl is not None and not isinstance(self.ssl, bool | _ssl.SSLContext):
            raise TypeError(f"ssl must be None, a bool or an ssl.SSLContext, got {self.ssl!r}")
        if self.server_hostname is not None and (
            not isinstance(self.server_hostname, str) or not self.server_hostname
        ):
            raise ValueError(
                f"server_hostname must be a non-empty str or None, got {self.server_hostname!r}"
            )

    @property
    def name(self) -> str:
        """The endpoint's name in stats, events and ``drain()``: ``host:port`` or ``unix:/path``."""
        return str(parse_address(self.address, "address"))


EndpointSpec = str | tuple[str, int] | Endpoint


def parse_address(value: object, name: str) -> Target:
    """A ``Target`` from ``"host:port"``, ``"[v6]:port"``, ``(host, port)`` or ``"unix:/path"``.

    Raises:
        TypeError, ValueError: naming ``name`` and showing the accepted forms.
    """
    forms = "expected 'host:port', '[ipv6]:port', (host, port) or 'unix:/path'"
    if isinstance(value, str):
        if value.startswith("unix:"):
            path = value[len("unix:") :]
            if not path:
                raise ValueError(f"{name}: {value!r} has no socket path; {forms}")
            return Target(path=path)
        host, colon, port_text = value.rpartition(":")
        if not colon or not host or not port_text:
            raise ValueError(f"{name}: {value!r} is not an address; {forms}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise ValueError(f"{name}: {value!r} is ambiguous; write an IPv6 host as [{host}]")
        if not port_text.isdigit():
            raise ValueError(f"{name}: {value!r} has a port that is not a number; {forms}")
        return _tcp(host.strip(), int(port_text), name, value)
    if isinstance(value, tuple):
        if len(value) != 2 or not isinstance(value[0], str):
            raise TypeError(f"{name}: {value!r} is not a (host, port) tuple; {forms}")
        host, port = value
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"{name}: the port of {value!r} must be an int")
        return _tcp(host.strip(), port, name, value)
    raise TypeError(
        f"{name} must be a str, a (host, port) tuple or an aioconn.Endpoint, got {value!r}"
    )


def _tcp(host: str, port: int, name: str, value: object) -> Target:
    if not host:
        raise ValueError(f"{name}: {value!r} has an empty host")
    if not 1 <= port <= 65535:
        raise ValueError(f"{name}: the port of {value!r} must be in 1..65535")
    return Target(host=host, port=port)


def resolve(
    spec: object, name: str, shared: ConnectOptions
) -> tuple[Target, Endpoint, ConnectOptions]:
    """Where ``spec`` goes, as an ``Endpoint``, and its connection options (shared + its own TLS).

    Raises:
        TypeError, ValueError: naming ``name`` (e.g. ``endpoints[2]``).
    """
    endpoint = spec if isinstance(spec, Endpoint) else Endpoint(_address(spec, name))
    target = parse_address(endpoint.address, name)
    options = shared
    if endpoint.ssl is False:  # plain TCP here, whatever the shared TLS settings say
        options = dataclasses.replace(options, ssl=None, server_hostname=None)
    elif endpoint.ssl is not None:
        context = (
            endpoint.ssl
            if isinstance(endpoint.ssl, _ssl.SSLContext)
            else _ssl.create_default_context()
        )
        options = dataclasses.replace(options, ssl=context)
    if endpoint.server_hostname is not None:
        options = dataclasses.replace(options, server_hostname=endpoint.server_hostname)
    if options.ssl is None and options.server_hostname is not None:
        raise ValueError(f"{name}: server_hostname is only meaningful with ssl")
    if options.ssl is not None and target.path is not None and options.server_hostname is None:
        raise ValueError(f"{name}: server_hostname is required with ssl on a Unix socket")
    return target, endpoint, options


def resolve_all(
    endpoints: object, shared: ConnectOptions
) -> list[tuple[Target, Endpoint, ConnectOptions]]:
    """``resolve`` for each item of a non-empty list of endpoints, with no key listed twice.

    Raises:
        TypeError, ValueError: naming ``endpoints`` or the item (``endpoints[2]``).
    """
    if isinstance(endpoints, str | bytes | Endpoint) or not isinstance(endpoints, Iterable):
        raise TypeError(
            "endpoints must be a list of 'host:port' strings, (host, port) tuples,"
            f" 'unix:/path' strings or aioconn.Endpoint, got {endpoints!r}"
        )
    items: list[Any] = list(endpoints)
    if len(items) == 2 and isinstance(items[0], str) and isinstance(items[1], int):
        raise TypeError(f"endpoints must be a list; for one endpoint write [{endpoints!r}]")
    if not items:
        raise ValueError("endpoints must not be empty")
    resolved = [resolve(spec, f"endpoints[{i}]", shared) for i, spec in enumerate(items)]
    seen: dict[str, int] = {}
    for index, (target, _, _) in enumerate(resolved):
        first = seen.setdefault(str(target), index)
        if first != index:
            raise ValueError(
                f"endpoints[{index}]: {str(target)!r} is listed twice (also endpoints[{first}])"
            )
    return resolved


def _address(spec: object, name: str) -> Address:
    parse_address(spec, name)  # raises, naming the list item, for anything else
    assert isinstance(spec, str | tuple)
    return spec
