"""Issue #22 in the loop: two accounts whose audiences like different topics, a few simulated
days through the real sensors, jobs and the posterior's automation (``xbot run``'s loop); each
account learns its own posterior in the one ``factored_posteriors`` run and decides with it.

The audiences: the scenario's own account (``default``: ai liked over startups, by 0.24 to 0.88
on the log scale across seeds 1..12) and ``second_acct``, whose audience is the scenario's
plus :data:`SECOND_OFFSETS`, so the two accounts' contrasts differ by 3 on every seed. The test
sets those offsets itself because ``audience_jitter`` alone draws them from the seed and the
handle: only on seeds 1, 2 and 7 of 1..12 did the draw make the second account prefer startups,
which is why the test held on seed 7 alone. The test reads the truth from the sandbox only to
state the precondition; no decision path reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.orchestration.conftest import Env, make_env, memory_folder, restore_env

pytestmark = [
    pytest.mark.xdist_group("orchestration_account_learning"),
    # a 4-day two-account main job, in memory: ~1.5 min idle, ~3 on a loaded host (on disk, 2x)
    pytest.mark.timeout(1800),
]

SECOND = "second_acct"
LIKED, DISLIKED = "startups", "ai"
"""The second account's audience prefers LIKED to DISLIKED; the main account's, the reverse."""
SECOND_OFFSETS = {LIKED: 1.5, DISLIKED: -1.5}
"""The second account's own topic offsets over the scenario's (log scale; its formats as the
scenario's). Seed 7's draw made the accounts differ by 1.8; ±1 (a difference of 2) still left
seed 1 learning a difference of only 0.34; with ±1.5 every seed tried learnt 1.34 or more."""


@dataclass
class TwoAccountRun:
    env: Env
    result: Any
    main: str


def _with_second_offsets(original: Any) -> Any:
    """``AudienceEngine.account_effects`` giving the second account :data:`SECOND_OFFSETS`
    (and every other account what it gave before)."""
    from xbot_assets.sandbox.scenario import ALL_TOPICS, FORMATS

    topics = np.array([SECOND_OFFSETS.get(topic, 0.0) for topic in ALL_TOPICS])
    formats = np.zeros(len(FORMATS))

    def account_effects(engine: Any, account: Any) -> tuple[np.ndarray, np.ndarray]:
        if account.handle == SECOND:
            return topics, formats
        return original(engine, account)

    return account_effects


@pytest.fixture(scope="module")
def two_accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoAccountRun]:
    from xbot_assets.engine.runtime import forget_sandboxes, shared_sandbox
    from xbot_assets.engine.sensing import forget_stores
    from xbot_assets.runner import run_main
    from xbot_assets.sandbox.audience import AudienceEngine
    from xbot_assets.store.durable import DurableStore

    with (
        memory_folder(tmp_path_factory, "account_learning") as folder,
        pytest.MonkeyPatch.context() as patch,
    ):
        made, saved = make_env(folder)
        try:
            patch.setattr(
                AudienceEngine,
                "account_effects",
                _with_second_offsets(AudienceEngine.account_effects),
            )
            sandbox = shared_sandbox(made.settings)
            main = sandbox.account()
            # any jitter > 0 makes its posts use its own offsets: SECOND_OFFSETS, above
            sandbox.add_account(SECOND, followers=main.initial_followers, audience_jitter=1.0)
            store = DurableStore.from_settings(made.settings)
            store.ensure_account(SECOND, timezone=sandbox.params.timezone)
            store.close()
            result = run_main(made.settings, days=4, posts_per_day=8, rebuild_every_hours=96,
                              progress=False)  # fmt: skip
            yield TwoAccountRun(made, result, main.handle)
        finally:
            forget_stores()
            forget_sandboxes()
            restore_env(saved)


def _truth_contrast(run: TwoAccountRun, handle: str) -> float:
    """The audience's true log-scale preference of LIKED over DISLIKED (evaluation only)."""
    from xbot_assets.engine.runtime import shared_sandbox
    from xbot_assets.sandbox.scenario import ALL_TOPICS

    sandbox = shared_sandbox(run.env.settings)
    own, _ = sandbox.audience.account_effects(sandbox.account(handle))
    effect = sandbox.params.topic_effect + own
    return float(effect[ALL_TOPICS.index(LIKED)] - effect[ALL_TOPICS.index(DISLIKED)])


def _posterior(run: TwoAccountRun, handle: str) -> Any:
    from xbot_assets.learning.model_files import load_factored

    return load_factored(run.env.settings.model_copy(update={"x_handle": handle}))


def _learnt_contrast(posterior: Any) -> float:
    """The posterior's preference of LIKED over DISLIKED: mean topic effects (log scale)."""
    effects = posterior.effects()
    return float(effects[f"topic={LIKED}"]["mean"] - effects[f"topic={DISLIKED}"]["mean"])


def test_each_account_learns_its_own_audiences_preference(two_accounts: TwoAccountRun) -> None:
    """The second account's posterior prefers startups over ai by more than the main account's
    does, and prefers it outright.

    Learnt contrasts (second, main) on seeds 1 to 5 and 7: (+1.38, +0.03), (+1.75, +0.31),
    (+1.69, -0.32), (+1.95, -0.24), (+0.97, -0.78), (+1.21, -0.75): differences of 1.34 to
    2.19. Accounts sharing one posterior learn a difference of 0 (checked). The main account's
    own sign is not asserted: four days leave its smaller preference (-0.24 to -0.88) within
    noise of zero, and on seeds 1 and 2 above zero; the old test asserted it."""
    run = two_accounts
    truth_mine, truth_theirs = _truth_contrast(run, SECOND), _truth_contrast(run, run.main)
    assert truth_mine - truth_theirs == pytest.approx(3.0) and truth_mine > 0 > truth_theirs
    mine, theirs = _posterior(run, SECOND), _posterior(run, run.main)
    assert not mine.cold_start and not theirs.cold_start
    learnt_mine, learnt_theirs = _learnt_contrast(mine), _learnt_contrast(theirs)
    # shared posteriors would learn one contrast (a difference of 0)
    assert learnt_mine > learnt_theirs + 0.5, (learnt_mine, learnt_theirs)
    assert learnt_mine > 0, (learnt_mine, learnt_theirs)


def test_one_refit_writes_every_accounts_posterior(two_accounts: TwoAccountRun) -> None:
    import dagster as dg

    from xbot_assets.learning.model_files import account_factored_path

    instance = dg.DagsterInstance.get()
    (record,) = instance.fetch_materializations(dg.AssetKey("factored_posteriors"), limit=1).records
    meta: dict[str, Any] = {
        k: v.value
        for k, v in record.asset_materialization.metadata.items()  # type: ignore[union-attr]
    }
    per_account: dict[str, Any] = meta["per_account"]
    assert set(per_account) == {two_accounts.main, SECOND}
    for handle, info in per_account.items():
        assert info["acting_on"] == "own" and info["prior"] == "pooled effects"
        assert info["own_posts"] >= 10 and not info["cold_start"]
        settings = two_accounts.env.settings
        assert info["file"] == account_factored_path(settings, "engagement", handle).name
    assert meta["accounts"] == 2 and meta["cold_start_accounts"] == ""
    assert meta["pooled_posts"] == sum(i["own_posts"] for i in per_account.values())


def test_each_accounts_refill_decides_with_its_own_file(two_accounts: TwoAccountRun) -> None:
    """Every post queued after the first per-account refit names the account's own file; the
    second account's early posts (fewer than 10 own posts) used the pooled fit."""
    from xbot_assets.engine.sensing import cached_store

    store = cached_store(two_accounts.env.settings)
    used: dict[str, list[str]] = {}
    for account in store.list_accounts():
        posts = sorted(store.list_posts(account.id, limit=1000), key=lambda p: p.id)
        files = [str((p.metadata or {}).get("settings", {}).get("posterior_file")) for p in posts
                 if p.thread_position == 0]  # fmt: skip
        used[account.handle] = files
    for handle, files in used.items():
        own = f"accounts/factored_posteriors_engagement_{handle}.json"
        assert own in files, (handle, sorted(set(files)))
        first = files.index(own)
        assert set(files[first:]) == {own}, (handle, files[first:])  # never another's after
        assert not any(f.startswith("accounts/") and f != own for f in files)


def test_the_accounts_posted_apart(two_accounts: TwoAccountRun) -> None:
    """Sanity of the setting: both accounts posted through their own partitions."""
    from xbot_assets.engine.sensing import cached_store

    store = cached_store(two_accounts.env.settings)
    counts = {a.handle: len(store.list_posts(a.id, status="posted", limit=1000))
              for a in store.list_accounts()}  # fmt: skip
    assert set(counts) == {two_accounts.main, SECOND} and min(counts.values()) >= 20, counts
    assert np.isfinite(list(counts.values())).all()
