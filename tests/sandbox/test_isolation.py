"""The sandbox stays sealed: it imports nothing from the rest of xbot, and no bot code reads the
benchmark-only oracle (a policy that saw the hidden truth would be cheating)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "xbot_assets"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_sandbox_imports_nothing_else_from_xbot() -> None:
    for path in (PACKAGE / "sandbox").rglob("*.py"):
        outside = {
            name for name in _imports(path)
            if name.startswith("xbot_assets") and not name.startswith("xbot_assets.sandbox")
        }  # fmt: skip
        assert not outside, f"{path.name} imports {sorted(outside)}"


def test_no_bot_code_imports_the_oracle() -> None:
    for path in PACKAGE.rglob("*.py"):
        if "sandbox" in path.relative_to(PACKAGE).parts[:1]:
            continue
        assert not any("oracle" in name for name in _imports(path) if "sandbox" in name), (
            f"{path} imports the benchmark-only sandbox oracle"
        )
    init = (PACKAGE / "sandbox" / "__init__.py").read_text()
    assert "oracle" not in {n.split(".")[-1] for n in _imports(PACKAGE / "sandbox" / "__init__.py")}
    assert "Oracle" not in init.split('"""')[-1]
