"""``xbot-dbt``: dbt's command line served by a fork server, with dbt's own behaviour.

Every test runs the real client script against a real server in a folder of its own, on a tiny
dbt project whose model reads an environment variable, so per-call environment, working
directory, output, exit codes and signals are all observable.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from xbot_assets.warehouse import dbt_warm

pytestmark = pytest.mark.xdist_group("dbt_warm")

CLIENT = str(Path(sys.executable).parent / "xbot-dbt")
TRACE = re.compile(r"xbot-dbt: warm server (\d+) child (\d+)")


@pytest.fixture(scope="module")
def warm_dir() -> Iterator[Path]:
    """One server folder for the module (starting a server imports dbt: seconds of CPU).
    A short path: Unix socket paths are limited to about 100 bytes."""
    folder = Path(f"/tmp/xbot-dbt-test-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    folder.mkdir(mode=0o700)
    yield folder
    dbt_warm.stop_server(folder)
    subprocess.run(["rm", "-rf", str(folder)], check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A dbt project with one table model whose value comes from ``MARK``."""
    (tmp_path / "models").mkdir()
    (tmp_path / "dbt_project.yml").write_text(
        "name: warmtest\nversion: '1.0.0'\nconfig-version: 2\nprofile: warmtest\n"
        "models:\n  warmtest:\n    +materialized: table\n"
    )
    (tmp_path / "profiles.yml").write_text(
        "warmtest:\n  target: t\n  outputs:\n    t:\n      type: duckdb\n"
        "      path: \"{{ env_var('WAREHOUSE') }}\"\n"
    )
    (tmp_path / "models" / "marked.sql").write_text("select '{{ env_var(\"MARK\") }}' as mark")
    (tmp_path / "models" / "slow.sql").write_text(
        "{{ config(enabled=env_var('SLOW', '0') == '1') }}\n"
        "select sum(a.range * b.range) as s from range(100000000) a, range(100000000) b"
    )
    return tmp_path


def _env(warm_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        dbt_warm.DIR_ENV: str(warm_dir),
        dbt_warm.TRACE_ENV: "1",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    env.pop(dbt_warm.WARM_ENV, None)
    env.update(extra)
    return env


def _dbt(
    project: Path, env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    profiles = [] if args[0] == "--version" else ["--profiles-dir", str(project)]
    return subprocess.run(
        [CLIENT, *args, *profiles],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _mark(warehouse: Path) -> str:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        row = con.execute("select mark from main.marked").fetchone()
    finally:
        con.close()
    assert row is not None
    return str(row[0])


def test_each_call_runs_dbt_with_its_own_environment_in_one_warm_server(
    warm_dir: Path, project: Path, tmp_path: Path
) -> None:
    first_db, second_db = tmp_path / "first.duckdb", tmp_path / "second.duckdb"
    first = _dbt(project, _env(warm_dir, WAREHOUSE=str(first_db), MARK="one"), "run")
    second = _dbt(project, _env(warm_dir, WAREHOUSE=str(second_db), MARK="two"), "run")

    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Completed successfully" in first.stdout  # dbt's own output reaches the caller
    assert _mark(first_db) == "one"
    assert _mark(second_db) == "two"
    served = [TRACE.search(r.stderr) for r in (first, second)]
    assert all(served), [r.stderr for r in (first, second)]
    servers = {m.group(1) for m in served if m}
    children = {m.group(2) for m in served if m}
    assert len(servers) == 1  # the second call reused the server the first one started
    assert len(children) == 2  # each call had a fresh child
    assert (project / "target" / "run_results.json").exists()


def test_exit_codes_and_version_match_dbt(warm_dir: Path, project: Path) -> None:
    import dbt.version

    env = _env(warm_dir, WAREHOUSE=str(project / "w.duckdb"), MARK="x")
    version = _dbt(project, env, "--version")
    assert version.returncode == 0
    assert dbt.version.__version__ in version.stdout
    # The registry lookup is switched off in the server: no "latest" version line.
    assert "latest:" not in version.stdout

    # dbt's exit codes: 2 for a usage error, 1 for a failed node (dbt's documented contract).
    bad_flag = _dbt(project, env, "run", "--no-such-flag")
    assert bad_flag.returncode == 2
    assert "No such option" in bad_flag.stderr

    (project / "models" / "broken.sql").write_text("select * from no_such_table")
    failed = _dbt(project, env, "run")
    assert TRACE.search(failed.stderr)
    assert failed.returncode == 1
    assert "no_such_table" in failed.stdout


def test_sigint_to_the_client_cancels_the_dbt_run(warm_dir: Path, project: Path) -> None:
    env = _env(warm_dir, WAREHOUSE=str(project / "w.duckdb"), MARK="x", SLOW="1")
    assert _dbt(project, env, "--version").returncode == 0  # start the server first
    proc = subprocess.Popen(
        [CLIENT, "run", "--select", "slow", "--profiles-dir", str(project)],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    child = None
    deadline = time.monotonic() + 60
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = TRACE.search(line)
    assert match, line
    child = int(match.group(2))
    # Wait until dbt has started the model (its query is what must be interrupted).
    while time.monotonic() < deadline and not (project / "target" / "run").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert code != 0
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"dbt child {child} still running after the caller was interrupted")


def test_switched_off_or_unsafe_folder_runs_plain_dbt(project: Path, tmp_path: Path) -> None:
    import dbt.version

    unused = tmp_path / "unused"
    unused.mkdir(mode=0o700)
    env = _env(unused, WAREHOUSE=str(tmp_path / "w.duckdb"), MARK="cold")
    env[dbt_warm.WARM_ENV] = "0"
    cold = _dbt(project, env, "run")
    assert cold.returncode == 0, cold.stdout + cold.stderr
    assert not TRACE.search(cold.stderr)
    assert not list(unused.glob("*.sock"))  # no server was started
    assert _mark(tmp_path / "w.duckdb") == "cold"

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    unsafe = _env(shared, WAREHOUSE=str(tmp_path / "w.duckdb"), MARK="x")
    result = _dbt(project, unsafe, "--version")
    assert result.returncode == 0
    assert dbt.version.__version__ in result.stdout
    assert "running dbt directly" in result.stderr
    assert "chmod 700" in result.stderr
    assert not list(shared.glob("*.sock"))


def test_stop_server_ends_it_and_removes_the_socket(warm_dir: Path, project: Path) -> None:
    env = _env(warm_dir, WAREHOUSE=str(project / "w.duckdb"), MARK="x")
    first = _dbt(project, env, "--version")
    match = TRACE.search(first.stderr)
    assert match, first.stderr
    server = int(match.group(1))
    assert list(warm_dir.glob("*.sock"))
    assert dbt_warm.stop_server(warm_dir)
    for _ in range(100):
        try:
            os.kill(server, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the server did not exit when asked to stop")
    assert not list(warm_dir.glob("*.sock"))
    assert not dbt_warm.stop_server(warm_dir)  # nothing left to stop


def test_each_virtual_environment_gets_its_own_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two clones' venvs resolve to one interpreter binary; they must not share a server.

    Guards issue 20: the key was the interpreter's real path only, so a clone's dbt calls ran in
    another checkout's venv (and its code).
    """
    here = dbt_warm.server_key()
    monkeypatch.setattr(sys, "prefix", "/elsewhere/.venv")
    assert dbt_warm.server_key() != here
