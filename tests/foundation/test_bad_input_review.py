"""Settings a hostile review (8 December 2026) found crashing with a traceback, or worse: a bad
REDIS_URL kept `xbot brake on` from raising the brake, and a bad ACCOUNT_TIMEZONE was written
into the store for good. Each now exits 2 with one line that says what to do, writing nothing,
and the brake is raised whatever Redis's setting says."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from xbot_assets.cli import app
from xbot_assets.config import ConfigError, load_settings

BAD_REDIS_URLS = ["http://:pw@127.0.0.1:6379/5", "redis://:pw@127.0.0.1:6379/5?socket_timeout=abc"]


def _one_line_exit_2(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, repr(result.exception), result.output)
    assert len(result.output.strip().splitlines()) == 1, result.output
    return result.output


@pytest.mark.parametrize("url", BAD_REDIS_URLS)
def test_a_redis_url_redis_py_cannot_parse_exits_2_naming_the_forms(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    assert CliRunner().invoke(app, ["migrate"]).exit_code == 0
    monkeypatch.setenv("REDIS_URL", url)
    out = _one_line_exit_2(["status"])
    assert "REDIS_URL" in out and "redis://" in out and "pw" not in out


def test_the_brake_is_raised_in_the_store_when_redis_url_is_unusable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The brake's truth is the durable store: a bad REDIS_URL loses the mirror, not the stop."""
    assert CliRunner().invoke(app, ["migrate"]).exit_code == 0
    monkeypatch.setenv("REDIS_URL", BAD_REDIS_URLS[0])
    on = CliRunner().invoke(app, ["brake", "on", "--reason", "incident"])
    assert on.exit_code == 0, (repr(on.exception), on.output)
    assert "durable store only" in on.output and "pw" not in on.output
    # lowering it waits for a usable REDIS_URL (an unsafe direction needs sound settings)
    _one_line_exit_2(["brake", "off", "--reason", "fixed"])
    monkeypatch.delenv("REDIS_URL")
    status = CliRunner().invoke(app, ["brake", "status", "--json"])
    assert json.loads(status.output)["engaged"] is True


def test_the_brake_still_refuses_other_bad_settings(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CliRunner().invoke(app, ["migrate"]).exit_code == 0
    monkeypatch.setenv("REDIS_URL", BAD_REDIS_URLS[0])
    monkeypatch.setenv("CLOCK_SPEED", "inf")
    _one_line_exit_2(["brake", "on", "--reason", "incident"])


def test_an_unknown_account_timezone_is_refused_before_it_reaches_the_store(
    clean_env: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"Mars/Phobos.*IANA name like Europe/Berlin"):
        load_settings(env_file=None, account_timezone="Mars/Phobos")
    assert load_settings(env_file=None, account_timezone="Asia/Kolkata").account_timezone


def test_an_unknown_account_timezone_stops_the_cli_before_any_write(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCOUNT_TIMEZONE", "Mars/Phobos")
    _one_line_exit_2(["migrate"])
    assert not (clean_env / "home").exists()


@pytest.mark.parametrize("speed", ["inf", "nan", "1e300"])
def test_a_clock_speed_the_clock_cannot_count_with_exits_2(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, speed: str
) -> None:
    assert CliRunner().invoke(app, ["migrate"]).exit_code == 0
    monkeypatch.setenv("CLOCK_SPEED", speed)
    monkeypatch.setenv("CLOCK_EPOCH", "2026-12-05T20:00:00+00:00")
    assert "CLOCK_SPEED" in _one_line_exit_2(["status"])


@pytest.mark.parametrize("command", [["status"], ["brake", "status"], ["post", "--dry-run"]])
def test_an_xbot_home_that_cannot_hold_the_store_exits_2(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    home = clean_env / "not_a_folder"
    home.write_text("kept")
    monkeypatch.setenv("XBOT_HOME", str(home))
    assert "XBOT_HOME" in _one_line_exit_2(command)
    assert home.read_text() == "kept"


def test_the_x_account_tokens_hint_shows_its_example_whole(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error masker hides what follows `token:`; the hint must survive it."""
    monkeypatch.setenv("X_ACCOUNT_TOKENS", "[1]")
    assert '{"handle": "token"}' in _one_line_exit_2(["settings"])


def test_an_empty_xbot_home_is_the_default_folder(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xbot_assets.config import PROJECT_ROOT

    monkeypatch.setenv("XBOT_HOME", "")
    assert load_settings(env_file=None).xbot_home == PROJECT_ROOT / ".xbot"


# --- secrets in what is shown -------------------------------------------------------------------


def test_a_database_password_with_a_space_is_refused_and_never_shown(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drivers accept an un-encoded space in a password; every message quoting the URL split it
    and showed its halves. Refused at load (percent-encode it), and masked whole anyway."""
    from xbot_assets.config import mask_url

    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2 secret@127.0.0.1:1/db")
    out = _one_line_exit_2(["settings"])
    assert "percent-encode" in out and "hunter2" not in out and "secret" not in out
    assert (
        mask_url("postgresql://u:hunter2 secret@127.0.0.1:1/db")
        == "postgresql://u:***@127.0.0.1:1/db"
    )


@pytest.mark.parametrize(
    "text",
    [
        "X_OAUTH2_USER_TOKEN=abc123short",
        '{"access_token": "abc123short"}',
        "client_secret=abc123short",
        "OPENAI_API_KEY=sk-abc",
        "PGPASSWORD=abc123short",
    ],
)
def test_a_secret_named_with_a_prefix_is_masked(text: str) -> None:
    """``\\btoken`` never matched after ``_``: X_OAUTH2_USER_TOKEN=short passed unmasked."""
    from xbot_assets.ops.redact import redact

    shown = redact(text)
    assert "abc" not in shown and "***" in shown, shown


def test_ordinary_words_near_secret_names_stay_readable() -> None:
    from xbot_assets.ops.redact import redact

    text = "max_tokens: 500 and the secrets manager answered 503"
    assert redact(text) == text


# --- a bad prior file never stops posting -------------------------------------------------------


def _prior_file(tmp_path: Path, **overrides: object) -> Path:
    from xbot_assets.learning.population_prior import PRIOR_VERSION

    raw: dict[str, object] = {
        "version": PRIOR_VERSION, "objective": "engagement", "effect_means": {}, "group_sd": {},
    }  # fmt: skip
    raw.update(overrides)
    path = tmp_path / "prior.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize(
    "overrides",
    [
        {"objective": "bogus"},
        {"negative_prior_events": "nan", "negative_log_ratio": {"how_to": 0.1}},
        {"negative_prior_events": -5},
        {"negative_log_ratio": {"how_to": "inf"}},
    ],
)
def test_a_prior_file_the_model_cannot_use_is_a_prior_error(
    tmp_path: Path, overrides: dict[str, object]
) -> None:
    """PriorError is what the posting path catches (the model's own prior, with a warning); an
    unknown objective raised a plain ValueError, and NaN or negative counts were taken."""
    from xbot_assets.engine.decide import cold_start_config
    from xbot_assets.learning.population_prior import PriorError, load_prior

    path = _prior_file(tmp_path, **overrides)
    with pytest.raises(PriorError, match="LEARNING_PRIOR_FILE"):
        load_prior(path)
    settings = SimpleNamespace(learning_prior_file=path, learning_objective="engagement")
    assert cold_start_config(settings).objective == "engagement"  # posting goes on


# --- xbot sandbox serve -------------------------------------------------------------------------


def test_a_scenario_file_that_is_not_yaml_exits_2_naming_its_line(clean_env: Path) -> None:
    bad = clean_env / "scenario.yaml"
    bad.write_text("audience:\n  a: [1,\n")
    out = _one_line_exit_2(["sandbox", "serve", "--scenario", str(bad), "--port", "0"])
    assert "not valid YAML" in out and "line" in out


def test_a_corrupt_sandbox_journal_exits_2_and_is_kept(clean_env: Path) -> None:
    journal = clean_env / "journal.jsonl"
    journal.write_text("garbage{\n")
    out = _one_line_exit_2(["sandbox", "serve", "--journal", str(journal), "--port", "0"])
    assert "line 1" in out and "move the file away" in out
    assert journal.read_text() == "garbage{\n"


def test_a_port_out_of_range_is_refused(clean_env: Path) -> None:
    result = CliRunner().invoke(app, ["sandbox", "serve", "--port", "99999"])
    assert result.exit_code == 2 and "65535" in result.output
