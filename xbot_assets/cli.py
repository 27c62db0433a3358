"""The `xbot` command: what an operator types.

Each sub-command imports the layer it needs inside its body, so `xbot --help` stays fast and
importing this module has no side effects. Errors a user can meet exit with code 2 and one line
saying what to do (see :func:`fail`).

Why one file of about 700 lines: every command is a thin adapter (parse the options, make one call
into its layer, turn its errors into one line and an exit code) and they share :func:`fail`,
:func:`settings_or_exit` and the typer ``app`` their decorators register on; the tests drive
``app`` from here. Split it into a ``cli/`` package by command group (run and store; posting and
brake; sandbox, health and console servers; content) once a group grows logic of its own.
"""

from __future__ import annotations

import json
import warnings
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from xbot_assets.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from xbot_assets.health.checks import HealthContext

app = typer.Typer(
    name="xbot",
    help="Grow an X account with data science. Run `xbot COMMAND --help` for details.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line to stderr and exit; the message must already say what to do.

    Every credential a connection string can carry is masked here, whatever built the message.
    """
    from xbot_assets.ops.redact import mask_credentials

    typer.echo(f"xbot: {mask_credentials(message)}", err=True)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    """Load the settings for a command, exiting 2 with the reason on an invalid combination."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            settings = load_settings()
    except ConfigError as exc:
        fail(str(exc))
    for warning in caught:
        typer.echo(f"xbot: warning: {warning.message}", err=True)
    return settings


def settings_for_the_brake() -> Settings:
    """Settings for `xbot brake on`: an emergency stop must not wait for a REDIS_URL fix. Its
    truth is the durable store (every poster reads it there before each post), Redis only
    mirrors it; so settings that start without REDIS_URL raise the brake there, with a warning,
    and anything else wrong still exits 2."""
    try:
        return settings_or_exit()
    except typer.Exit:  # the reason is printed already
        try:
            settings = load_settings(redis_url=None)
        except ConfigError:
            raise typer.Exit(2) from None  # something else is wrong too
        typer.echo(
            "xbot: warning: raising the brake in the durable store only, not mirrored in Redis "
            "(REDIS_URL is not usable, see above); fix REDIS_URL before `xbot brake off`",
            err=True,
        )
        return settings


def require_schema_or_exit(settings: Settings) -> None:
    """Stop (exit 2) unless the durable store is at this xbot's schema: call it first thing in
    every command that uses the store, before any browser, poster or job starts."""
    from xbot_assets.store.durable.errors import StoreError
    from xbot_assets.store.durable.guard import require_current_schema

    try:
        require_current_schema(settings)
    except StoreError as exc:
        fail(str(exc))


@app.command("migrate")
def migrate_cmd(
    check: bool = typer.Option(
        False, "--check", help="Only check: exit 0 if the store is current, 2 if not."
    ),
    revision: str = typer.Option(
        "head", "--revision", help="Migrate to this revision instead of the newest (tests)."
    ),
) -> None:
    """Create or upgrade the durable store's schema (idempotent; safe to run at every deploy)."""
    settings = settings_or_exit()
    if check:
        require_schema_or_exit(settings)
        typer.echo("durable store schema is current")
        return
    from xbot_assets.config import mask_url
    from xbot_assets.ops.redact import redact
    from xbot_assets.store.durable.engine import make_engine
    from xbot_assets.store.durable.errors import StoreError
    from xbot_assets.store.durable.migrate import known_revisions, schema_status, upgrade

    url = settings.resolved_database_url
    if revision != "head" and revision not in known_revisions():
        fail(f"unknown revision {revision!r}: use one of {', '.join(known_revisions())}")
    try:
        engine = make_engine(url)
        try:
            before = schema_status(engine)
        finally:
            engine.dispose()
        if before.is_ahead:
            fail(
                f"the durable store is at migration {before.current}, newer than this xbot "
                f"knows (head {before.head}): upgrade xbot"
            )
        after = upgrade(url, revision)
    except StoreError as exc:
        fail(str(exc))
    except Exception as exc:  # a database error: say where, never the password
        first = redact(str(exc).splitlines()[0])[:300] if str(exc) else type(exc).__name__
        fail(f"migrating {mask_url(url)} failed ({first}): check DATABASE_URL and the database")
    typer.echo(
        f"durable store {mask_url(url)}: {before.current or 'empty'} -> {after.current} "
        f"(head {after.head})"
    )


@app.command("settings")
def settings_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print as JSON for scripts."),
) -> None:
    """Print the resolved settings with secrets masked (exit 2 on an invalid combination)."""
    settings = settings_or_exit()
    masked = settings.masked()
    if as_json:
        typer.echo(json.dumps(masked, indent=2, default=str))
        return
    for key, value in masked.items():
        if key == "resolved":
            for sub, sub_value in value.items():
                typer.echo(f"{'(resolved) ' + sub:<32} {sub_value}")
        else:
            typer.echo(f"{key:<32} {value}")


@app.command("run")
def run_cmd(
    days: float = typer.Option(30, min=0.1, help="Simulated days to run."),
    scenario: str | None = typer.Option(None, help="Sandbox scenario (default: settings')."),
    seed: int | None = typer.Option(None, help="Sandbox audience seed (default: settings')."),
    posts_per_day: int = typer.Option(4, min=1, help="Posts planned per simulated day."),
    rebuild_every_hours: int = typer.Option(
        48, min=1, help="Simulated hours between warehouse + learning rebuilds."
    ),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Run the main job: the whole loop through the Dagster definitions on simulated time."""
    settings = settings_or_exit()
    require_schema_or_exit(settings)
    from xbot_assets.report import summary_lines
    from xbot_assets.runner import run_main

    try:
        result = run_main(
            settings,
            days=days,
            scenario=scenario,
            seed=seed,
            posts_per_day=posts_per_day,
            rebuild_every_hours=rebuild_every_hours,
            progress=progress,
        )
    except RuntimeError as exc:
        fail(str(exc))
    for line in summary_lines(result):
        typer.echo(line)
    typer.echo(
        f"materialised {len(result.materialized)} assets; warehouse: {result.warehouse_path}"
    )
    typer.echo(f"report: {result.report_path}")
    typer.echo("see every run and asset with `make ui`")
    if result.failed_runs:
        fail(f"{len(result.failed_runs)} runs failed: {'; '.join(result.failed_runs[:3])}", 1)


sandbox_app = typer.Typer(help="The sandbox X: a simulated platform and audience.")
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("serve")
def sandbox_serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(8787, min=0, max=65535, help="TCP port."),
    scenario: str = typer.Option("default", help="default, drift, cold_start, large or a path."),
    seed: int = typer.Option(7, help="Audience seed (same seed, same outcomes)."),
    journal: str | None = typer.Option(None, help="Write log to keep posts across restarts."),
    speed: float | None = typer.Option(
        None,
        min=0.0,
        help="0: clock moves only via /__sandbox/clock; N: N sim s per real s. Default: "
        "CLOCK_SPEED (with CLOCK_EPOCH the sandbox follows the deployment's rehearsal clock).",
    ),
) -> None:
    """Serve the sandbox X (API v2, x.com-like pages, /__sandbox/ admin) until interrupted."""
    from xbot_assets.sandbox.journal import JournalError
    from xbot_assets.sandbox.scenario import ScenarioError, load_scenario
    from xbot_assets.sandbox.server import serve

    settings = _rehearsal_settings_or_exit(speed)
    clock_source = None
    if settings.clock_epoch is not None and speed != 0:
        from xbot_assets.store.timebase import settings_clock

        clock_source = settings_clock(settings)
    try:
        load_scenario(scenario, seed)
    except ScenarioError as exc:
        fail(str(exc))
    try:
        serve(
            host=host,
            port=port,
            scenario=scenario,
            seed=seed,
            journal=journal,
            speed=speed if speed is not None else (settings.clock_speed or 0.0),
            clock_source=clock_source,
        )
    except JournalError as exc:  # raised while the journal replays, before serving
        fail(str(exc))


def _rehearsal_settings_or_exit(speed: float | None) -> Settings:
    """The settings with ``--speed`` as CLOCK_SPEED: the rehearsal rules (refused in production,
    an epoch for a shared clock) then apply to the flag as to the variable (exit 2)."""
    try:
        if speed:
            probe = load_settings()
            if probe.clock_epoch is not None or probe.app_env == "production":
                return load_settings(clock_speed=speed)
            return probe
        return load_settings()
    except ConfigError as exc:
        fail(str(exc))


health_app = typer.Typer(help="The health server: /healthz, /readyz and /metrics for monitoring.")
app.add_typer(health_app, name="health")


def _health_context(
    settings: Settings,
    *,
    require_redis: bool = False,
    max_post_age_hours: float = 24.0,
    metrics_grace_hours: float = 2.0,
) -> HealthContext:
    """The health context of the operator commands (exit 2 on a store URL that cannot work)."""
    from datetime import timedelta

    from xbot_assets.health.checks import HealthContext, Thresholds
    from xbot_assets.store.durable.errors import StoreError

    thresholds = Thresholds(
        max_post_age=timedelta(hours=max_post_age_hours),
        metrics_grace=timedelta(hours=metrics_grace_hours),
    )
    try:
        from xbot_assets.store.timebase import settings_clock

        ctx = HealthContext(
            settings,
            thresholds=thresholds,
            redis_required=require_redis,
            clock=settings_clock(settings),
        )
        ctx.engine  # noqa: B018 - build it now so a bad DATABASE_URL fails here, with exit 2
    except StoreError as exc:
        fail(str(exc))
    return ctx


@health_app.command("serve")
def health_serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback unless told)."),
    port: int = typer.Option(8788, min=0, max=65535, help="TCP port (0: any free port)."),
    require_redis: bool = typer.Option(
        False, "--require-redis", help="Not ready while Redis is down (default: fallback ok)."
    ),
    max_post_age_hours: float = typer.Option(
        24.0, min=0.0, help="Not ready when the last successful post is older than this."
    ),
    metrics_grace_hours: float = typer.Option(
        2.0, min=0.0, help="Not ready when a post's 1h metrics are this late."
    ),
) -> None:
    """Serve /healthz, /readyz and /metrics until interrupted (SIGINT/SIGTERM).

    Unlike every other command it starts on a store whose schema is behind or ahead (or that
    does not answer): probes must be able to report that. It says so on stderr, and /readyz
    answers 503 with the reason until the store is fixed.
    """
    settings = settings_or_exit()
    from xbot_assets.health.server import HealthServer
    from xbot_assets.store.durable.errors import StoreError
    from xbot_assets.store.durable.guard import require_current_schema

    try:
        require_current_schema(settings)
    except StoreError as exc:
        from xbot_assets.ops.redact import mask_credentials

        typer.echo(
            f"xbot: warning: {mask_credentials(str(exc))}; serving anyway: /readyz answers 503 "
            "until this is fixed",
            err=True,
        )

    ctx = _health_context(
        settings,
        require_redis=require_redis,
        max_post_age_hours=max_post_age_hours,
        metrics_grace_hours=metrics_grace_hours,
    )
    try:
        server = HealthServer(ctx, host=host, port=port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port or --host")
    typer.echo(f"xbot health server on {server.url} (/healthz /readyz /metrics)")
    server.serve()


@app.command("status")
def status_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print as JSON for scripts."),
    limit: int = typer.Option(5, min=1, max=100, help="How many next and last posts to list."),
) -> None:
    """Queue, next posts, last posts, caps left, AI spend and health (exit 2 if the store is
    unusable, 1 if a readiness check is down)."""
    settings = settings_or_exit()
    require_schema_or_exit(settings)
    from xbot_assets.ops.status import collect_status, local_clock, render_status

    ctx = _health_context(settings)
    try:
        simulated = local_clock(settings, ctx.engine)  # a local run lives on the sandbox's time
        if simulated is not None:
            ctx.clock = simulated
        status = collect_status(ctx, limit=limit)
        status["clock"] = "sandbox (simulated)" if simulated is not None else "wall"
    finally:
        ctx.close()
    typer.echo(json.dumps(status, indent=2, default=str) if as_json else render_status(status))
    if not status["health"]["ready"]:
        raise typer.Exit(1)


@app.command("post")
def post_cmd(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the next post, its arm, scores and guard verdict only."
    ),
    account: str | None = typer.Option(None, help="Only this account's handle."),
    policy: bool = typer.Option(
        False, "--policy", help="Also run the content policy for the next open slot (no write)."
    ),
    allow_ai_spend: bool = typer.Option(
        False, "--allow-ai-spend", help="Let --policy call OpenAI (spends the AI budget)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON for scripts."),
) -> None:
    """Post the next due post now through the at-most-once protocol (quiet hours, spacing,
    caps, the brake and LIVE_POSTS apply), or with --dry-run only show it. Locally the sandbox's
    clock moves to the post's slot when that is later. The posting job (posting_sensor ->
    post_job: `xbot run`, or a deployment's daemon) normally does this."""
    if not dry_run:
        settings = settings_or_exit()
        require_schema_or_exit(settings)
        from xbot_assets.ops.dryrun import UnknownAccountError
        from xbot_assets.ops.postnow import post_next

        try:
            done = post_next(settings, account=account)
        except UnknownAccountError as exc:
            fail(str(exc))
        if as_json:
            typer.echo(json.dumps(done, indent=2, default=str))
        else:
            typer.echo(f"@{done['account']}: {done['status']}: {done['detail']}")
        if done["status"] not in ("posted", "nothing_queued"):
            raise typer.Exit(1)
        return
    settings = settings_or_exit()
    require_schema_or_exit(settings)
    from xbot_assets.ops.dryrun import (
        PolicyPreviewError,
        UnknownAccountError,
        dry_run_next_post,
        preview_policy,
        render_dry_run,
        render_policy_preview,
    )

    ctx = _health_context(settings)
    try:
        result = dry_run_next_post(ctx, account=account)
        if policy:
            result["policy_preview"] = preview_policy(
                ctx, account=account, allow_ai_spend=allow_ai_spend
            )
    except (UnknownAccountError, PolicyPreviewError) as exc:
        fail(str(exc))
    finally:
        ctx.close()
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    typer.echo(render_dry_run(result))
    if policy:
        typer.echo(render_policy_preview(result["policy_preview"]))


@app.command("reconcile")
def reconcile_cmd(
    grace_minutes: float | None = typer.Option(
        None, "--grace-minutes", min=0, help="Only rows in `posting` this long (default 10)."
    ),
    guarded_retry: bool | None = typer.Option(
        None,
        "--guarded-retry/--no-guarded-retry",
        help="Re-queue a post not found on the timeline once (default: bot_config, else off).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON for scripts."),
) -> None:
    """Settle posts left in `posting` by a poster that died: each is looked up on the account's
    own timeline (found: posted with its id; not found: unknown, or one guarded retry)."""
    settings = settings_or_exit()
    require_schema_or_exit(settings)
    if settings.resolved_poster == "sandbox":
        fail(
            "the in-process sandbox lives only inside the run that posted (which reconciles "
            "itself): to reconcile from here set POSTER=api and X_API_BASE_URL to the sandbox "
            "server (`xbot sandbox serve`) or to X"
        )
    from datetime import timedelta

    from xbot_assets.posting.base import PostingError
    from xbot_assets.posting.factory import reconcile

    try:
        report = reconcile(
            settings,
            grace=None if grace_minutes is None else timedelta(minutes=grace_minutes),
            guarded_retry=guarded_retry,
        )
    except PostingError as exc:
        fail(f"cannot read the account's own timeline ({exc}); nothing was changed")
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    typer.echo(
        f"found on X: {len(report.found)}  unknown (a person decides): {len(report.unknown)}  "
        f"re-queued once: {len(report.requeued)}  skipped (settled elsewhere): "
        f"{len(report.skipped)}"
    )


class BrakeAction(StrEnum):
    """What `xbot brake` does: a choice, so a typo is refused by the parser with the options."""

    on = "on"
    off = "off"
    status = "status"


@app.command("brake")
def brake_cmd(
    action: Annotated[
        BrakeAction, typer.Argument(help="on: stop posting; off: allow it; status: show it.")
    ],
    reason: str | None = typer.Option(
        None, "--reason", "-r", help="Why (required for on/off; goes to the audit log)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON for scripts."),
) -> None:
    """The emergency brake: `on` stops every post from the next check on, `off` allows posting
    again, `status` shows it. Stored durably (bot_config + audit_log) and mirrored in Redis."""
    from xbot_assets.ops.text_input import TextInputError, check_text

    action_name = action.value
    if action is not BrakeAction.status and not (reason and reason.strip()):
        fail(f"say why: `xbot brake {action_name} --reason '...'` (it goes to the audit log)")
    if reason is not None:
        try:  # before the store: a reason it cannot hold must not read as "store down"
            check_text(reason, name="--reason")
        except TextInputError as exc:
            fail(f"{exc}; the brake was not changed")
    settings = settings_for_the_brake() if action is BrakeAction.on else settings_or_exit()
    require_schema_or_exit(settings)
    import redis as redis_lib
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    from xbot_assets.ops.audit import operator_actor
    from xbot_assets.ops.redact import safe_error
    from xbot_assets.store.durable.engine import make_engine
    from xbot_assets.store.hot.brake import EmergencyBrake
    from xbot_assets.store.hot.keys import KeySpace, redis_from_settings

    engine = make_engine(settings.resolved_database_url)
    client = redis_from_settings(settings)
    brake = EmergencyBrake(engine, settings.app_env, client, KeySpace.from_settings(settings))
    try:
        if action is BrakeAction.on:
            state = brake.engage(reason or "", actor=operator_actor())
        elif action is BrakeAction.off:
            state = brake.release(reason or "", actor=operator_actor())
        else:
            state = brake.durable_status()
    except (OperationalError, InterfaceError) as exc:
        fail(
            f"the durable store did not answer ({type(exc).__name__}): nothing can be posted "
            "while it is down either; retry `xbot brake` when it is back"
        )
    except DBAPIError as exc:  # it answered and refused: say so, not "down"
        detail = safe_error(exc.orig or exc)
        fail(f"the durable store refused the change ({detail}); the brake was not changed")
    finally:
        engine.dispose()
    mirrored = None
    if client is not None:
        try:
            mirrored = client.exists(brake.mirror_key) == 1
        except redis_lib.RedisError:
            mirrored = False
        client.close()
    out = {**state.as_value(), "environment": settings.app_env, "redis_mirror": mirrored}
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    word = "ON (no post will be claimed)" if state.engaged else "off"
    typer.echo(f"brake {word}")
    if state.reason:
        typer.echo(f"  reason: {state.reason}")
    if state.by or state.since:
        typer.echo(f"  by {state.by or '?'} at {state.since.isoformat() if state.since else '?'}")


content_app = typer.Typer(help="Content: generate candidates for an arm, run the safety guard.")
app.add_typer(content_app, name="content")


def _operator_guard(settings: Settings) -> tuple[Any, Any, str]:
    """The guard settings the operator put in bot_config and OpenAI moderation when a key is
    set (what every generation applies), with where the settings came from. Without a
    migrated store (or no SQLite file yet, which is never created here): the defaults. A
    malformed guard value in bot_config exits 2 naming the key."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from xbot_assets.content.factory import build_guard_config, build_moderator
    from xbot_assets.content.safety import GuardConfig
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.errors import StoreError

    moderator = build_moderator(settings)
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return GuardConfig(), moderator, "defaults (no durable store yet)"
    try:
        store = DurableStore.from_settings(settings)
    except StoreError:
        return GuardConfig(), moderator, "defaults (the durable store is not migrated)"
    try:
        return build_guard_config(store), moderator, "bot_config"
    except ValueError as exc:
        fail(str(exc))
    finally:
        store.close()


@content_app.command("check")
def content_check(
    text: str = typer.Argument(..., help="The post text to check (quote it)."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Run the safety guard on TEXT; exit 0 if it may be posted, 1 if rejected."""
    from xbot_assets.content.safety import check
    from xbot_assets.ops.text_input import TextInputError, check_text

    try:
        check_text(text, name="TEXT", max_chars=100_000, allow_newlines=True)
    except TextInputError as exc:
        fail(str(exc))
    settings = settings_or_exit()
    guard_config, moderator, source = _operator_guard(settings)
    verdict = check(text, config=guard_config, moderator=moderator)
    if as_json:
        out = {**verdict.to_dict(), "guard_settings": source, "moderation": moderator is not None}
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        typer.echo("ok" if verdict.ok else "rejected: " + ", ".join(verdict.reasons))
        for detail in verdict.details:
            typer.echo(f"  {detail}")
    raise typer.Exit(0 if verdict.ok else 1)


@content_app.command("generate")
def content_generate(
    arm: str = typer.Argument(..., help="The arm, '<format>:<topic>', e.g. how_to:python."),
    n: int = typer.Option(3, "-n", min=1, max=20, help="How many candidates."),
    seed: int = typer.Option(0, help="First seed (offline output is deterministic in it)."),
    as_json: bool = typer.Option(False, "--json", help="Print the candidates as JSON lines."),
) -> None:
    """Generate N guarded candidates for ARM with the configured generator (nothing is posted)."""
    from xbot_assets.content.candidates import generate_candidates
    from xbot_assets.content.factory import build_generator
    from xbot_assets.content.vocabulary import Arm, ArmError

    settings = settings_or_exit()
    try:
        Arm.parse(arm)
    except ArmError as exc:
        fail(str(exc))
    store = None
    if settings.resolved_generator == "openai":
        # The AI budget ledger lives in bot_config: open the durable store for it.
        from xbot_assets.store.durable import DurableStore

        require_schema_or_exit(settings)
        store = DurableStore.from_settings(settings)
    try:
        generator = build_generator(settings, store)
    except ValueError as exc:
        fail(str(exc))
    try:
        guard_config, moderator, _source = _operator_guard(settings)
        batch = generate_candidates(
            generator, arm, n=n, base_seed=seed, guard_config=guard_config, moderator=moderator
        )
    finally:
        if store is not None:
            store.close()
    for c in batch:
        if as_json:
            row = {"arm": c.arm, "parts": list(c.parts), "ok": c.accepted, "reasons": c.reasons}
            typer.echo(json.dumps({**row, "seed": c.seed}, ensure_ascii=False))
            continue
        status = "ok" if c.accepted else "rejected: " + ", ".join(c.reasons)
        typer.echo(f"--- seed {c.seed} [{status}]")
        typer.echo(c.text or "(no text)")


prior_app = typer.Typer(help="Population priors: what other accounts learnt, for a new one.")
app.add_typer(prior_app, name="prior")


@prior_app.command("fit")
def prior_fit(
    out: str = typer.Option(
        ..., "--out", help="JSON file to write (LEARNING_PRIOR_FILE reads it)."
    ),
    groups: str = typer.Option(
        "text", help="Comma-separated design groups to centre: format, topic, time, recency, text."
    ),
    sd: float = typer.Option(0.1, min=0.01, max=2.0, help="Prior SD (log scale) of the groups."),
    with_formats: bool = typer.Option(
        False, help="Also each format's negative rates and metric mix (from final counts)."
    ),
    min_posts: int = typer.Option(200, min=1, help="Refuse a prior from fewer evidence posts."),
) -> None:
    """Fit a population prior from every account in this store (an experienced deployment) for
    new accounts: set LEARNING_PRIOR_FILE to the file in the new deployment."""
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from xbot_assets.content.vocabulary import DEFAULT_TOPICS, FORMATS
    from xbot_assets.engine.history import learning_histories
    from xbot_assets.learning.population_prior import (
        PriorError,
        after_last_post,
        fit_population_prior,
        save_prior,
    )
    from xbot_assets.store.durable import DurableStore

    settings = settings_or_exit()
    require_schema_or_exit(settings)
    chosen = [g.strip() for g in groups.split(",") if g.strip()]
    store = DurableStore.from_settings(settings)
    try:
        # every post, whenever it was posted; ages from the newest one (after_last_post)
        wall = datetime.now(UTC)
        accounts = learning_histories(store, now=wall + timedelta(days=3650),
                                      default_timezone=settings.account_timezone)  # fmt: skip
        prior = fit_population_prior(
            accounts, now=after_last_post(accounts, default=wall), formats=FORMATS,
            topics=DEFAULT_TOPICS,
            objective=settings.learning_objective, groups=chosen,
            group_sd=dict.fromkeys(chosen, sd), with_formats=with_formats, min_posts=min_posts,
        )  # fmt: skip
    except PriorError as exc:
        fail(str(exc))
    finally:
        store.close()
    path = save_prior(prior, Path(out))
    typer.echo(f"{prior.describe()} -> {path}")
    typer.echo(f"use it: LEARNING_PRIOR_FILE={path}")


@app.command("browser-login")
def browser_login_cmd(
    handle: str | None = typer.Option(None, help="The account's handle (default: X_HANDLE)."),
) -> None:
    """Log in once in Chromium and save the session for the opt-in browser poster.

    The password is prompted (never an option, never stored); the session goes to the file
    BROWSER_STORAGE_STATE names (mode 0600). A verification challenge is never answered: log in
    by hand then. X's automation rules forbid scripting the website: prefer POSTER=api.
    """
    settings = settings_or_exit()
    if settings.browser_storage_state is None:
        fail("set BROWSER_STORAGE_STATE to the file for the session (keep it out of git)")
    from xbot_assets.posting.base import AuthFailed
    from xbot_assets.posting.browser_poster import save_browser_session

    password = typer.prompt("X password", hide_input=True)
    try:
        save_browser_session(
            settings.x_web_base_url,
            handle=handle or settings.x_handle,
            password=password,
            storage_state=settings.browser_storage_state,
            chromium_path=settings.chromium_path,
        )
    except AuthFailed as exc:
        fail(str(exc))
    typer.echo("session saved to BROWSER_STORAGE_STATE (a secret: never commit or share it)")


console_app = typer.Typer(help="The operator console: queue, approval, brake and learning.")
app.add_typer(console_app, name="console")


@console_app.command("serve")
def console_serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback unless told)."),
    port: int = typer.Option(8787, min=0, max=65535, help="TCP port (0: any free port)."),
    ssl_certfile: str | None = typer.Option(
        None, "--ssl-certfile", help="TLS certificate (required off loopback)."
    ),
    ssl_keyfile: str | None = typer.Option(
        None, "--ssl-keyfile", help="TLS private key (required off loopback)."
    ),
) -> None:
    """Serve the operator console until interrupted (log in with `xbot console token`)."""
    from xbot_assets.console.server import ServeError, serve

    settings = settings_or_exit()
    require_schema_or_exit(settings)
    try:
        serve(settings, host=host, port=port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    except ServeError as exc:
        fail(str(exc))


@console_app.command("token")
def console_token(
    label: str = typer.Option("operator", help="Who the token is for (shown in the audit log)."),
    revoke_all: bool = typer.Option(
        False, "--revoke-all", help="Revoke every token of this environment instead."
    ),
) -> None:
    """Print a new console token for this environment (stored hashed; shown only this once)."""
    from datetime import UTC, datetime

    from xbot_assets.console.auth import issue_token, revoke_tokens
    from xbot_assets.ops.audit import operator_actor
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.errors import StoreError

    settings = settings_or_exit()
    require_schema_or_exit(settings)
    try:
        store = DurableStore.from_settings(settings)
    except StoreError as exc:
        fail(str(exc))
    try:
        if revoke_all:
            count = revoke_tokens(
                store.engine, store.environment, actor=operator_actor(), now=datetime.now(UTC)
            )
            typer.echo(f"revoked {count} console token(s) of {store.environment}")
            return
        token = issue_token(
            store.engine,
            store.environment,
            label=label,
            created_by=operator_actor(),
            now=datetime.now(UTC),
        )
    finally:
        store.close()
    typer.echo(token)
    typer.echo(f"(console token for {settings.app_env}; stored hashed, shown only now)", err=True)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
