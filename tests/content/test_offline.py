"""The offline generator: every format x topic, deterministic, varied, guard-clean, no network."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator

import pytest

from xbot_assets.content.base import GenerationRequest, Generator
from xbot_assets.content.length import weighted_length
from xbot_assets.content.offline import OfflineGenerator
from xbot_assets.content.safety import check, check_thread
from xbot_assets.content.threads import ThreadError, make_thread, number_parts, strip_numbering
from xbot_assets.content.vocabulary import (
    ALL_TOPICS,
    DEFAULT_TOPICS,
    FORMATS,
    Arm,
    ArmError,
    all_arms,
    infer_arm,
    infer_format,
    infer_topic,
)

GEN = OfflineGenerator()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a socket or resolve a name fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the offline generator tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield


def test_socket_blocker_really_blocks(no_network: None) -> None:
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("127.0.0.1", 9))


@pytest.mark.parametrize("arm", all_arms(ALL_TOPICS), ids=str)
def test_every_arm_reads_as_itself_fits_and_passes_the_guard(arm: Arm, no_network: None) -> None:
    assert isinstance(GEN, Generator)
    for seed in range(3):
        result = GEN.generate(GenerationRequest(arm=arm, seed=seed))
        assert result.ok and result.generator == "offline" and result.usage.cost_usd == 0
        assert result.arm == str(arm) and result.format == arm.format and result.topic == arm.topic
        assert infer_arm(result.parts) == str(arm), result.parts
        assert all(weighted_length(p) <= 280 for p in result.parts)
        verdict = check_thread(result.parts) if arm.format == "thread" else check(result.parts[0])
        assert verdict.ok, (result.parts, verdict.details)
        assert result.hook and result.parts[0].startswith(result.hook.split(" ", 1)[0])


def test_same_request_same_post_and_different_seeds_vary(no_network: None) -> None:
    request = GenerationRequest(arm="list:python", seed=11)
    assert GEN.generate(request) == GEN.generate(request)
    texts = {GEN.generate(GenerationRequest(arm="list:python", seed=s)).text for s in range(30)}
    assert len(texts) >= 25


def test_200_ordinary_posts_across_formats_and_topics_pass_the_guard(no_network: None) -> None:
    """Posts generated in sequence, each checked against the 40 before it (a realistic window)."""
    history: list[str] = []
    per_arm: Counter[str] = Counter()
    rejected: list[tuple[str, list[str]]] = []
    arms = all_arms(DEFAULT_TOPICS)
    for index in range(200):
        arm = arms[index % len(arms)]
        recent = tuple(history[-40:])
        result = GEN.generate(
            GenerationRequest(arm=arm, seed=index // len(arms), avoid_texts=recent)
        )
        if arm.format == "thread":
            verdict = check_thread(result.parts, recent=recent)
        else:
            verdict = check(result.parts[0], recent=recent)
        if not verdict.ok or infer_arm(result.parts) != str(arm):
            rejected.append((result.text, verdict.reasons))
        history.extend(result.parts)
        per_arm[str(arm)] += 1
    assert rejected == []
    assert set(per_arm) == {str(a) for a in arms} and min(per_arm.values()) >= 8
    assert len(set(history)) > 0.9 * len(history)


def test_threads_have_2_to_8_parts_hook_first_numbered_or_not(no_network: None) -> None:
    for parts_wanted in range(2, 9):
        result = GEN.generate(GenerationRequest(arm="thread:ai", seed=3, thread_parts=parts_wanted))
        assert len(result.parts) == parts_wanted
        assert [p.split(" ", 1)[0] for p in result.parts] == [
            f"{i}/{parts_wanted}" for i in range(1, parts_wanted + 1)
        ]
        assert result.hook in result.parts[0]
    plain = GEN.generate(GenerationRequest(arm="thread:ai", seed=3, numbered_threads=False))
    assert 2 <= len(plain.parts) <= 8
    assert not any(p[0].isdigit() and "/" in p[:4] for p in plain.parts)
    clamped = GEN.generate(GenerationRequest(arm="thread:python", seed=1, thread_parts=20))
    assert len(clamped.parts) == 8


def test_thread_helpers() -> None:
    assert number_parts(["a", "2/9 b"]) == ["1/2 a", "2/2 b"]
    assert strip_numbering("(3/5) text") == "text"
    with pytest.raises(ThreadError, match="2-8"):
        make_thread(["only one"], numbered=True)
    with pytest.raises(ThreadError):
        make_thread([f"p{i}" for i in range(9)], numbered=False)
    fitted = make_thread(["hook", "x " * 200], numbered=True, fit=True)
    assert all(weighted_length(p) <= 280 for p in fitted) and fitted[1].startswith("2/2 ")


def test_text_conventions_mirror_the_shared_vocabulary() -> None:
    assert FORMATS == ("single", "thread", "question", "list", "hot_take", "how_to")
    assert infer_format("How to win") == "how_to"
    assert infer_format("Unpopular opinion: tabs") == "hot_take"
    assert infer_format("Intro\n1. a\n2) b\n- c") == "list"
    assert infer_format("Why?") == "question"
    assert infer_format("Why?", has_self_replies=True) == "thread"
    assert infer_format("Plain.") == "single"
    assert infer_topic("pandas and numpy and an LLM") == "python"
    assert infer_topic("one LLM, one pandas") == "ai"  # ties go to the first topic listed
    assert infer_topic("nothing here") == "other"
    assert infer_topic("Run an A/B test in SQL") == "data_science"
    assert str(Arm.parse("how_to:python")) == "how_to:python"
    with pytest.raises(ArmError, match="how_to:python"):
        Arm.parse("how_to-python")
    with pytest.raises(ArmError, match="unknown format"):
        Arm.parse("essay:python")
    assert len(all_arms()) == 24
