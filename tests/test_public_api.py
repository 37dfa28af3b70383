"""The public API is exactly what ``__all__`` says, and every public name is documented."""

from __future__ import annotations

import inspect

import aioconn
import aioconn.testing


def test_all_names_exist_and_are_documented() -> None:
    for module in (aioconn, aioconn.testing):
        for name in module.__all__:
            value = getattr(module, name)
            if name.startswith("__") or not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            assert inspect.getdoc(value), f"{module.__name__}.{name} has no docstring"


def test_every_public_class_and_function_is_exported() -> None:
    for module in (aioconn, aioconn.testing):
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and getattr(value, "__module__", "").startswith("aioconn")
        }
        assert public <= set(module.__all__), public - set(module.__all__)
        assert sorted(module.__all__) == sorted(set(module.__all__))  # no duplicates


def test_errors_inherit_the_builtins_users_already_catch() -> None:
    assert issubclass(aioconn.ConnectError, ConnectionError)
    assert issubclass(aioconn.ConnectTimeout, TimeoutError)
    assert issubclass(aioconn.ConnectTimeout, aioconn.ConnectError)
    assert issubclass(aioconn.ReadTimeout, TimeoutError)
    assert issubclass(aioconn.WriteTimeout, TimeoutError)
    assert issubclass(aioconn.ConnectionClosed, ConnectionError)
    assert issubclass(aioconn.PoolTimeout, TimeoutError)
    assert issubclass(aioconn.PoolClosed, RuntimeError)
    for name in aioconn.__all__:
        value = getattr(aioconn, name)
        if (
            inspect.isclass(value)
            and issubclass(value, Exception)
            and not issubclass(value, Warning)
        ):
            assert issubclass(value, aioconn.Error), name
