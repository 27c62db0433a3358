"""The learning benchmark's quick mode runs end to end on the sandbox oracle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_mode_runs_and_reports_every_policy(tmp_path: Path) -> None:
    out = tmp_path / "learning_quick.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "learning.py"),
            "--quick",
            "--seeds",
            "1",
            "--no-plot",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["mode"] == "quick" and results["checkpoints"] == [100, 720]
    assert set(results["scenarios"]) == {"default", "drift", "cold_start"}
    for scenario in results["scenarios"].values():
        policies = scenario["policies"]
        assert {"random", "seed_heuristic", "mabwiser_ts", "ours_independent"} <= set(policies)
        for summary in policies.values():
            regret = summary["regret"]
            assert 0 <= regret["100"]["mean"] <= regret["720"]["mean"]
        # Learning beats choosing at random by a wide margin.
        assert policies["ours_independent"]["regret"]["720"]["mean"] < (
            0.8 * policies["random"]["regret"]["720"]["mean"]
        )
    assert results["goals"] and all("met" in goal for goal in results["goals"])
    assert (
        "core:ThompsonSampler(discount=0.9999)" in results["speed_us_per_select_and_update_24_arms"]
    )
