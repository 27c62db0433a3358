"""The `xbot` command: what an operator types.

Each sub-command imports the layer it needs inside its body, so `xbot --help` stays fast and
importing this module has no side effects. Errors a user can meet exit with code 2 and one line
saying what to do (see :func:`fail`).
"""

from __future__ import annotations

import json
import warnings
from typing import NoReturn

import typer

from xbot_assets.config import ConfigError, Settings, load_settings

app = typer.Typer(
    name="xbot",
    help="Grow an X account with data science. Run `xbot COMMAND --help` for details.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line to stderr and exit; the message must already say what to do."""
    typer.echo(f"xbot: {message}", err=True)
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


def require_schema_or_exit(settings: Settings) -> None:
    """Stop (exit 2) unless the durable store is at this xbot's schema: call it first thing in
    every command that uses the store, before any browser, poster or job starts."""
    from xbot_assets.store.errors import StoreError
    from xbot_assets.store.guard import require_current_schema

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
    from xbot_assets.store.engine import make_engine
    from xbot_assets.store.errors import StoreError
    from xbot_assets.store.migrate import known_revisions, schema_status, upgrade

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
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
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
def run_cmd() -> None:
    """Run the main job on the configured environment and print where the results are."""
    settings = settings_or_exit()
    from xbot_assets.runner import run_main

    result = run_main(settings)
    typer.echo(f"materialised {len(result.materialized)} assets: {', '.join(result.materialized)}")
    typer.echo(f"warehouse: {result.warehouse_path}")
    typer.echo(f"runs: {', '.join(result.run_ids)} (see them with `make ui`)")


sandbox_app = typer.Typer(help="The sandbox X: a simulated platform and audience.")
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("serve")
def sandbox_serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(8787, help="TCP port."),
    scenario: str = typer.Option("default", help="default, drift, cold_start, large or a path."),
    seed: int = typer.Option(7, help="Audience seed (same seed, same outcomes)."),
) -> None:
    """Serve the sandbox X (API v2, x.com-like pages, /__sandbox/ admin) until interrupted."""
    from xbot_assets.sandbox.scenario import ScenarioError, load_scenario
    from xbot_assets.sandbox.server import serve

    try:
        load_scenario(scenario, seed)
    except ScenarioError as exc:
        fail(str(exc))
    serve(host=host, port=port, scenario=scenario, seed=seed)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
