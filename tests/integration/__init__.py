"""Integration tests against the real PostgreSQL and Redis servers (tests/servers/)."""
