"""The prune race in ``refill_candidates_job`` itself, run through Dagster: a refit prunes an
account's own posterior (the account left the fit, or the environment is back to one account)
just after the refill resolved that file. The run still succeeds, acts on the file it falls back
to (the main account's), and says so in its metadata; it never acts on the cold-start prior.
The function-level test, with and without the Redis cache, is in
tests/learning/test_population_prior.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.orchestration.conftest import Env, run_refill


def test_a_refill_run_whose_own_posterior_is_pruned_as_it_loads_acts_on_the_main_file(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.learning.test_population_prior import START, _account
    from xbot_assets.content.vocabulary import DEFAULT_TOPICS, FORMATS
    from xbot_assets.engine import decide
    from xbot_assets.learning import model_files
    from xbot_assets.learning.factored import fit_factored
    from xbot_assets.learning.horizon import HorizonModel

    settings = env.settings
    now = START + timedelta(days=20)

    def fitted(account: int, posts: int) -> object:
        return fit_factored(_account(account, posts).history, now=now, formats=FORMATS,
                            topics=DEFAULT_TOPICS, timezone="UTC")  # fmt: skip

    main = model_files.factored_path(settings, "engagement")
    model_files.write_factored(main, fitted(1, 60), HorizonModel())
    own = model_files.account_factored_path(settings, "engagement", settings.x_handle)
    model_files.write_factored(own, fitted(2, 30), HorizonModel())
    assert model_files.factored_file(settings, "engagement") == own

    real_resolve = model_files.factored_file
    resolved: list[Path] = []

    def resolve_then_prune(s: object, objective: str) -> Path:
        path = real_resolve(s, objective)
        resolved.append(path)
        if path == own:
            own.unlink()  # the refit's prune, right after the refill resolved the file
        return path

    monkeypatch.setattr(model_files, "factored_file", resolve_then_prune)
    monkeypatch.setattr(decide, "prior_models", lambda **kw: pytest.fail("acted on the prior"))
    _, metadata = run_refill(env, now, n_candidates=3)  # asserts the run succeeded

    assert resolved[:2] == [own, main]
    assert metadata["posterior_file"] == main.name
    assert metadata["queued_post_ids"], metadata  # it planned and queued the slots
