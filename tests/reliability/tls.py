"""TLS contexts for 127.0.0.1 from a certificate authority made at test time (trustme)."""

from __future__ import annotations

import functools
import ssl

import trustme

__all__ = ["client_context", "server_context"]


@functools.cache
def _ca() -> trustme.CA:
    return trustme.CA()


def server_context() -> ssl.SSLContext:
    """A server context with a certificate for ``127.0.0.1`` and ``localhost``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _ca().issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


def client_context() -> ssl.SSLContext:
    """A verifying client context that trusts the test CA."""
    ctx = ssl.create_default_context()
    _ca().configure_trust(ctx)
    return ctx
