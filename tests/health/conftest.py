"""The ops fixtures (a migrated SQLite store with one account, settings) for health tests."""

from tests.ops.conftest import store  # noqa: F401
