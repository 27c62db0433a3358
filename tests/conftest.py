"""Suite-wide checks between tests that run in the same pytest-xdist worker."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

# Where Dagster keeps the current instance's defs-state storage (a context variable).
_DEFS_STATE_MODULE = "dagster._core.storage.defs_state.base"


def _current_defs_state_storage() -> object | None:
    """The storage Dagster's context variable holds now; None if Dagster is not even loaded."""
    module = sys.modules.get(_DEFS_STATE_MODULE)
    return None if module is None else module._current_storage.get()


def _is_dangling(storage: object) -> bool:
    """Whether the storage's weakref to its DagsterInstance points at a collected instance."""
    instance_weakref = getattr(storage, "_instance_weakref", None)
    return instance_weakref is not None and instance_weakref() is None


@pytest.fixture(autouse=True)
def _dagster_instances_are_exited() -> Iterator[None]:
    """Fail the test that enters a DagsterInstance and never exits it.

    Entering an instance points Dagster's current defs-state storage at it; only the exit puts
    the previous value back. ``build_schedule_context(instance=<persistent instance>)`` used
    without ``with`` is such an entry: when the schedule reads its resources, the context opens
    its own ``DagsterInstance.from_ref(...)`` and enters it on an ExitStack that only the
    context's ``__exit__`` closes. Two such contexts collected in creation order leave the
    variable on the first one's collected instance, and the next ``materialize`` in this worker
    fails with "Attempted to resolve undefined DagsterInstance weakref", in an unrelated test.
    """
    before = _current_defs_state_storage()
    if before is not None and _is_dangling(before):
        pytest.fail(
            "Dagster's current defs-state storage points at a garbage-collected DagsterInstance "
            "before this test: an earlier test or a module/session fixture entered an instance "
            "(e.g. build_schedule_context(...) without `with`) and never exited it"
        )
    yield
    after = _current_defs_state_storage()
    if after is not None and after is not before:
        pytest.fail(
            "this test left a DagsterInstance entered (Dagster's current defs-state storage is "
            "still set): use build_schedule_context(...) / DagsterInstance.from_ref(...) / "
            "instance_for_test() as a context manager (`with ... as ...`)"
        )


def pytest_configure(config: pytest.Config) -> None:
    """Run the warm dbt server of this test session in a folder of its own, kept warm between
    main jobs.

    Set in the controller before pytest-xdist starts its workers, so every worker shares it;
    a user's own server (the default folder) is neither used nor stopped by the tests.
    """
    import os

    from xbot_assets.warehouse import dbt_warm

    if not hasattr(config, "workerinput"):
        os.environ[dbt_warm.DIR_ENV] = f"/tmp/xbot-dbt-tests-{os.getpid()}"
        # Every main job (``run_main``) stops the warm server when it ends; in the suite the
        # next one would pay dbt's import again. The session stops it once, at the end.
        os.environ.setdefault("XBOT_DBT_KEEP_WARM", "1")


def _starts_first(item: pytest.Item) -> bool:
    """Whether the item's file holds a long test or an expensive shared fixture (a main job)."""
    return any(item.iter_markers("slow")) or any(item.iter_markers("xdist_group"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the files with long tests first, so that on 2 workers (``make test``: ``--dist
    loadfile --no-loadscope-reorder``) the short files fill the end instead of one long file
    finishing alone. Whole files move, in their collection order; every worker sorts alike.

    Why ``loadfile`` and not ``loadgroup``: with pytest 9.2, xdist 3.8's ``loadgroup`` ignores
    ``xdist_group`` (pytest-xdist issue 1386: it renames node ids, which pytest 9.2 no longer
    reads), so a group's tests went to both workers and each set up the module's main job again.
    Every ``xdist_group`` here is one file (``tests/test_suite_layout.py``), so ``loadfile``
    keeps each group on one worker.
    """
    first = {item.path for item in items if _starts_first(item)}
    items.sort(key=lambda item: item.path not in first)  # stable: collection order otherwise


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the session's warm dbt server (after every worker is done) and remove its folder."""
    import os
    import shutil
    from pathlib import Path

    from xbot_assets.warehouse import dbt_warm

    folder = os.environ.get(dbt_warm.DIR_ENV, "")
    if hasattr(config, "workerinput") or not folder.startswith("/tmp/xbot-dbt-tests-"):
        return
    if Path(folder).exists():
        dbt_warm.stop_server(Path(folder))
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def no_quiet_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lift the accounts' quiet hours (23:00-07:00 local by default) for a test on the wall clock.

    Tests that post "now" on the real clock are about the poster, not about when to post; without
    this they find nothing due whenever CI runs at night. Quiet hours themselves are tested with
    fixed clocks in ``tests/posting/test_sendtime.py``.
    """
    import dataclasses

    from xbot_assets.posting import factory
    from xbot_assets.posting.ledger import PostingLedger, RateCaps
    from xbot_assets.posting.sendtime import SendRules

    real = factory.send_rules

    def daytime_rules(ledger: PostingLedger, account_id: int, caps: RateCaps) -> SendRules:
        rules = real(ledger, account_id, caps)
        return dataclasses.replace(rules, quiet_start_hour=0, quiet_end_hour=0)

    monkeypatch.setattr(factory, "send_rules", daytime_rules)
