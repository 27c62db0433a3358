"""The sql/views folder is the list of view assets; each file is checked on load."""

from __future__ import annotations

from pathlib import Path

import pytest

from xbot_assets.warehouse.views import discover_views, markdown_table

EXPECTED = {
    "vw_recent_posts",
    "vw_topics_perf_7d",
    "vw_time_of_day_perf_7d",
    "vw_learning_performance",
    "vw_bandit_performance",
    "vw_content_sources_perf",
}


def test_the_six_views_read_the_marts() -> None:
    views = {v.name: v for v in discover_views()}
    assert set(views) == EXPECTED
    assert views["vw_bandit_performance"].upstream_models == ["mart_arm_performance"]
    assert all(v.description for v in views.values())


def test_a_badly_named_or_unrooted_view_is_refused(tmp_path: Path) -> None:
    (tmp_path / "recent.sql").write_text("select 1 from marts.fct_posts")
    with pytest.raises(ValueError, match="vw_<lowercase_name>"):
        discover_views(tmp_path)
    (tmp_path / "recent.sql").unlink()
    (tmp_path / "vw_x.sql").write_text("select 1")
    with pytest.raises(ValueError, match="marts"):
        discover_views(tmp_path)


def test_markdown_preview_escapes_pipes() -> None:
    assert markdown_table(["a"], [("x|y",)]).splitlines()[-1] == "| x\\|y |"
