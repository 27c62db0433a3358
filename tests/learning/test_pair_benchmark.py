"""``benchmarks/pair.py``: the committed way to pair and pool the loop benchmark's per-seed
figures (the README's "minus base" intervals)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchmarks.pair import SourceError, compare, main, per_seed

ROOT = Path(__file__).resolve().parents[2]
OPENING = ROOT / "benchmarks" / "results" / "loop_opening_experiments.json"


def _runs(path: Path, figures: dict[int, float], *, policy: str = "ours", days: int = 30) -> None:
    runs = [
        {"scenario": "default", "seed": s, "days": days,
         "policies": {policy: {"mean_expected_reward": v}}}
        for s, v in figures.items()
    ]  # fmt: skip
    runs.append({"scenario": "drift", "seed": 0, "days": days,
                 "policies": {policy: {"mean_expected_reward": 9.0}}})  # fmt: skip
    path.write_text(json.dumps(runs))


def test_pairs_by_seed_and_gives_the_t_interval(tmp_path: Path) -> None:
    """Seeds are matched (not positions), other scenarios ignored, and the interval is the
    t distribution's over the paired differences; the ratios use the oracle on the same seeds."""
    a = {0: 0.10, 1: 0.12, 2: 0.09, 3: 0.11}
    b = {3: 0.10, 2: 0.10, 1: 0.10, 0: 0.095, 7: 0.5}  # seed 7 has no partner: left out
    _runs(tmp_path / "a.json", a)
    _runs(tmp_path / "b.json", b)
    _runs(tmp_path / "o.json", {s: 0.2 for s in range(8)}, policy="oracle_greedy")

    def load(spec: str) -> dict[int, float]:
        return per_seed(spec, scenario="default", days=30)

    result = compare(
        [(load(str(tmp_path / "a.json")), load(str(tmp_path / "b.json")))],
        load(f"{tmp_path / 'o.json'}:oracle_greedy"),
    )
    diff = np.array([a[s] - b[s] for s in range(4)])
    se = diff.std(ddof=1) / 2
    half = stats.t.ppf(0.975, 3) * se
    assert result["seeds"] == [0, 1, 2, 3]
    assert result["a_minus_b"]["mean"] == pytest.approx(diff.mean(), abs=1e-5)
    assert result["a_minus_b"]["ci95"] == pytest.approx([diff.mean() - half, diff.mean() + half],
                                                        abs=1e-5)  # fmt: skip
    assert result["a_minus_b"]["seeds_positive"] == 3
    assert result["a_ratio_to_oracle"] == pytest.approx(0.105 / 0.2, abs=1e-4)


def test_pools_disjoint_pairs_and_refuses_a_seed_twice(tmp_path: Path) -> None:
    first = ({0: 0.1, 1: 0.2}, {0: 0.0, 1: 0.1})
    second = ({8: 0.3, 9: 0.1}, {8: 0.2, 9: 0.2})
    pooled = compare([first, second])
    assert pooled["seeds"] == [0, 1, 8, 9]
    assert pooled["a_minus_b"]["mean"] == pytest.approx(0.05)
    assert pooled["a_minus_b"]["seeds_positive"] == 3
    with pytest.raises(SourceError, match="a seed appears in two pairs"):
        compare([first, first])
    with pytest.raises(SourceError, match="no common seeds"):
        compare([({0: 0.1}, {1: 0.1})])


def test_the_cli_recomputes_the_published_24_seed_pool(tmp_path: Path) -> None:
    """The opening's 24-seed pool in results/loop_opening_experiments.json (written by a script
    outside the repository) is what pair.py computes from the three rows' per-seed figures."""
    rows = ["O2_P30:default:30", "C2_P30:default:30", "D2_P30:default:30"]
    args = []
    for row in rows:
        args += ["--pair", f"{OPENING}#{row}", f"{OPENING}#{row}@base"]
    out = tmp_path / "pool.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pair.py"), *args, "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    published = json.loads(OPENING.read_text())["runs"]["O2_P30:default:30"]["pooled_24_seeds"]
    result = json.loads(out.read_text())
    assert len(result["seeds"]) == 24
    assert result["a_minus_b"]["mean"] == pytest.approx(published["minus_base"], abs=1e-5)
    assert result["a_minus_b"]["ci95"] == pytest.approx(published["ci95"], abs=1e-5)
    assert result["a_minus_b"]["seeds_positive"] == published["seeds_up"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/nonexistent/missing.json", "no such file"),
        (f"{OPENING}#NOPE", "no row 'NOPE'"),
        (f"{OPENING}#O2_P30:default:30@other", "after '@' only 'base'"),
        (str(OPENING), "not raw runs"),
    ],
)
def test_a_bad_source_exits_2_with_what_to_give_and_writes_nothing(
    tmp_path: Path, source: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "none.json"
    code = main(["--pair", source, f"{OPENING}#O2_P30:default:30", "--out", str(out)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
