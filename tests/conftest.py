"""Suite-wide isolation between tests that run in the same pytest-xdist worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_leaked_dagster_defs_state_storage() -> Iterator[None]:
    """Forget any Dagster defs-state storage a previous test left set in this thread.

    Dagster keeps the current instance's defs-state storage in a context variable that an
    instance sets on ``__enter__``; an ephemeral instance entered without a matching exit (inside
    some of Dagster's own result and context helpers) leaves it pointing at a garbage-collected
    instance, and the next ``materialize`` in the same worker then fails with "Attempted to
    resolve undefined DagsterInstance weakref". Tests must not depend on their order.
    """
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)
    yield
    _current_storage.set(None)
