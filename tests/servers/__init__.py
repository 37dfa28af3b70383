"""Real servers for the test session: PostgreSQL and Redis from their pip-installable wheels."""
