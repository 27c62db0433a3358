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


def _learning_bench() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_lb", ROOT / "benchmarks" / "learning.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["_lb"] = module
    spec.loader.exec_module(module)
    return module


def test_goals_skip_policies_that_were_not_run() -> None:
    """--policies random,thompson_beta used to crash with KeyError: 'mabwiser_ts'."""
    bench: object = _learning_bench()
    curve = {"regret": {"100": {"mean": 1.0, "p90": 2.0}, "720": {"mean": 3.0, "p90": 4.0}}}
    results = {
        "scenarios": {
            s: {"policies": {"random": curve, "thompson_beta": curve}} for s in ("default", "drift")
        },
        "speed_us_per_select_and_update_24_arms": {},
    }
    goals = bench.evaluate_goals(results, 720)  # type: ignore[attr-defined]
    assert goals and all(g["met"] is None and "not run" in g["skipped"] for g in goals)


def test_platform_environment_punishes_repetition() -> None:
    """The platform mode posts real texts: the same topic again soon is worth less."""
    bench: object = _learning_bench()
    tired = bench.PlatformAudience("default", 0, pool_size=4)  # type: ignore[attr-defined]
    fresh = bench.PlatformAudience("default", 0, pool_size=4)  # type: ignore[attr-defined]
    ai, python = tired.arms.index("single:ai"), tired.arms.index("single:python")
    for t in range(3):
        _weighted, impressions = tired.pull(ai, t)
        assert impressions >= 1
        fresh.pull(python, t)
    fresh.used["single:ai"] = tired.used["single:ai"]  # both would post the same text next
    # Same text, same time: only the history differs (three ai posts in the last hours).
    assert tired.expected_rates(3)[ai] < 0.8 * fresh.expected_rates(3)[ai]
