"""The crash matrix as a test: SIGKILL at each of five points, 20 rounds each, then recovery.

The script ``benchmarks/crash_matrix.py`` runs the same with 100 rounds per point.
"""

from __future__ import annotations

import pytest

from benchmarks.crash_matrix import run_crash_matrix
from xbot_assets.posting.crashpoints import CRASH_POINTS

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("posters", [1, 2])
def test_crash_matrix_loses_nothing_and_posts_nothing_twice(posters, tmp_path):
    result = run_crash_matrix(20, posters=posters, workdir=tmp_path, seed=posters)
    points = result["points"]
    assert set(points) == set(CRASH_POINTS)
    for point, stats in points.items():
        assert stats["rounds"] == 20
        # every round really killed the posting process at its point
        assert stats["killed"] == 20 * posters, (point, stats)
    # posts left in `posting` by a kill after the request went out are found on the timeline
    assert points["after_send"]["found"] + points["after_send"]["requeued"] >= 20
    assert points["after_answer"]["found"] >= 20
    # a kill after the claim (nothing sent) is settled by one guarded retry, never blindly
    assert points["after_claim"]["requeued"] >= 20
    assert result["duplicate_posts"] == 0
    assert result["duplicate_attempts_refused"] == 0
    assert result["lost_posts"] == 0
    assert result["left_in_posting"] == 0
    assert result["broken_reply_chains"] == 0 and result["thread_parts_checked"] >= 10
    if posters == 1:  # the kill also hit the second and third part of a thread, at every point
        for stats in points.values():
            assert stats["killed_at_part_2"] >= 1 and stats["killed_at_part_3"] >= 1
    assert result["row_statuses"] == {"posted": result["queued_texts"]}
    assert result["posts_on_sandbox"] == result["queued_texts"]
