"""The main job's HTML report is replaced whole: a browser open on the folder never shows half."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from xbot_assets.report import write_report


def _result() -> Any:
    """The smallest result ``write_report`` renders (what ``xbot run`` hands it)."""
    summary = {
        "from": "2026-01-01T00:00:00", "until": "2026-01-31T00:00:00", "posts": 2,
        "posts_by_account": {"xbot_sandbox": 2}, "measured_posts": 2, "follows": 0,
        "bot_mean_reward": 0.05, "random_mean_reward": 0.04, "bot_rewards": [0.1, 0.0],
        "random_rewards": [0.05, 0.03], "top_arms": [{"arm": "question:ai", "mean": 0.08}],
        "best_slots": [{"hour": 9, "mean": 0.07}], "posterior_means": {"question:ai": 0.08},
        "all_slots": [{"hour": "09:00", "mean": 0.07}],
    }  # fmt: skip
    return SimpleNamespace(
        summary=summary, seconds=1.0, runs_by_job={"post_job": 2}, deduplicated=0, failed_runs=[]
    )


def test_a_report_whose_write_fails_half_way_leaves_no_report_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = write_report(_result(), tmp_path / "ok")
    assert written.read_text(encoding="utf-8").endswith("</body></html>")

    def half_then_disk_full(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        with open(self, "w", encoding="utf-8") as f:
            f.write(text[: len(text) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_disk_full)
    folder = tmp_path / "failing"
    with pytest.raises(OSError, match="No space left"):
        write_report(_result(), folder)
    # written in place, the half-written report would be here under its final name
    assert sorted(p.name for p in folder.iterdir()) == []
