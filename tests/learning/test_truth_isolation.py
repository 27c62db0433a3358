"""No decision path reads the sandbox's truth (expected rewards, the oracles, a post's rates).

Static: the decision packages import no oracle module and touch no ``expected_reward`` or
``.rates`` attribute. Dynamic: the real decision code (fit, Thompson choice, candidates, guard,
posting into the sandbox) runs a few simulated days with the truth rigged to raise.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DECISION_PACKAGES = ("engine", "learning", "content", "posting", "defs")
FORBIDDEN_MODULES = ("xbot_assets.sandbox.oracle", "xbot_assets.sandbox.oracle_greedy")
FORBIDDEN_ATTRIBUTES = {"expected_reward", "rates", "true_expected_reward", "oracle_greedy_choice"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            if any(n.startswith(FORBIDDEN_MODULES) for n in names):
                found.append(f"{path}:{node.lineno} imports {node.module}")
            if any(a.name in FORBIDDEN_ATTRIBUTES for a in node.names):
                found.append(f"{path}:{node.lineno} imports a truth function")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(FORBIDDEN_MODULES):
                    found.append(f"{path}:{node.lineno} imports {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(f"{path}:{node.lineno} reads .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_ATTRIBUTES - {"rates"}:
            found.append(f"{path}:{node.lineno} calls {node.id}")
    return found


def test_no_decision_module_imports_or_reads_the_truth() -> None:
    files = [
        f for pkg in DECISION_PACKAGES for f in sorted((ROOT / "xbot_assets" / pkg).rglob("*.py"))
    ]
    assert len(files) > 30
    problems = [v for f in files for v in _violations(f)]
    assert problems == []


def test_the_scan_catches_a_truth_read(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from xbot_assets.sandbox.oracle_greedy import oracle_greedy_choice\n"
        "def f(sandbox, post):\n    return sandbox.expected_reward(post, {}) + post.rates[0]\n"
    )
    assert len(_violations(bad)) >= 3


def test_decisions_run_with_the_truth_rigged_to_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import loop
    from xbot_assets.sandbox import oracle_greedy
    from xbot_assets.sandbox.platform import SandboxX

    def boom(*args: object, **kwargs: object) -> float:
        raise AssertionError("a decision path read the sandbox's truth")

    monkeypatch.setattr(SandboxX, "expected_reward", boom)
    monkeypatch.setattr(oracle_greedy, "true_expected_reward", boom)
    monkeypatch.setattr(oracle_greedy, "oracle_greedy_choice", boom)
    monkeypatch.setattr(loop, "oracle_greedy_choice", boom)
    for policy in ("ours", "thompson_beta"):
        run = loop.Loop("default", 3, 4, policy)
        next_refit = run.start
        posted = 0
        for index, slot in enumerate(run.slots):
            while next_refit <= slot:
                run.refit(next_refit)
                next_refit += loop.timedelta(hours=loop.REFIT_HOURS)
            arm, chosen, pos, n_acc = run.choose(slot, index)
            assert chosen is not None
            posted += run.post(slot, arm, chosen, pos, n_acc)
        assert posted >= 14
        assert run.models is not None and (policy != "ours" or run.models.posterior.posts > 5)
