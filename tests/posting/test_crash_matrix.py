"""The crash matrix as a test: SIGKILL at each named point, then at random times and repeatedly.

The script ``benchmarks/crash_matrix.py`` runs the same with 100 rounds per point and per kill
mode, on SQLite and Postgres; these rounds stay small.
"""

from __future__ import annotations

import pytest

from benchmarks.crash_matrix import run_crash_matrix, run_kill_rounds
from xbot_assets.posting.crashpoints import CRASH_POINTS

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("posters", [1, 2])
def test_crash_matrix_loses_nothing_and_posts_nothing_twice(posters, tmp_path):
    rounds = 9  # threads at rounds 0, 4, 8: the kill hits parts 1, 2 and 3
    result = run_crash_matrix(rounds, posters=posters, workdir=tmp_path, seed=posters)
    points = result["points"]
    assert set(points) == set(CRASH_POINTS)
    for point, stats in points.items():
        assert stats["rounds"] == rounds
        # every round really killed the posting process at its point
        assert stats["killed"] == rounds * posters, (point, stats)
    # posts left in `posting` by a kill after the request went out are found on the timeline
    assert points["after_send"]["found"] + points["after_send"]["requeued"] >= rounds
    assert points["after_answer"]["found"] >= rounds
    # a kill after the claim (nothing sent) is re-queued as unsent: no guarded retry used
    assert points["after_claim"]["unsent"] >= rounds and points["after_claim"]["requeued"] == 0
    # a kill after the "sent" mark (possibly sent, not on X) takes the one guarded retry
    assert points["after_mark"]["requeued"] >= rounds and points["after_mark"]["found"] == 0
    assert result["duplicate_posts"] == 0
    assert result["duplicate_attempts_refused"] == 0
    assert result["lost_posts"] == 0 and result["stranded_posts"] == 0
    assert result["left_in_posting"] == 0
    assert result["broken_reply_chains"] == 0 and result["thread_parts_checked"] >= 6
    if posters == 1:  # the kill also hit the second and third part of a thread, at every point
        for stats in points.values():
            assert stats["killed_at_part_2"] >= 1 and stats["killed_at_part_3"] >= 1
    assert result["row_statuses"] == {"posted": result["queued_texts"]}
    assert result["posts_on_sandbox"] == result["queued_texts"]


@pytest.mark.parametrize("mode", ["repeated", "random"])
def test_repeated_and_random_time_kills_lose_nothing(mode, tmp_path):
    """Issue 17 item 1: the same post killed 2-3 times in a row (random named points or random
    times), and single kills at random times, SIGKILL of a real subprocess each time."""
    rounds = 6
    live_kills = 0
    # A random-time kill that lands after the process exited tests nothing; on a loaded machine
    # a batch of 6 can land only one, so batches run (each fully checked) until two have landed.
    for batch in range(4):
        result = run_kill_rounds(
            rounds, mode=mode, workdir=tmp_path / f"batch{batch}", seed=3 + batch
        )
        stats = result["stats"]
        assert stats["rounds"] == rounds
        if mode == "repeated":
            assert stats["kills"] >= 2 * rounds and stats["random_time_kills"] >= 1
        assert result["duplicate_posts"] == 0
        assert result["stranded_posts"] == 0
        assert result["lost_posts"] == 0 and result["left_in_posting"] == 0
        assert result["broken_reply_chains"] == 0
        assert result["posts_on_sandbox"] == result["queued_texts"]
        live_kills += stats["killed"]
        if live_kills >= 2:
            break
    assert live_kills >= 2, stats  # kills hit live posting processes
