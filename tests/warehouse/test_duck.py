"""Opening the warehouse waits out another process's DuckDB lock, then fails with a clear error."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from xbot_assets.warehouse import duck

HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_waits_for_the_lock_to_be_released(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    holder = _hold(path, 1.5)
    started = time.monotonic()
    try:
        with duck.warehouse(path) as con:
            assert con.execute("select 42").fetchone() == (42,)
    finally:
        holder.wait(timeout=30)
    assert time.monotonic() - started >= 0.5  # it really waited for the other process


def test_gives_up_with_the_file_name_after_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duck, "LOCK_WAIT_SECONDS", 0.5)
    path = tmp_path / "wh.duckdb"
    holder = _hold(path, 5)
    try:
        with pytest.raises(RuntimeError, match=r"wh\.duckdb.*Another process holds it"):
            duck.open_warehouse(path)
    finally:
        holder.kill()
        holder.wait(timeout=30)
