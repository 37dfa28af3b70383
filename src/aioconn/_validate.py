"""Argument checks for the public API boundary: each error names the parameter and the value."""

from __future__ import annotations

import math


def timeout(name: str, value: object, *, allow_none: bool = True) -> float | None:
    """Return ``value`` as a positive finite float (or None when allowed)."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must be a number of seconds, got None")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")
    return float(value)


def wait_timeout(name: str, value: object) -> float | None:
    """An acquire timeout: positive seconds, ``0`` (do not wait) or ``None`` (no limit)."""
    if value == 0 and not isinstance(value, bool) and isinstance(value, int | float):
        return 0.0
    return timeout(name, value)


def seconds(name: str, value: object) -> float:
    """Return ``value`` as a positive finite float (None is refused)."""
    result = timeout(name, value, allow_none=False)
    assert result is not None
    return result


def non_negative(name: str, value: object) -> float:
    """Return ``value`` as a finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def integer(name: str, value: object, *, minimum: int) -> int:
    """Return ``value`` as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def port(value: object) -> int:
    """Return a TCP port number 0..65535."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"port must be an int, got {value!r}")
    if not 0 <= value <= 65535:
        raise ValueError(f"port must be in 0..65535, got {value!r}")
    return value


def host(value: object) -> str:
    """Return a non-empty host name or address."""
    if not isinstance(value, str):
        raise TypeError(f"host must be a str, got {value!r}")
    if not value.strip():
        raise ValueError(f"host must not be empty, got {value!r}")
    return value
