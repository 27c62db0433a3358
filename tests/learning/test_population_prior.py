"""The population prior: what other accounts learnt centres a new account's fit (issue 16).

From the pure fit (a shared text effect is recovered from pooled posts), through the file (bad
ones refused with what to do), to the product's refit (``factored_posteriors`` with
``LEARNING_PRIOR_FILE``), ``xbot prior fit`` on a real store, and the loop benchmark's
``--prior``, whose effect on the loop's choices is shown here and measured in
benchmarks/README.md ("A prior from other accounts").
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.foundation.conftest import settings_env_names
from xbot_assets.content.vocabulary import DEFAULT_TOPICS, FORMATS
from xbot_assets.learning.account_policy import AccountHistory
from xbot_assets.learning.design import Design, PastPost
from xbot_assets.learning.factored import FitConfig, fit_factored
from xbot_assets.learning.population_prior import (
    PopulationPrior,
    PriorError,
    fit_population_prior,
    load_prior,
    save_prior,
)

START = datetime(2026, 1, 5, 9, tzinfo=UTC)
PER_HASHTAG = -0.3
"""The shared effect the synthetic accounts' readers have: each hashtag costs 26 % of the
engagement rate."""


def _metrics(rng: np.random.Generator, hashtags: int, nf_rate: float) -> dict[str, int]:
    lift = math.exp(PER_HASHTAG * hashtags)
    rates = {"likes": 0.03, "replies": 0.004, "reposts": 0.003, "bookmarks": 0.003,
             "quotes": 0.001, "profile_clicks": 0.004}  # fmt: skip
    out = {m: int(rng.poisson(1500 * r * lift)) for m, r in rates.items()}
    out.update(impressions=1500, negative_feedback=int(rng.poisson(1500 * nf_rate)), reports=0)
    out["follows"] = 0
    return out


def _account(seed: int, posts: int, *, hot_take_nf: float = 0.0004) -> AccountHistory:
    """An account whose posts alternate 0 and 2 hashtags (same length), final counts only."""
    rng = np.random.default_rng(seed)
    history = []
    for i in range(posts):
        tags = 2 * ((i // 4) % 2)  # every hour of the day with and without
        words = " ".join(f"w{k:03d}" for k in rng.choice(400, size=6, replace=False))
        text = f"{words} " + ("#ai #ml" if tags else "aa bb ok")
        fmt = ("single", "hot_take")[(i // 2) % 2]
        nf = hot_take_nf if fmt == "hot_take" else 0.0001
        at = START + timedelta(hours=6 * i)
        history.append(PastPost(at, fmt, "python", text, _metrics(rng, tags, nf), "72h"))
    return AccountHistory(f"acct{seed}", "UTC", history)


def _fit(accounts: list[AccountHistory], **kw: object) -> PopulationPrior:
    now = max(p.posted_at for a in accounts for p in a.history) + timedelta(days=4)
    return fit_population_prior(accounts, now=now, formats=FORMATS, topics=DEFAULT_TOPICS, **kw)  # type: ignore[arg-type]


def test_a_shared_text_effect_is_learnt_across_accounts() -> None:
    prior = _fit([_account(s, 120) for s in range(3)])
    assert set(prior.effect_means) == {
        "similarity", "near_duplicate", "length", "length_sq", "hashtags", "link", "number",
    }  # fmt: skip
    assert prior.effect_means["hashtags"] == pytest.approx(PER_HASHTAG, abs=0.06)
    assert prior.group_sd == {"text": 0.1}
    assert prior.source["posts"] == 360 and prior.source["accounts"] == 3
    assert not prior.negative_log_ratio and not prior.mix_share  # formats only when asked


def test_the_formats_negative_rates_come_with_formats() -> None:
    prior = _fit([_account(s, 120, hot_take_nf=0.0008) for s in range(2)], with_formats=True)
    ratio = prior.negative_log_ratio
    excess = ratio["negative_feedback:hot_take"] - ratio["negative_feedback:single"]
    assert excess == pytest.approx(math.log(8), abs=0.35)
    assert len(prior.mix_share["single"]) == 6 and sum(prior.mix_share["single"]) == pytest.approx(
        1, abs=1e-5
    )


def test_too_few_posts_or_an_unknown_group_is_refused() -> None:
    with pytest.raises(PriorError, match="needs at least 200"):
        _fit([_account(0, 40)])
    with pytest.raises(PriorError, match="unknown design groups"):
        _fit([_account(0, 40)], groups=["texts"])


def test_a_new_account_ranks_texts_by_the_prior_before_its_first_post() -> None:
    """The effect a new account gets: with no post of its own, the cold-start posterior ranks
    a hashtag-free text above the same text with two hashtags; the model's own prior cannot."""
    prior = _fit([_account(s, 120) for s in range(3)])
    now = START
    plain = "a tip on shipping python code fast ok"
    tagged = "a tip on shipping python code #ai #ml"
    assert len(plain) == len(tagged)

    def gap(config: FitConfig) -> float:
        posterior = fit_factored([], now=now, formats=FORMATS, topics=DEFAULT_TOPICS,
                                 config=config)  # fmt: skip
        design: Design = posterior.design
        rows = np.vstack([design.row("single", "python", now, [], t) for t in (plain, tagged)])
        values = posterior.value(rows, posterior.mean)
        return float(values[0] - values[1])

    assert gap(FitConfig()) == pytest.approx(0.0, abs=1e-9)
    assert gap(prior.fit_config(FitConfig())) > 0.0
    centred = fit_factored([], now=now, formats=FORMATS, topics=DEFAULT_TOPICS,
                           config=prior.fit_config(FitConfig()))  # fmt: skip
    index = centred.design.names.index("hashtags")
    assert centred.mean[index] == pytest.approx(prior.effect_means["hashtags"])


def test_explicit_settings_win_and_the_objective_must_match() -> None:
    prior = PopulationPrior("engagement", {"hashtags": -0.2, "number": 0.05}, {"text": 0.1})
    config = prior.fit_config(FitConfig(count_prior_mean={"number": 0.0}))
    assert config.count_prior_mean == {"hashtags": -0.2, "number": 0.0}
    assert config.count_prior_sd == {"text": 0.1}
    with pytest.raises(PriorError, match="LEARNING_OBJECTIVE=growth"):
        prior.fit_config(FitConfig(objective="growth"))


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "no such file"),
        ("{not json", "not readable JSON"),
        (json.dumps({"version": 99}), "not a version 1"),
        (json.dumps({"version": 1, "objective": "engagement"}), "malformed"),
        (
            json.dumps(
                {
                    "version": 1,
                    "objective": "engagement",
                    "effect_means": {"hashtags": "nan"},
                    "group_sd": {"text": 0.1},
                }
            ),
            "finite",
        ),
        (
            json.dumps(
                {
                    "version": 1,
                    "objective": "engagement",
                    "effect_means": {},
                    "group_sd": {"text": 0.0},
                }
            ),
            "spreads positive",
        ),
        (
            json.dumps(
                {
                    "version": 1,
                    "objective": "engagement",
                    "effect_means": {},
                    "group_sd": {},
                    "mix_share": {"single": [1.0]},
                }
            ),
            "6 shares",
        ),
    ],
)
def test_a_bad_prior_file_is_refused_with_what_to_do(
    tmp_path: Path, content: str | None, needle: str
) -> None:
    path = tmp_path / "prior.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PriorError, match=needle) as caught:
        load_prior(path)
    assert "xbot prior fit" in str(caught.value) and "LEARNING_PRIOR_FILE" in str(caught.value)


def test_a_prior_file_round_trips(tmp_path: Path) -> None:
    prior = _fit([_account(s, 120) for s in range(2)], with_formats=True)
    assert load_prior(save_prior(prior, tmp_path / "p" / "prior.json")) == prior


# --- the product's refit and the CLI -------------------------------------------------------


def _store_with_posts(home: Path, posts: int) -> None:
    """A migrated embedded store whose account posted ``posts`` roots with 72 h snapshots."""
    from xbot_assets.config import load_settings
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.migrate import upgrade
    from xbot_assets.store.durable.models import MetricSnapshot

    settings = load_settings(env_file=None, xbot_home=home, app_env="local")
    upgrade(settings.resolved_database_url)
    store = DurableStore.from_settings(settings)
    try:
        account = store.ensure_account(settings.x_handle, now=START)
        for past in _account(1, posts).history:
            post = store.enqueue_post(account.id, past.text, arm=f"{past.format}:{past.topic}",
                                      scheduled_at=past.posted_at, now=past.posted_at)  # fmt: skip
            claim = store.claim_next_due(account.id, now=past.posted_at)
            assert claim is not None
            store.mark_posted(post.id, x_id=str(post.id), attempt_id=claim.attempt_id,
                              now=past.posted_at)  # fmt: skip
            store.upsert_metrics(
                [MetricSnapshot(post.id, "72h", past.posted_at + timedelta(hours=72),
                                account_id=account.id, **past.metrics)]  # type: ignore[arg-type]
            )  # fmt: skip
    finally:
        store.close()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("XBOT_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


def test_xbot_prior_fit_writes_a_prior_from_the_store(cli_env: Path, tmp_path: Path) -> None:
    from xbot_assets.cli import app

    _store_with_posts(cli_env, 60)
    out = tmp_path / "prior.json"
    ran = CliRunner().invoke(app, ["prior", "fit", "--out", str(out), "--min-posts", "40"])
    assert ran.exit_code == 0, ran.output
    assert f"LEARNING_PRIOR_FILE={out}" in ran.stdout
    prior = load_prior(out)
    assert prior.source["posts"] == 60
    assert prior.effect_means["hashtags"] < -0.2  # ages from the newest post, not the wall


def test_xbot_prior_fit_takes_its_groups_spread_and_formats(cli_env: Path, tmp_path: Path) -> None:
    """``--groups``, ``--sd`` and ``--with-formats`` reach the file; an unknown group is refused
    with the groups to choose from, and nothing is written."""
    from xbot_assets.cli import app
    from xbot_assets.learning.design import Design

    _store_with_posts(cli_env, 60)
    out = tmp_path / "prior.json"
    argv = ["prior", "fit", "--out", str(out), "--min-posts", "40",
            "--groups", "text, time", "--sd", "0.2", "--with-formats"]  # fmt: skip
    ran = CliRunner().invoke(app, argv)
    assert ran.exit_code == 0, ran.output
    prior = load_prior(out)
    assert prior.group_sd == {"text": 0.2, "time": 0.2}
    design = Design(FORMATS, DEFAULT_TOPICS, "UTC")
    group_of = dict(zip(design.names, design.groups, strict=True))
    assert {group_of[name] for name in prior.effect_means} == {"text", "time"}
    assert prior.negative_log_ratio and prior.mix_share  # the formats' part
    plain = tmp_path / "plain.json"
    ran = CliRunner().invoke(app, ["prior", "fit", "--out", str(plain), "--min-posts", "40"])
    assert ran.exit_code == 0, ran.output
    assert not load_prior(plain).negative_log_ratio and not load_prior(plain).mix_share

    bad = tmp_path / "bad.json"
    ran = CliRunner().invoke(app, ["prior", "fit", "--out", str(bad), "--min-posts", "40",
                                   "--groups", "text,mood"])  # fmt: skip
    assert ran.exit_code == 2 and "unknown design groups ['mood']" in ran.stderr
    assert "text" in ran.stderr and not bad.exists()


def test_xbot_prior_fit_on_too_few_posts_says_what_to_do(cli_env: Path, tmp_path: Path) -> None:
    from xbot_assets.cli import app

    _store_with_posts(cli_env, 12)
    out = tmp_path / "prior.json"
    ran = CliRunner().invoke(app, ["prior", "fit", "--out", str(out)])
    assert ran.exit_code == 2 and "needs at least 200" in ran.stderr
    assert not out.exists()


def test_the_refit_asset_centres_on_the_prior_and_says_so(tmp_path: Path) -> None:
    """``factored_posteriors`` (the job's refit) reads LEARNING_PRIOR_FILE: its metadata names
    the prior, the saved posterior the policy loads is centred on it, and a bad file stops the
    refit with what to do."""
    import dagster as dg

    from xbot_assets.config import Settings, load_settings
    from xbot_assets.defs.learning import factored_posteriors, load_factored
    from xbot_assets.defs.resources import XbotRuntime, XbotSettings
    from xbot_assets.engine.decide import load_models

    prior = _fit([_account(s, 120) for s in range(3)])
    path = save_prior(prior, tmp_path / "prior.json")

    class WithPrior(XbotSettings):
        home: str
        prior_file: str

        def get(self) -> Settings:
            return load_settings(env_file=None, xbot_home=Path(self.home), app_env="local",
                                 learning_prior_file=self.prior_file)  # fmt: skip

    def materialize(prior_file: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [factored_posteriors],
            resources={
                "xbot_settings": WithPrior(home=str(tmp_path), prior_file=prior_file),
                "xbot_runtime": XbotRuntime(),
            },
            raise_on_error=False,
        )

    _store_with_posts(tmp_path, 0)
    result = materialize(str(path))
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert "population prior" in str(meta["prior"].value) and "prior.json" in str(
        meta["prior"].value
    )
    settings = WithPrior(home=str(tmp_path), prior_file=str(path)).get()
    posterior = load_factored(settings)
    index = posterior.design.names.index("hashtags")
    assert posterior.mean[index] == pytest.approx(prior.effect_means["hashtags"])
    # Before any refit, the posting path's cold-start models are centred on it too.
    cold = load_models(WithPrior(home=str(tmp_path / "fresh"), prior_file=str(path)).get())
    assert cold.posterior.mean[index] == pytest.approx(prior.effect_means["hashtags"])

    failed = materialize(str(tmp_path / "missing.json"))
    assert not failed.success
    failure = failed.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and "xbot prior fit" in failure.to_string()


def test_an_empty_prior_setting_is_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from xbot_assets.config import load_settings

    monkeypatch.setenv("LEARNING_PRIOR_FILE", "")
    assert load_settings(env_file=None, xbot_home=tmp_path).learning_prior_file is None


# --- the loop benchmark --------------------------------------------------------------------


def test_the_loop_benchmarks_prior_changes_ours_choices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``loop.py --prior``: the same code path as LEARNING_PRIOR_FILE changes which texts ours
    posts (the measured gain is in benchmarks/README.md); a bad file is refused; the prior's
    own script refuses the seeds the benchmark scores."""
    from benchmarks import loop, loop_population_prior

    prior = PopulationPrior("engagement", {"length": 1.5, "length_sq": -1.2, "hashtags": -0.5,
                                           "number": 0.3}, {"text": 0.05})  # fmt: skip
    path = save_prior(prior, tmp_path / "prior.json")
    job = ("default", 0, 3, ("ours",), False)
    without = loop.run_job(job)["policies"]["ours"]
    overrides = loop.prior_overrides(path, dict(loop.FIT_OVERRIDES))
    assert overrides["count_prior_mean"] == prior.effect_means
    assert overrides["count_prior_sd"] == {"text": 0.05}
    monkeypatch.setattr(loop, "FIT_OVERRIDES", overrides)
    with_prior = loop.run_job(job)["policies"]["ours"]
    assert with_prior["chosen_index"] != without["chosen_index"]
    assert with_prior["mean_expected_reward"] != without["mean_expected_reward"]
    with pytest.raises(SystemExit):
        loop.main(["--quick", "--prior", str(tmp_path / "missing.json")])
    # main applies the file after --fit, whose explicit settings win, and records both.
    monkeypatch.setattr(loop, "FIT_OVERRIDES", {})
    out = tmp_path / "loop.json"
    argv = ["--seeds", "1", "--days", "2", "--scenarios", "default", "--policies", "ours",
            "--processes", "1", "--no-plot", "--out", str(out),
            "--fit", 'count_prior_mean={"number": 0.0}', "--prior", str(path)]  # fmt: skip
    assert loop.main(argv) == 0
    results = json.loads(out.read_text())
    assert results["prior"] == str(path)
    assert results["fit_config"]["count_prior_mean"] == {**prior.effect_means, "number": 0.0}
    assert results["fit_config"]["count_prior_sd"] == {"text": 0.05}
    assert loop.FIT_OVERRIDES["count_prior_mean"]["number"] == 0.0
    with pytest.raises(SystemExit):
        loop_population_prior.main(["--seeds", "0-3", "--out", str(path)])


def test_the_count_model_starts_from_the_formats_negative_rates_and_mix() -> None:
    """A prior ``--with-formats``: before its first post a new account already expects the
    population's excess of negative feedback on a format, and its mix of positive metrics."""
    prior = PopulationPrior(
        "engagement", {}, {"text": 0.1},
        negative_log_ratio={"negative_feedback:hot_take": math.log(3.0)},
        mix_share={"question": [0.5, 0.0, 0.0, 0.0, 0.5, 0.0]},
    )  # fmt: skip
    plain = fit_factored([], now=START, formats=FORMATS, topics=DEFAULT_TOPICS)
    centred = fit_factored([], now=START, formats=FORMATS, topics=DEFAULT_TOPICS,
                           config=prior.fit_config(FitConfig()))  # fmt: skip

    def nf(posterior: object, fmt: str) -> float:
        names = posterior.names  # type: ignore[attr-defined]
        return float(posterior.mean[names.index(f"negative:negative_feedback:format={fmt}")])  # type: ignore[attr-defined]

    assert nf(plain, "hot_take") == pytest.approx(nf(plain, "single"))
    assert nf(centred, "hot_take") - nf(centred, "single") == pytest.approx(math.log(3.0))
    vpe = dict(zip(FORMATS, centred.extras["value_per_event"], strict=True))
    # replies and likes half each: 0.5 x 13.5 + 0.5 x 0.5 (REWARD_WEIGHTS), the rest unmoved
    assert vpe["question"] == pytest.approx(7.0)
    assert vpe["single"] == pytest.approx(
        dict(zip(FORMATS, plain.extras["value_per_event"], strict=True))["single"]
    )


def test_each_accounts_fit_says_it_starts_from_the_population_prior() -> None:
    from xbot_assets.learning.account_policy import fit_accounts

    prior = PopulationPrior("engagement", {"hashtags": -0.2}, {"text": 0.1})
    accounts = [_account(1, 40), _account(2, 4)]
    now = START + timedelta(days=20)
    for config, label, labels in (
        (FitConfig(), "default", {"acct1": "pooled effects", "acct2": "default"}),
        (
            prior.fit_config(FitConfig()),
            "population prior",
            {"acct1": "pooled effects, population prior", "acct2": "population prior"},
        ),
        # prior means set by hand (a benchmark's --fit) are not a population prior
        (prior.fit_config(FitConfig()), "default", {"acct1": "pooled effects", "acct2": "default"}),
    ):
        fit = fit_accounts(accounts, now=now, formats=FORMATS, topics=DEFAULT_TOPICS,
                           config=config, main_timezone="UTC", prior_label=label)  # fmt: skip
        assert {h: a.prior for h, a in fit.accounts.items()} == labels


def test_no_negative_events_gives_every_format_the_pooled_rate() -> None:
    """On real X the collector stores 0 negative feedback and reports: a prior fitted there must
    not invent format differences from the formats' exposure."""
    from dataclasses import replace

    accounts = [_account(s, 120) for s in range(2)]
    for account in accounts:
        account.history[:] = [
            replace(p, metrics={**(p.metrics or {}), "negative_feedback": 0, "reports": 0})
            for i, p in enumerate(account.history)
            if i % 3 or p.format == "single"
        ]
    prior = _fit(accounts, with_formats=True)
    assert prior.negative_log_ratio and all(v == 0 for v in prior.negative_log_ratio.values())


def test_posting_keeps_the_models_own_prior_when_the_file_is_bad(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The refit stops on a bad LEARNING_PRIOR_FILE (above); the posting path's cold-start
    models do not stop posting for it: they act on the model's own prior and log why."""
    from xbot_assets.config import load_settings
    from xbot_assets.engine.decide import load_models

    missing = tmp_path / "missing.json"
    settings = load_settings(env_file=None, xbot_home=tmp_path, app_env="local",
                             learning_prior_file=str(missing))  # fmt: skip
    with caplog.at_level("WARNING"):
        models = load_models(settings)
    index = models.posterior.design.names.index("hashtags")
    assert models.posterior.mean[index] == 0.0 and models.posterior.cold_start
    assert "acting on the model's own prior" in caplog.text and "xbot prior fit" in caplog.text


def test_the_posting_path_reads_the_prior_file_only_at_the_cold_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every refill loads the models: once a refit has saved a posterior (itself centred on the
    prior), the posting path acts on it and neither reads LEARNING_PRIOR_FILE nor builds the
    prior's fit; only a cold start does."""
    from xbot_assets.config import load_settings
    from xbot_assets.engine import decide
    from xbot_assets.learning import model_files, population_prior
    from xbot_assets.learning.horizon import HorizonModel

    path = save_prior(PopulationPrior("engagement", {"hashtags": -0.2}, {"text": 0.1}),
                      tmp_path / "prior.json")  # fmt: skip
    settings = load_settings(env_file=None, xbot_home=tmp_path, app_env="local",
                             learning_prior_file=str(path))  # fmt: skip
    reads: list[object] = []
    real_load = population_prior.load_prior

    def counted_load(p: object) -> PopulationPrior:
        reads.append(p)
        return real_load(p)  # type: ignore[arg-type]

    monkeypatch.setattr(population_prior, "load_prior", counted_load)
    cold = decide.load_models(settings)
    assert len(reads) == 1 and cold.posterior_file == "prior" and cold.posteriors_cold
    index = cold.posterior.design.names.index("hashtags")
    assert cold.posterior.mean[index] == pytest.approx(-0.2)

    saved = fit_factored(_account(1, 60).history,
                         now=START + timedelta(days=20), formats=FORMATS, topics=DEFAULT_TOPICS,
                         timezone="UTC")  # fmt: skip
    model_files.models_dir(settings).mkdir(parents=True, exist_ok=True)
    model_files.write_factored(model_files.factored_path(settings, "engagement"), saved,
                               HorizonModel())  # fmt: skip
    builds: list[object] = []
    monkeypatch.setattr(decide, "prior_models", lambda **kw: builds.append(kw))
    warm = decide.load_models(settings)
    assert len(reads) == 1 and builds == []
    assert warm.posterior_file == "factored_posteriors_engagement.json"
    assert not warm.posteriors_cold and warm.posterior.posts == saved.posts
    assert len(warm.arms) == len(FORMATS) * len(DEFAULT_TOPICS)
    assert warm.sampler.n_arms == len(warm.arms)


def test_the_model_load_benchmark_runs_and_loads_the_saved_posterior(tmp_path: Path) -> None:
    """``benchmarks/model_load.py`` (the refill's model load, saved posterior against the cold
    start) runs as a script and records the three paths it times."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "model_load.json"
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "model_load.py"), "--repeats", "2",
         "--out", str(out)],
        capture_output=True, text=True, timeout=240, cwd=root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["median_ms"]) == {"cold", "warm", "before"}
    assert all(v > 0 for v in result["median_ms"].values())
    assert result["posts_in_saved_posterior"] == 120
    refused = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "model_load.py"), "--repeats", "0",
         "--out", str(tmp_path / "none.json")],
        capture_output=True, text=True, timeout=240, cwd=root,
    )  # fmt: skip
    assert refused.returncode == 2 and "--repeats must be 1 or more" in refused.stderr
    assert not (tmp_path / "none.json").exists()


@pytest.mark.parametrize("with_cache", [False, True])
def test_a_refill_whose_own_file_is_pruned_as_it_loads_acts_on_the_file_it_falls_back_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_cache: bool
) -> None:
    """A refit prunes an account's own posterior when the account leaves the fit or the
    environment is back to one account. If that happens between the refill resolving the file
    and reading it, the refill acts on the file it now falls back to (here the main account's),
    not on the cold-start prior and not with a FileNotFoundError (which failed the run)."""
    from xbot_assets.config import load_settings
    from xbot_assets.engine import decide
    from xbot_assets.learning import model_files
    from xbot_assets.learning.horizon import HorizonModel
    from xbot_assets.store.hot.cache import HotCache
    from xbot_assets.store.hot.keys import KeySpace, connect_redis, scan_delete

    settings = load_settings(env_file=None, xbot_home=tmp_path, app_env="local",
                             x_handle="second")  # fmt: skip
    now = START + timedelta(days=20)
    main = fit_factored(_account(1, 60).history, now=now, formats=FORMATS,
                        topics=DEFAULT_TOPICS, timezone="UTC")  # fmt: skip
    own = fit_factored(_account(2, 30).history, now=now, formats=FORMATS,
                       topics=DEFAULT_TOPICS, timezone="UTC")  # fmt: skip
    model_files.write_factored(model_files.factored_path(settings, "engagement"), main,
                               HorizonModel())  # fmt: skip
    own_path = model_files.account_factored_path(settings, "engagement", "second")
    model_files.write_factored(own_path, own, HorizonModel())
    real_resolve = model_files.factored_file
    resolved: list[Path] = []

    def resolve_then_prune(s: object, objective: str) -> Path:
        path = real_resolve(s, objective)
        resolved.append(path)
        if len(resolved) == 1:
            own_path.unlink()  # the refit's prune, right after the refill resolved the file
        return path

    monkeypatch.setattr(model_files, "factored_file", resolve_then_prune)
    monkeypatch.setattr(decide, "prior_models", lambda **kw: pytest.fail("acted on the prior"))
    client = connect_redis("redis://127.0.0.1:6379/0") if with_cache else None
    space = KeySpace(f"test:prune:{tmp_path.name}:")
    try:  # with the hot path's cache (real Redis), as a refill reads it
        models = decide.load_models(settings, cache=HotCache(client, space) if client else None)
    finally:
        if client is not None:
            scan_delete(client, space)
            client.close()
    assert resolved == [own_path, model_files.factored_path(settings, "engagement")]
    assert models.posterior_file == "factored_posteriors_engagement.json"
    assert models.posterior.posts == main.posts != own.posts
