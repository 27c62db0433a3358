"""Every analyst notebook runs top to bottom on data from a short sandbox run, and only reads.

The run is the real main job (`xbot migrate` + `xbot run`) in a folder of the test's own; the
notebooks then execute in a real Jupyter kernel (nbclient) that inherits that environment, as an
analyst's would after `make run`. Any cell error fails the test.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from xbot_assets.warehouse.project import dbt_project

pytestmark = pytest.mark.xdist_group("notebooks")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CLEARED = (
    "DATABASE_URL",
    "WAREHOUSE_PATH",
    "REDIS_URL",
    "REDIS_PREFIX",
    "LIVE_POSTS",
    "POSTER",
    "GENERATOR",
    "OPENAI_API_KEY",
    "X_HANDLE",
    "SANDBOX_SCENARIO",
    "SANDBOX_SEED",
)


def store_fingerprint(db: Path) -> dict[str, tuple[int, str]]:
    """Row count and the latest change of every table: any write by a notebook alters it."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        out = {}
        for table in tables:
            count = con.execute(f'select count(*) from "{table}"').fetchone()[0]
            out[table] = (
                count,
                str(con.execute(f'select max(rowid) from "{table}"').fetchone()[0]),
            )
        return out


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 4-day main job in its own XBOT_HOME and DAGSTER_HOME; the process env points there."""
    if not dbt_project.manifest_path.exists():
        dbt_project.preparer.prepare(dbt_project)
    root = tmp_path_factory.mktemp("notebook_run")
    saved = {k: os.environ.get(k) for k in (*CLEARED, "APP_ENV", "XBOT_HOME", "DAGSTER_HOME")}
    for name in CLEARED:
        os.environ.pop(name, None)
    os.environ.update(
        APP_ENV="local", XBOT_HOME=str(root / "xbot_home"), DAGSTER_HOME=str(root / "dagster_home")
    )
    try:
        for args in (["migrate"], ["run", "--days", "4", "--no-progress"]):
            proc = subprocess.run(
                [sys.executable, "-m", "xbot_assets.cli", *args],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert proc.returncode == 0, f"xbot {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
        yield root
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_and_only_reads(short_run: Path, path: Path) -> None:
    db = short_run / "xbot_home" / "xbot.db"
    before = store_fingerprint(db)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()  # raises CellExecutionError on any failing cell
    conclusions = notebook.cells[-1].outputs
    text = "".join(str(o.get("data", {}).get("text/markdown", "")) for o in conclusions)
    assert text.strip().startswith("-"), f"{path.name}: the conclusions cell printed nothing"
    assert any(ch.isdigit() for ch in text), f"{path.name}: conclusions carry no figures"
    assert store_fingerprint(db) == before, f"{path.name} wrote to the durable store"
