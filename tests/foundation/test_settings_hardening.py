"""Settings and secrets hardening of issue 17 (items 4 to 7), each test naming its failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.foundation.conftest import subprocess_env
from xbot_assets.config import ConfigError, load_settings, mask_url
from xbot_assets.ops.redact import mask_credentials, redact, safe_error
from xbot_assets.posting.api_poster import is_loopback_url

pytestmark = pytest.mark.usefixtures("clean_env")

XBOT = [sys.executable, "-m", "xbot_assets.cli"]
PG_URL = "postgresql://xbot:pw@db.example.internal:5432/postgres"


def run_xbot(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*XBOT, *args],
        cwd=tmp_path,
        env=subprocess_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# --- item 4: only the documented upper-case names ----------------------------------------------


def test_lower_case_live_posts_never_turns_on_real_posting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 17 item 4: with APP_ENV=production LIVE_POSTS=false, a stray `live_posts=true` made
    posting_to_real_x true. It is refused at start-up, naming the variable to use."""
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("LIVE_POSTS", "false")
    assert load_settings(env_file=None).posting_to_real_x is False
    monkeypatch.setenv("live_posts", "true")
    with pytest.raises(ConfigError, match=r"live_posts \(use LIVE_POSTS\)"):
        load_settings(env_file=None)


@pytest.mark.parametrize(
    "name",
    [
        "app_env",
        "App_Env",
        "live_posts",
        "poster",
        "database_url",
        "redis_url",
        "Redis_Prefix",
        "x_api_base_url",
        "xbot_home",
        "max_posts_per_day",
    ],
)
def test_differently_cased_setting_exits_2_with_one_line(tmp_path: Path, name: str) -> None:
    """Issue 17 item 4: `app_env=production` overrode APP_ENV=staging (and the same for every
    setting). A differently-cased spelling of a setting stops the CLI with exit 2, one line."""
    proc = run_xbot(
        tmp_path,
        "settings",
        "--json",
        APP_ENV="staging",
        DATABASE_URL="sqlite:///s.db",
        **{name: "production"},
    )
    assert proc.returncode == 2
    line = one_line(proc)
    assert name in line and name.upper() in line
    assert proc.stdout == ""


def test_differently_cased_setting_in_dotenv_is_refused(tmp_path: Path) -> None:
    """Issue 17 item 4, the `.env` path: `app_env=production` in .env is refused too."""
    (tmp_path / ".env").write_text("APP_ENV=local\napp_env=production\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\.env sets app_env \(use APP_ENV\)"):
        load_settings(env_file=tmp_path / ".env")
    (tmp_path / ".env").write_text("APP_ENV=staging\nDATABASE_URL=sqlite:///s.db\n", "utf-8")
    assert load_settings(env_file=tmp_path / ".env").app_env == "staging"


def test_upper_case_names_and_overrides_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented names keep working (environment and keyword overrides by field name)."""
    monkeypatch.setenv("APP_ENV", "staging")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///s.db")
    monkeypatch.setenv("MAX_POSTS_PER_DAY", "5")
    loaded = load_settings(env_file=None)
    assert (loaded.app_env, loaded.max_posts_per_day) == ("staging", 5)
    assert load_settings(env_file=None, max_posts_per_day=3).max_posts_per_day == 3


# --- item 6: a bad port ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "postgresql://u:pw@127.0.0.1:99999/db"),
        ("REDIS_URL", "redis://127.0.0.1:notaport/0"),
        ("REDIS_URL", "redis://:pw@127.0.0.1:-1/0"),
        ("X_API_BASE_URL", "http://127.0.0.1:70000"),
    ],
)
def test_bad_port_exits_2_with_one_line(tmp_path: Path, name: str, value: str) -> None:
    """Issue 17 item 6: DATABASE_URL=...:99999/db or REDIS_URL=...:notaport/0 gave a traceback.
    Now exit 2 with one line naming the variable (and never its password)."""
    for command in (["settings", "--json"], ["migrate", "--check"]):
        proc = run_xbot(tmp_path, *command, **{name: value})
        assert proc.returncode == 2, proc.stderr
        line = one_line(proc)
        assert name in line and "port" in line
        assert "pw" not in line.replace("xbot:", "")


# --- item 5: every credential form masked -------------------------------------------------------

SECRET_FORMS = [
    "postgresql:///db?user=u&password={pw}",
    "postgresql://h/db?sslmode=require&password={pw}&port=5432",
    "postgresql://u@h/db?sslpassword={pw}",
    "postgresql://u:{pw}@h:5432/db",
    "postgres://u:{pw}@h/db?sslmode=disable",
    "host=h port=5432 password={pw} dbname=x",
    "host=h password = {pw} user=u",
    "redis://:{pw}@h:6379/0",
    "redis://user:{pw}@h:6379/0",
    "rediss://user:{pw}@h:6380/0",
    "redis://h:6379/0?password={pw}",
    "unix://:{pw}@/run/redis.sock?db=0",
    "unix:///run/redis.sock?db=0&password={pw}",
]


@pytest.mark.parametrize("form", SECRET_FORMS)
def test_mask_url_hides_every_password_form(form: str) -> None:
    """Issue 17 item 5: a password in the query string or a keyword DSN was printed as is."""
    url = form.format(pw="Hunter2Secret")
    assert "Hunter2Secret" not in (mask_url(url) or "")
    assert "Hunter2Secret" not in redact(f"could not connect to {url}: refused")


def test_libpq_quoted_password_is_masked_whole() -> None:
    """Issue 17 item 5: libpq's quoted values (with escapes and spaces) are masked whole."""
    dsn = r"host=h password='it\'s a long Secret' dbname=x"
    masked = mask_credentials(dsn)
    assert "Secret" not in masked and "long" not in masked and "dbname=x" in masked


def test_user_name_and_shape_are_kept() -> None:
    """Masking keeps what an operator needs to recognise the store."""
    assert mask_url("postgresql://u:p@ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("postgresql:///db?user=u&password=x") == "postgresql:///db?user=u&password=***"
    assert mask_url("sqlite:////tmp/some_very_long_directory_name_of_more_than_40/x.db") == (
        "sqlite:////tmp/some_very_long_directory_name_of_more_than_40/x.db"
    )


_PW = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=8,
    max_size=40,
).filter(lambda pw: pw.strip() == pw)


def _libpq_quote(pw: str) -> str:
    return "'" + pw.replace("\\", "\\\\").replace("'", "\\'") + "'"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pw=_PW, form=st.sampled_from(SECRET_FORMS), spaced=st.booleans())
def test_no_generated_password_survives_masking(pw: str, form: str, spaced: bool) -> None:
    """Issue 17 item 5, as a property: for every credential form, no generated password (raw,
    percent-encoded or libpq-quoted) appears in masked output or in a redacted exception."""
    keyword_dsn = "://" not in form
    if keyword_dsn:
        value = _libpq_quote(pw + (" x" if spaced else ""))
        secrets = [pw]
    else:
        value = quote(pw, safe="")
        secrets = [pw, value]
    url = form.format(pw=value)
    frame = form.format(pw="")
    outputs = [
        mask_url(url) or "",
        redact(f"connection to {url} failed"),
        safe_error(RuntimeError(f"bad url {url!r}")),
        json.dumps(mask_url(url)),
    ]
    for secret in secrets:
        if secret in frame:  # the secret is a piece of the URL around it: nothing to learn
            continue
        for out in outputs:
            assert secret not in out, (url, out)


def test_settings_json_and_store_errors_mask_query_and_dsn_passwords(tmp_path: Path) -> None:
    """Issue 17 item 5: `xbot settings --json`, `xbot migrate --check`, `xbot migrate` and
    `xbot brake status` printed a query-string or keyword-DSN password."""
    urls = [
        "postgresql:///db?user=u&password=QuerySecret1&host=127.0.0.1&port=1",
        "postgresql://u@127.0.0.1:1/db?sslpassword=QuerySecret1",
    ]
    for url in urls:
        env = {"DATABASE_URL": url, "REDIS_URL": "redis://h:6379/0?password=QuerySecret1"}
        shown = run_xbot(tmp_path, "settings", "--json", **env)
        assert shown.returncode == 0, shown.stderr
        assert "QuerySecret1" not in shown.stdout + shown.stderr
        assert "***" in json.loads(shown.stdout)["database_url"]
        for command in (["migrate", "--check"], ["migrate"], ["brake", "status"]):
            proc = run_xbot(tmp_path, *command, **env)
            assert proc.returncode == 2, proc.stderr
            line = one_line(proc)
            assert "QuerySecret1" not in line and "***" in line
    dsn = run_xbot(
        tmp_path, "settings", "--json", DATABASE_URL="host=h password=DsnSecret2 dbname=x"
    )
    assert dsn.returncode == 0 and "DsnSecret2" not in dsn.stdout + dsn.stderr


# --- item 7: loopback by address ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8787", True),
        ("http://127.1.2.3", True),
        ("http://[::1]:8787", True),
        ("http://[::ffff:127.0.0.1]:8787", True),
        ("http://localhost:8787", True),
        ("http://LOCALHOST.", True),
        ("https://127.x.com", False),
        ("https://127.0.0.1.example.com", False),
        ("https://127.evil", False),
        ("https://api.x.com", False),
        ("http://0.0.0.0:8787", False),
        ("http://10.0.0.1", False),
        ("http://localhost.example.com", False),
    ],
)
def test_loopback_is_decided_by_address(url: str, loopback: bool) -> None:
    """Issue 17 item 7: any host starting with `127.` counted as loopback, so
    X_API_BASE_URL=https://127.x.com could receive posts with APP_ENV=local."""
    assert is_loopback_url(url) is loopback


def test_local_api_poster_refuses_a_name_that_only_looks_like_loopback() -> None:
    """Issue 17 item 7 end to end: in APP_ENV=local the API poster sends nothing to
    https://127.x.com (dry run), and still may send to the sandbox on 127.0.0.1."""
    from xbot_assets.posting.factory import make_poster
    from xbot_assets.posting.service import send_block_reason

    for base_url, blocked in (("https://127.x.com", True), ("http://127.0.0.1:8787", False)):
        settings_ = load_settings(env_file=None, poster="api", x_api_base_url=base_url)
        poster = make_poster(settings_)
        try:
            reason = send_block_reason(settings_, poster)
        finally:
            poster.close()
        assert (reason is not None) is blocked, (base_url, reason)
        if blocked:
            assert "loopback" in (reason or "")
