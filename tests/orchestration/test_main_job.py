"""The main job in short form: the whole loop through the real definitions, checked against the
store; two accounts side by side with their data apart; the Dagster UI shows what it made."""

from __future__ import annotations

from typing import Any

import pytest

from tests.orchestration.conftest import MainRun
from xbot_assets.learning.rewards import engagement_reward
from xbot_assets.report import summary_lines

pytestmark = pytest.mark.xdist_group("orchestration_main_job")

HORIZONS = ("1h", "6h", "24h", "72h")


def _store(run: MainRun):
    from xbot_assets.engine.sensing import cached_store

    return cached_store(run.env.settings)


def test_the_policys_posterior_refits_every_four_simulated_hours(main_run: MainRun) -> None:
    """issue 16: the factored posterior refits from the store at its own 4-hourly cron inside the
    main job, as in a deployment and in benchmarks/loop.py; it failed when the main job
    evaluated automation only after a 48 h warehouse rebuild (one refit in 1.5 days)."""
    from datetime import timedelta

    import dagster as dg

    from xbot_assets.defs.learning import FACTORED_CRON
    from xbot_assets.runner import STORE_FED_CRON

    assert STORE_FED_CRON == FACTORED_CRON
    result = main_run.result
    instance = dg.DagsterInstance.get()
    records = instance.fetch_materializations(
        dg.AssetKey("factored_posteriors"), limit=1000
    ).records
    windows = (result.ended_at - result.started_at) / timedelta(hours=4)
    assert len(records) >= windows - 2, (len(records), windows)


def test_the_policys_posterior_is_fitted_on_simulated_time(main_run: MainRun) -> None:
    """issue 16: the automation-launched refit ran on the wall clock (only engine jobs got the
    simulated clock), so every post looked months old, its evidence was discounted away and the
    real loop acted on the prior: bot = random in three 30-day runs while the benchmark learned."""
    import json
    from datetime import datetime

    from xbot_assets.learning.model_files import factored_path

    saved = json.loads(factored_path(main_run.env.settings, "engagement").read_text())
    fitted_at = datetime.fromisoformat(saved["fitted_at"])
    result = main_run.result
    assert result.started_at <= fitted_at <= result.ended_at, fitted_at
    assert saved["posts"] > 0 and not saved["cold_start"]
    # The loop's policy is the count model (learning/counts.py), fitted on the store's counts.
    assert saved["kind"] == "counts"
    assert saved["components"]["positive"]["mean_events_per_post"] > 0


def test_main_job_summary_matches_the_store(main_run: MainRun) -> None:
    result, summary = main_run.result, main_run.result.summary
    store = _store(main_run)
    assert not result.failed_runs
    # Every stage ran as real Dagster runs, launched from the sensors and schedules.
    for job in (
        "refill_candidates_job",
        "post_job",
        "collect_account_metrics_job",
        "tweet_metrics_job",
        "rebuild_warehouse_and_learning_job",
    ):
        assert result.runs_by_job.get(job, 0) >= 1, job
    for asset in ("fct_post_outcomes", "engagement_scorer", "arm_posteriors", "learned_config"):
        assert asset in result.materialized

    posted_by_account: dict[str, list] = {}
    for account in store.list_accounts():
        posts = [
            p
            for p in store.list_posts(account.id, status="posted", limit=1000)
            if p.thread_position == 0
        ]
        posted_by_account[account.handle] = posts
    assert summary["posts_by_account"] == {h: len(p) for h, p in posted_by_account.items()}
    assert summary["posts"] == sum(len(p) for p in posted_by_account.values()) > 0

    # The bot's reward is the mean over the primary account's latest snapshots in the store.
    primary = posted_by_account[main_run.env.settings.x_handle]
    rewards = []
    for post in sorted(primary, key=lambda p: (p.posted_at, p.id)):
        snaps = store.get_metrics(post.id)
        if snaps:
            latest = max(snaps, key=lambda s: HORIZONS.index(s.horizon))
            rewards.append(
                engagement_reward({k: getattr(latest, k) for k in latest.__dataclass_fields__})
            )
    assert rewards, "metrics were collected"
    assert summary["bot_rewards"] == pytest.approx(rewards)
    assert summary["bot_mean_reward"] == pytest.approx(sum(rewards) / len(rewards))
    assert len(summary["random_rewards"]) == len(rewards)
    # Every chosen post carries what offline evaluation needs.
    for post in primary:
        assert post.arm and 0 < post.metadata["propensity"] <= 1
        assert post.arm in post.metadata["sampled_values"]
    # The report is one HTML file with the plots embedded.
    with open(result.report_path, encoding="utf-8") as handle:
        html = handle.read()
    assert html.count("data:image/png;base64,") >= 3
    assert "bot - random (paired)" in html
    assert "Expected reward" in html and "noisy" in html


def test_report_scores_the_bot_by_the_sandbox_truth_against_a_paired_random_replay(
    main_run: MainRun,
) -> None:
    from xbot_assets.engine.runtime import shared_sandbox
    from xbot_assets.learning.rewards import REWARD_WEIGHTS

    summary, store = main_run.result.summary, _store(main_run)
    sandbox = shared_sandbox(main_run.env.settings)
    account = store.get_account_by_handle(main_run.env.settings.x_handle)
    posted = sorted(
        (
            p
            for p in store.list_posts(account.id, status="posted", limit=1000)
            if p.thread_position == 0
        ),
        key=lambda p: (p.posted_at, p.id),
    )
    truth = [sandbox.expected_reward(p.x_id, REWARD_WEIGHTS) for p in posted]
    assert summary["bot_expected"] == pytest.approx(truth) and len(truth) >= 2
    assert summary["expected_reward"]["bot"] == pytest.approx(sum(truth) / len(truth))
    # The random replay posts once at each of the bot's times: the pairs line up.
    assert len(summary["random_expected"]) == len(truth)
    pair = summary["vs_random"]
    diffs = [b - r for b, r in zip(truth, summary["random_expected"], strict=True)]
    assert pair["n"] == len(truth) and pair["diff"] == pytest.approx(sum(diffs) / len(diffs))
    assert pair["low"] < pair["diff"] < pair["high"]
    assert pair["lift_low"] < pair["lift"] < pair["lift_high"]
    lines = "\n".join(summary_lines(main_run.result))
    assert "sandbox truth" in lines and "95% CI" in lines and "noisy" in lines


def test_posts_go_out_at_their_slot_minute_never_in_quiet_hours(main_run: MainRun) -> None:
    from zoneinfo import ZoneInfo

    store = _store(main_run)
    for account in store.list_accounts():
        tz = ZoneInfo(account.timezone)
        posted = [
            p
            for p in store.list_posts(account.id, status="posted", limit=1000)
            if p.thread_position == 0
        ]
        assert posted
        for post in posted:
            late = (post.posted_at - post.scheduled_at).total_seconds()
            assert 0 <= late < 60, (post.id, post.scheduled_at, post.posted_at)
            hour = post.posted_at.astimezone(tz).hour
            assert not (hour >= 23 or hour < 7), (post.id, post.posted_at)


def test_sensor_and_schedule_ticks_and_cursors_are_in_the_instance(main_run: MainRun) -> None:
    import dagster as dg

    from xbot_assets.instigation import TickRecorder

    instance = dg.DagsterInstance.get()
    recorder = TickRecorder(instance)
    posting = recorder.ticks("posting_sensor")
    assert posting and recorder.cursor("posting_sensor")
    post_runs = {
        r.run_id
        for r in instance.get_runs(filters=dg.RunsFilter(job_name="post_job"))
        if r.tags.get("dagster/sensor_name") == "posting_sensor"
    }
    ticked = {run_id for t in posting for run_id in t.run_ids}
    assert post_runs and ticked == post_runs, "every posting run shows on a posting_sensor tick"
    assert any(t.skip_reason for t in posting), "skipped ticks say why"
    assert recorder.ticks("collect_account_metrics_schedule")
    for run in instance.get_runs(limit=50):
        day = run.tags.get("xbot/simulated_day")
        assert day and run.tags["xbot/simulated_now"].startswith(day)


def test_two_accounts_post_side_by_side_with_their_data_apart(main_run: MainRun) -> None:
    from xbot_assets.engine.runtime import shared_sandbox

    store = _store(main_run)
    sandbox = shared_sandbox(main_run.env.settings)
    handles = {main_run.env.settings.x_handle, main_run.second_handle}
    assert {a.handle for a in store.list_accounts()} == handles
    seen_x_ids: set[str] = set()
    for handle in handles:
        account = store.get_account_by_handle(handle)
        posts = store.list_posts(account.id, status="posted", limit=1000)
        assert posts, f"@{handle} posted"
        on_x = {p.id: p.text for p in sandbox.posts_of(handle)}
        for post in posts:
            assert on_x.get(post.x_id) == post.text, "each post went to its own account"
            assert post.account_id == account.id
        x_ids = {p.x_id for p in posts}
        assert not x_ids & seen_x_ids
        seen_x_ids |= x_ids
        # Metrics and candidates stay with their account.
        for snap in store.list_metrics(account_id=account.id):
            assert store.get_post(snap.tweet_id).account_id == account.id
        assert all(c.account_id == account.id for c in store.list_candidates(account.id))
    # Runs were per account partition, tagged with the account.
    import dagster as dg

    instance = dg.DagsterInstance.get()
    for handle in handles:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"xbot/account": handle}))
        assert any(r.job_name == "post_job" for r in runs)
        assert all(r.tags.get("dagster/partition") == handle for r in runs)


def _utc(value: Any) -> Any:
    from datetime import UTC, datetime

    if value is None:
        return None
    if isinstance(value, str):  # SQLite may hand back text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


ENGINE_TIME_COLUMNS = {
    "tweets": ("created_at", "updated_at", "scheduled_at", "posting_started_at", "posted_at"),
    "post_attempts": ("started_at", "finished_at"),
    "candidates": ("created_at",),
    "tweet_metrics": ("collected_at",),
}
"""What the engine's runs write (posting, refill, metrics): simulated times only."""


def test_main_job_writes_simulated_times_and_an_incremental_load_matches_the_store(
    main_run: MainRun, tmp_path: Any
) -> None:
    import shutil
    from datetime import timedelta

    import duckdb
    import sqlalchemy as sa

    from xbot_assets.store.durable import schema as s
    from xbot_assets.warehouse import load

    store = _store(main_run)
    result = main_run.result
    # Slots are planned at most a day ahead of the simulated now.
    low, high = result.started_at - timedelta(hours=1), result.ended_at + timedelta(days=1)
    outside = []
    with store.engine.connect() as conn:
        for name, columns in ENGINE_TIME_COLUMNS.items():
            table = s.metadata.tables[name]
            rows = conn.execute(sa.select(table.c.id, *(table.c[c] for c in columns))).all()
            assert rows, f"the main job wrote no {name} rows"
            for row in rows:
                for column in columns:
                    when = _utc(getattr(row, column))
                    if when is not None and not low <= when <= high:
                        outside.append((name, column, row.id, when))
    assert not outside, f"wall-clock stamps in the main job: {outside[:10]}"

    # The warehouse as the last rebuild left it, then one incremental raw load (what the next
    # rebuild does): posts and candidates then equal the store, row for row.
    source = main_run.env.settings.resolved_warehouse_path
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(source, copy)
    if source.with_name(source.name + ".wal").exists():
        shutil.copy(source.with_name(source.name + ".wal"), copy.with_name(copy.name + ".wal"))
    con = duckdb.connect(str(copy))
    try:
        assert load.raw_counts(con, "posts") > 0, "the main job's rebuild loaded raw.posts"
        assert load.load_posts(store, con, full=False).source.startswith("changed since")
        load.load_candidates(store, con, full=False)
        t, c = s.tweets, s.candidates
        with store.engine.connect() as conn:
            in_store = {
                int(r.id): (r.status, r.x_id, _utc(r.updated_at), _utc(r.posted_at))
                for r in conn.execute(
                    sa.select(t.c.id, t.c.status, t.c.x_id, t.c.updated_at, t.c.posted_at)
                )
            }
            candidates = {
                int(r.id): (bool(r.chosen), r.tweet_id)
                for r in conn.execute(sa.select(c.c.id, c.c.chosen, c.c.tweet_id))
            }
        raw = con.execute("select post_id, status, x_post_id, updated_at, posted_at from raw.posts")
        in_warehouse = {int(r[0]): (r[1], r[2], _utc(r[3]), _utc(r[4])) for r in raw.fetchall()}
        assert in_warehouse == in_store
        raw_c = con.execute("select candidate_id, chosen, post_id from raw.candidates").fetchall()
        assert {int(r[0]): (bool(r[1]), r[2]) for r in raw_c} == candidates
    finally:
        con.close()


def _wait_for_count(page: Any, text: str, at_least: int, timeout_s: float = 120) -> None:
    """Wait until ``text`` shows at least ``at_least`` times (status rows load one by one)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        body = page.inner_text("body")
        if body.count(text) >= at_least:
            return
        assert time.monotonic() < deadline, (
            f"{text!r} shown {body.count(text)} times: {body[:1500]}"
        )
        time.sleep(1)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.browser
def test_dagster_ui_shows_the_assets_and_their_latest_materialisations(
    main_run: MainRun,
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import dagster as dg
    import httpx
    from playwright.sync_api import sync_playwright

    root = Path(__file__).resolve().parents[2]
    artifacts = root / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    chromium = Path("/usr/bin/chromium")
    assert chromium.exists(), "Debian's Chromium is missing: run `make chromium`"
    instance = dg.DagsterInstance.get()
    for name in ("arm_posteriors", "engagement_scorer", "fct_post_outcomes"):
        assert instance.get_latest_materialization_event(dg.AssetKey(name)) is not None
    port = _free_port()
    log = open(main_run.env.root / "webserver.log", "wb")  # noqa: SIM115 (closed in finally)
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(root / "workspace.yaml"),
        ],
        cwd=root,
        env={**os.environ, "DO_NOT_TRACK": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (main_run.env.root / "webserver.log").read_text()[-2000:]
            try:
                if httpx.get(f"{base}/server_info", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the Dagster webserver did not start in 240 s"
            time.sleep(1)
        httpx.post(f"{base}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=30)
        args = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ]  # fmt: skip
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), args=args)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # The asset graph around the posteriors: every node with its latest materialisation.
            page.goto(f"{base}/assets/arm_posteriors?view=lineage&lineageDepth=3", timeout=120_000)
            for name in (
                "arm_posteriors",
                "fct_post_outcomes",
                "stg_tweet_metrics",
                "learned_config",
            ):
                page.get_by_text(name, exact=True).first.wait_for(timeout=180_000)
            page.get_by_text("Materialized", exact=True).first.wait_for(timeout=60_000)
            _wait_for_count(page, "Materialized", 4)
            page.screenshot(path=str(artifacts / "dagster_asset_graph.png"), full_page=True)
            # The catalog: the project's assets, each materialised.
            page.goto(f"{base}/assets", timeout=120_000)
            for name in ("engagement_scorer", "arm_posteriors", "daily_summaries", "fct_posts"):
                page.get_by_text(name, exact=True).first.wait_for(timeout=120_000)
            _wait_for_count(page, "Materialized", 4)
            page.screenshot(path=str(artifacts / "dagster_asset_catalog.png"), full_page=True)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    assert (artifacts / "dagster_asset_graph.png").stat().st_size > 10_000


def test_every_materialisation_carries_its_simulated_time_and_day(main_run: MainRun) -> None:
    """issue 20: Dagster stamps materialisations with the wall clock (1.5 simulated days in a
    few minutes); each carries its run's simulated moment and a tag of its simulated day, and
    the lab's history is over simulated time."""
    from datetime import UTC, datetime

    import dagster as dg

    from xbot_assets.defs.simtime import SIMULATED_DAY_TAG, SIMULATED_NOW_TAG, SIMULATED_TIME_KEY
    from xbot_assets.lab import Lab

    result = main_run.result
    instance = dg.DagsterInstance.get()
    days: set[str] = set()
    seen = 0
    for name in result.materialized:
        records = instance.fetch_materializations(
            dg.AssetKey.from_user_string(name), limit=1000
        ).records
        for record in records:
            found = record.asset_materialization
            assert found is not None and found.tags is not None
            assert SIMULATED_TIME_KEY in found.metadata, (name, record.run_id)
            stamp = found.metadata[SIMULATED_TIME_KEY]
            assert isinstance(stamp, dg.TimestampMetadataValue), (name, stamp)
            when = datetime.fromtimestamp(stamp.value, UTC)
            run = instance.get_run_by_id(record.run_id)
            assert run is not None
            assert when == datetime.fromisoformat(run.tags[SIMULATED_NOW_TAG]), name
            assert result.started_at <= when <= result.ended_at, (name, when)
            assert found.tags[SIMULATED_DAY_TAG] == when.date().isoformat(), name
            days.add(found.tags[SIMULATED_DAY_TAG])
            seen += 1
    assert seen >= len(result.materialized) and len(days) >= 2
    # dbt's models too (their events come from dbt's stream, not a MaterializeResult).
    assert "fct_post_outcomes" in result.materialized and "stg_tweet_metrics" in result.materialized
    history = Lab(main_run.env.settings, _instance=instance).metadata_history("factored_posteriors")
    assert history.index.is_monotonic_increasing and len(history) >= 3
    spread = history.index.max() - history.index.min()
    wall = history["wall_time"].max() - history["wall_time"].min()
    assert spread.total_seconds() >= 12 * 3600 > wall.total_seconds(), (spread, wall)
    assert history["simulated_day"].nunique() >= 2


def test_a_second_run_continues_exactly_where_the_first_stopped_and_status_is_healthy(
    main_run: MainRun,
) -> None:
    """Runs before the catalog's browser tests (their Playwright loop stays open for the
    module, and a main job cannot start inside it); it moves the run on a few simulated hours."""
    from datetime import timedelta

    from xbot_assets.cli import _health_context
    from xbot_assets.ops.status import collect_status, local_clock
    from xbot_assets.runner import run_main

    first = main_run.result
    assert first.ended_at - first.started_at == timedelta(days=1.5)
    settings = main_run.env.settings
    ctx = _health_context(settings)
    try:
        clock = local_clock(settings, ctx.engine)
        assert clock is not None  # the sandbox ran on this store: its simulated clock
        ctx.clock = clock
        status = collect_status(ctx)
    finally:
        ctx.close()
    checks = {c["name"]: c for c in status["health"]["checks"]}
    assert checks["last_post"]["status"] == "ok", checks["last_post"]
    assert status["checked_at"] == first.ended_at.isoformat()
    store = _store(main_run)
    before = {p.id for a in store.list_accounts() for p in store.list_posts(a.id, limit=1000)}
    second = run_main(settings, days=0.25, posts_per_day=3, rebuild_every_hours=24, progress=False)
    assert second.started_at == first.ended_at
    assert second.started_at is not None and second.ended_at is not None
    assert second.ended_at - second.started_at == timedelta(days=0.25)
    assert second.deduplicated == 0 and not second.failed_runs
    for account in store.list_accounts():
        for post in store.list_posts(account.id, status="posted", limit=1000):
            if post.id not in before and post.thread_position == 0:
                assert post.posted_at is not None
                assert first.ended_at < post.posted_at <= second.ended_at


# --- the catalog as an operator meets it (issue 20): one webserver, one browser, five pages ---

UI_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def dagster_ui(main_run: MainRun) -> Any:
    """``dagster-webserver`` on a free loopback port over the main job's DAGSTER_HOME, the
    community pop-up dismissed (``setNuxSeen``), and one Chromium page (Debian's)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx
    from playwright.sync_api import sync_playwright

    chromium = Path("/usr/bin/chromium")
    assert chromium.exists(), "Debian's Chromium is missing: apt-get install -y chromium"
    root = Path(__file__).resolve().parents[2]
    port = _free_port()
    log_path = main_run.env.root / "catalog_webserver.log"
    log = open(log_path, "wb")  # noqa: SIM115 (closed in finally)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1",
         "-p", str(port), "-w", str(root / "workspace.yaml")],
        cwd=root,
        env={**os.environ, "DO_NOT_TRACK": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, log_path.read_text()[-2000:]
            try:
                if httpx.get(f"{base}/server_info", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the Dagster webserver did not start in 240 s"
            time.sleep(1)
        nux = httpx.post(f"{base}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=60)
        assert nux.status_code == 200 and "errors" not in nux.json(), nux.text
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), args=UI_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(120_000)
            yield base, page
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    # The location is named once (workspace.yaml and [tool.dg]): no mismatch warnings.
    assert "does not match the name" not in log_path.read_text()


def _artifact(name: str) -> str:
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return str(folder / name)


@pytest.mark.browser
def test_catalog_pages_show_descriptions_plots_and_runs(dagster_ui: Any) -> None:
    """The asset graph, the scorer's and the posteriors' descriptions, the posting sensor's
    page (its description) and the runs page, in Chromium."""
    base, page = dagster_ui
    # The asset graph around the posteriors (the lineage view the UI test above also opens).
    page.goto(f"{base}/assets/arm_posteriors?view=lineage&lineageDepth=3")
    for name in ("arm_posteriors", "fct_post_outcomes", "learned_config"):
        page.get_by_text(name, exact=True).first.wait_for(timeout=180_000)
    page.screenshot(path=_artifact("catalog_asset_graph.png"))

    # The scorer: its description, and its plot. The `plots` metadata is a Markdown PNG (a
    # data: URI); the UI puts a long Markdown value behind "[Show Markdown]" and renders the
    # image in that dialog. A 1.5-day run is a cold start (40 labelled posts are needed), so the
    # image is the cold-start one; tests/learning/test_assets.py checks the trained ROC PNG.
    page.goto(f"{base}/assets/engagement_scorer")
    page.get_by_text("Will a post beat the account's rolling median reward?").first.wait_for()
    page.get_by_text("xbot/simulated_time", exact=True).first.wait_for()
    page.get_by_text("[Show Markdown]").first.wait_for()
    page.screenshot(path=_artifact("catalog_scorer.png"), full_page=True)
    row = page.locator("tr", has=page.get_by_text("plots", exact=True))
    row.get_by_text("[Show Markdown]").first.click()
    plot = page.get_by_role("dialog").locator("img[src^='data:image/png;base64,']").first
    plot.wait_for()
    assert "labelled posts" in (plot.get_attribute("alt") or "")
    width, height = plot.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert width >= 400 and height >= 100, (width, height)  # a decoded PNG, not a broken icon
    page.screenshot(path=_artifact("catalog_scorer_plot.png"))
    page.keyboard.press("Escape")

    # The posteriors: described (owners and kinds are checked on the definitions, not here).
    page.goto(f"{base}/assets/arm_posteriors")
    page.get_by_text("What each format x topic earns").first.wait_for()
    page.screenshot(path=_artifact("catalog_posteriors.png"), full_page=True)

    # The posting sensor's page in the location named `xbot`: its description.
    page.goto(f"{base}/locations/xbot/sensors/posting_sensor")
    page.get_by_text("a queued post is due, so run post_job").first.wait_for()
    page.screenshot(path=_artifact("catalog_posting_sensor.png"), full_page=True)

    # The runs page: the main job's post runs are there.
    page.goto(f"{base}/runs")
    page.get_by_text("post_job").first.wait_for()
    page.screenshot(path=_artifact("catalog_runs.png"), full_page=True)


@pytest.mark.browser
def test_posting_sensor_page_shows_the_main_jobs_ticks(dagster_ui: Any) -> None:
    """The sensor's page agrees with the runs page: the ticks that launched post_job runs."""
    base, page = dagster_ui
    page.goto(f"{base}/locations/xbot/sensors/posting_sensor")
    page.get_by_text("a queued post is due, so run post_job").first.wait_for()
    body = page.inner_text("body")
    assert "Sensor has never run" not in body
    page.get_by_text("post:").first.wait_for(timeout=30_000)  # a run key requested by a tick
    page.screenshot(path=_artifact("catalog_posting_sensor_ticks.png"), full_page=True)


def test_every_component_reports_in_system_health(main_run: MainRun) -> None:
    """After a short main job, the poster, the collector, the learning assets and every sensor
    of the loop have a system_health row, and the X API gate counted every call the run made
    at the sandbox (reads and writes)."""
    from xbot_assets.engine.runtime import shared_sandbox
    from xbot_assets.ops.component_health import component_health
    from xbot_assets.store.budget import XApiCaps, XApiUsageLedger

    store = _store(main_run)
    start, end = main_run.result.started_at, main_run.result.ended_at
    assert start is not None and end is not None
    health = component_health(store.engine, environment="local", now=end)
    expected = {
        "poster",
        "metrics_collector",
        "learning:engagement_scorer",
        "learning:arm_posteriors",
        "learning:factored_posteriors",
        "learning:offline_policy_evaluation",
        "learning:learned_config",
        "sensor:accounts_sensor",
        "sensor:candidate_refill_sensor",
        "sensor:posting_sensor",
        "sensor:reconcile_sensor",
        "sensor:sync_to_supabase_sensor",
        "sensor:learning_rebuild_sensor",
    }
    assert expected <= set(health), sorted(expected - set(health))
    assert health["poster"].last_success is not None
    assert health["metrics_collector"].lag_s is not None
    ledger = XApiUsageLedger(store.engine, "local", XApiCaps.from_settings(main_run.env.settings))
    months = {m.strftime("%Y-%m"): m for m in (start, end)}.values()  # one per month
    counted = sum(ledger.usage(m).reads + ledger.usage(m).writes for m in months)
    sandbox = shared_sandbox(main_run.env.settings)
    assert counted == sandbox.counters["requests"] > 0
