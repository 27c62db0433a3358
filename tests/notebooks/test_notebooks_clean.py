"""Notebooks are committed with outputs stripped, and open with what they answer."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_the_four_analyst_notebooks_exist() -> None:
    names = [p.stem for p in NOTEBOOKS]
    assert names == ["01_performance", "02_scorer", "03_posteriors", "04_policy_lab"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_stripped(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: strip outputs before committing"
            assert cell.execution_count is None, f"{path.name}: strip execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_opens_with_its_question_and_ends_with_computed_conclusions(path: Path) -> None:
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].cell_type == "markdown" and "answered" in cells[0].source.lower()
    assert cells[-2].cell_type == "markdown" and "conclusions" in cells[-2].source.lower()
    assert cells[-1].cell_type == "code", "conclusions must be computed, not typed in"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_writes_to_the_durable_store(path: Path) -> None:
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    for forbidden in ("DurableStore", "set_config", "enqueue", "upsert", "insert into", "delete "):
        assert forbidden not in source, f"{path.name} must only read ({forbidden!r} found)"
