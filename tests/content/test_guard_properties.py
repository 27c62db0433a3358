"""Property tests: the guard never raises on any text and its verdict is always consistent."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xbot_assets.content.length import weighted_length
from xbot_assets.content.safety import REASONS, check, check_thread

any_text = st.text(max_size=400)
PIECES = [
    *"abcdefghijklmnopqrstuvwxyz 0123456789@$!*#.-_/:",
    "\u200b",
    "\u202e",
    "\u200d",
    "😀",
    "日",
    "é",
    "\u0301",
    "а",
    "\n",
    "https://",
    "sk-",
    "fuck",
    "How to ",
    "?",
]
tricky_text = st.lists(st.sampled_from(PIECES), max_size=120).map("".join)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(any_text, tricky_text))
def test_check_never_raises_and_is_consistent(text: str) -> None:
    verdict = check(text)
    assert verdict.ok == (verdict.reasons == [])
    assert set(verdict.reasons) <= set(REASONS)
    assert verdict.reasons == sorted(set(verdict.reasons))
    if text.strip():
        assert verdict.weighted_length == weighted_length(text)
        assert ("too_long" in verdict.reasons) == (weighted_length(text) > 280)
    else:
        assert verdict.reasons == ["empty"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tricky_text, max_size=10))
def test_check_thread_never_raises(parts: list[str]) -> None:
    verdict = check_thread(parts)
    assert set(verdict.reasons) <= set(REASONS)
    if not 2 <= len(parts) <= 8:
        assert not verdict.ok
