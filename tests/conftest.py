"""Fixtures shared across the test packages."""

# The throwaway PostgreSQL (a session fixture) for the storage tests.
pytest_plugins = ["tests.server.postgres"]
