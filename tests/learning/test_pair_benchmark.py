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


def test_month_pairs_each_runs_thirty_day_block_and_refuses_runs_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--month K`` pairs the K-th block of ``by_month`` (and the oracle's), so a 90-day
    figure can be read month by month; a run recorded before ``by_month`` existed is refused
    with what to do, and nothing is written."""

    def write(path: Path, policy: str, months: dict[int, list[float]]) -> None:
        runs = [{"scenario": "default", "seed": s, "days": 90, "policies": {policy: {
            "mean_expected_reward": float(np.mean(m)), "by_month": m}}}
            for s, m in months.items()]  # fmt: skip
        path.write_text(json.dumps(runs))

    write(tmp_path / "a.json", "ours", {0: [0.05, 0.09, 0.10], 1: [0.06, 0.08, 0.11]})
    write(tmp_path / "o.json", "oracle_greedy", {0: [0.1, 0.1, 0.1], 1: [0.1, 0.1, 0.12]})
    out = tmp_path / "m.json"
    oracle = ["--days", "90", "--oracle", str(tmp_path / "o.json")]
    pair = ["--pair", str(tmp_path / "a.json"), f"{tmp_path / 'o.json'}:oracle_greedy"]
    assert main([*pair, *oracle, "--month", "3", "--out", str(out)]) == 0
    third = json.loads(out.read_text())
    assert third["a"] == pytest.approx(0.105) and third["oracle"] == pytest.approx(0.11)
    assert third["a_ratio_to_oracle"] == pytest.approx(0.105 / 0.11, abs=1e-4)
    assert third["a_minus_b"]["mean"] == pytest.approx(-0.005)
    assert main([*pair, *oracle, "--month", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["a"] == pytest.approx(0.055)

    _runs(tmp_path / "old.json", {0: 0.1, 1: 0.1}, days=90)  # no by_month
    out.unlink()
    assert main(["--pair", str(tmp_path / "old.json"), str(tmp_path / "a.json"), "--days", "90",
                 "--month", "1", "--out", str(out)]) == 2  # fmt: skip
    assert "has no by_month" in capsys.readouterr().err and not out.exists()
    assert main([*pair, *oracle, "--month", "4", "--out", str(out)]) == 2
    assert "has 3 months" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit) as exc:
        main([*pair, "--month", "0"])
    assert exc.value.code == 2


def test_the_loop_records_each_months_figure_of_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """``loop.py``'s ``by_month``: each post's day of the run, averaged per block and over the
    streams; the blocks, weighted by their posts, give the run's own figure."""
    from benchmarks import loop

    run = loop.Loop("default", 0, 4, "random").run()
    assert len(run.days) == len(run.rewards) == 16
    assert run.days == sorted(run.days) and run.days[0] == 0 and run.days[-1] == 3
    two_days = [float(np.mean([r for r, d in zip(run.rewards, run.days, strict=True)
                               if d // 2 == m])) for m in (0, 1)]  # fmt: skip
    assert loop.by_month([run]) == pytest.approx([float(np.mean(run.rewards))], abs=1e-6)
    monkeypatch.setattr(loop, "MONTH_DAYS", 2)
    assert loop.by_month([run]) == pytest.approx(two_days, abs=1e-6)
    other = loop.RunResult(rewards=[0.0, 1.0], days=[0, 3])
    assert loop.by_month([run, other]) == pytest.approx(
        [(two_days[0] + 0.0) / 2, (two_days[1] + 1.0) / 2], abs=1e-6
    )
