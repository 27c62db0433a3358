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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
