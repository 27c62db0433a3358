"""A fresh Postgres database per test (the ops fixture) for the ledger's locking test."""

from tests.ops.conftest import pg_database  # noqa: F401
