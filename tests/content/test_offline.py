"""The offline generator: every format x topic, deterministic, varied, guard-clean, no network."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from itertools import combinations

import pytest

from xbot_assets.content.base import GenerationRequest, Generator
from xbot_assets.content.length import weighted_length
from xbot_assets.content.offline import OfflineGenerator
from xbot_assets.content.offline_bank import BANKS, HOT_TAKE_PREFIXES, QUESTION_FRAMES
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
    topic_hits,
)
from xbot_assets.sandbox.features import classify_format, classify_topic
from xbot_assets.sandbox.state import words_of
from xbot_assets.store.hot.dedup import content_hash

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


# Distinct texts (content hashes) over seeds 0-399, measured when the bank was enlarged (topics in
# the order ai, python, data_science, startups, productivity, career, open_source, devops):
#   single   [360, 362, 366, 371, 341, 358, 368, 345]   (was 309-344)
#   thread   [400 x 8]                                  (was 400)
#   question [187, 195, 201, 184, 157, 167, 161, 169]   (was 28-45: 5 questions x 5 frames)
#   list     [398-400]                                  (was 386-400)
#   hot_take [334, 308, 309, 310, 296, 303, 299, 304]   (was 164-230)
#   how_to   [391-398]                                  (was 334-386)
# The store never posts a text twice and the audience penalises near-duplicates, so an account
# that keeps to its favourite arms for 90 days at 4 posts a day needs this much fresh text.
FRESH_SEEDS = 400
MIN_DISTINCT = 250
MIN_DISTINCT_QUESTIONS = 150


@pytest.mark.slow
@pytest.mark.parametrize("arm", all_arms(ALL_TOPICS), ids=str)
def test_every_arm_has_fresh_text_for_a_90_day_account(arm: Arm, no_network: None) -> None:
    """400 seeds: enough distinct texts; each reads as its arm, fits and passes the guard."""
    distinct: set[str] = set()
    for seed in range(FRESH_SEEDS):
        parts = GEN.generate(GenerationRequest(arm=arm, seed=seed)).parts
        text = " ".join(parts)
        key = content_hash(text)
        assert infer_arm(parts) == str(arm), (seed, parts)
        # The sandbox's own reading (it keeps its own copy of the conventions) agrees.
        assert classify_topic(parts[0]) == arm.topic, (seed, parts)
        assert classify_format(parts[0], is_thread=len(parts) > 1) == arm.format, (seed, parts)
        assert all(weighted_length(p) <= 280 for p in parts), (seed, parts)
        if key not in distinct:  # the guard is deterministic: check each distinct text once
            verdict = check_thread(parts) if arm.format == "thread" else check(parts[0])
            assert verdict.ok, (seed, parts, verdict.details)
            distinct.add(key)
    wanted = MIN_DISTINCT_QUESTIONS if arm.format == "question" else MIN_DISTINCT
    assert len(distinct) >= wanted, f"{arm}: {len(distinct)} distinct texts over {FRESH_SEEDS}"


def _jaccard(a: str, b: str) -> float:
    wa, wb = words_of(a), words_of(b)
    return len(wa & wb) / len(wa | wb)


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_questions_and_takes_of_a_topic_are_not_rewordings_of_each_other(topic: str) -> None:
    """The audience calls two posts near-duplicates at a word Jaccard of 0.6 (a week's window)."""
    bank = BANKS[topic]
    for slot in (bank.questions, bank.takes):
        close = [(a, b, round(_jaccard(a, b), 2)) for a, b in combinations(slot, 2)]
        assert [c for c in close if c[2] >= 0.6] == []


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_the_bank_is_big_enough_and_every_phrase_names_only_its_topic(topic: str) -> None:
    bank = BANKS[topic]
    default = topic in DEFAULT_TOPICS
    minimum = {
        "questions": 15 if default else 12,
        "takes": 15 if default else 12,
        "tips": 16 if default else 12,
        "facts": 10 if default else 8,
        "goals": 10 if default else 8,
        "subjects": 10 if default else 8,
    }
    for slot, least in minimum.items():
        phrases: tuple[str, ...] = getattr(bank, slot)
        assert len(phrases) >= least, (slot, len(phrases))
        assert len(set(phrases)) == len(phrases), slot
        for phrase in phrases:
            hits = topic_hits(phrase)
            others = {t: n for t, n in hits.items() if n and t != topic}
            assert hits[topic] >= 1 and not others, (slot, phrase, others)
    assert all(q.endswith("?") for q in bank.questions)
    assert all(any(ch.isdigit() for ch in fact) for fact in bank.facts)


def test_shared_frames_carry_no_topic_and_hot_takes_start_as_the_sandbox_reads_them() -> None:
    assert len(QUESTION_FRAMES) >= 10
    for frame in QUESTION_FRAMES:
        assert not any(topic_hits(frame).values()), frame
    assert {p.strip().lower() for p in HOT_TAKE_PREFIXES} <= {"hot take:", "unpopular opinion:"}


@pytest.mark.slow
@pytest.mark.parametrize("topic", ["ai", "career"])
def test_two_threads_a_day_for_a_month_stay_fresh_for_the_guard(
    topic: str, no_network: None
) -> None:
    """An account that posts a thread on one topic twice a day keeps getting threads the guard
    accepts. The week's earlier threads are the guard's ``recent`` (its 7-day window), as in
    the refill. Measured: 224 of 300 candidates refused and 14 slots with none accepted when
    hooks and endings were fixed phrases and the generator saw only 50 of the window's texts;
    0 after."""
    from xbot_assets.content.candidates import generate_candidates

    posted: list[tuple[int, tuple[str, ...]]] = []
    refused = dry = 0
    for slot in range(60):
        week = [part for at, parts in posted if slot - at <= 14 for part in parts]
        batch = generate_candidates(GEN, f"thread:{topic}", n=5, base_seed=slot * 1000, recent=week)
        accepted = [c for c in batch if c.accepted]
        refused += len(batch) - len(accepted)
        if accepted:
            posted.append((slot, accepted[0].parts))
        else:
            dry += 1
    assert dry == 0
    assert refused <= 15, refused


def test_the_generator_is_told_the_guards_whole_window() -> None:
    """The generator avoids what the guard will refuse: every recent text, not a slice of them
    (the slice was the oldest 50 of a newest-first list, so the newest posts were missed)."""
    from xbot_assets.content.base import GenerationResult
    from xbot_assets.content.candidates import generate_candidates

    seen: list[tuple[str, ...]] = []

    class Recording:
        name = "recording"

        def generate(self, request: GenerationRequest) -> GenerationResult:
            seen.append(request.avoid_texts)
            return GEN.generate(request)

    recent = [f"post number {i} about nothing in particular" for i in range(200)]
    generate_candidates(Recording(), "single:ai", n=2, recent=recent)
    assert set(recent) <= set(seen[0])
    assert set(recent) <= set(seen[1]) and len(seen[1]) > len(seen[0])


def test_a_threads_counts_match_its_parts(no_network: None) -> None:
    """ "5 things nobody told me" is followed by 5 tips and "in 7 posts" by 7 posts: a hook or
    ending that counts the thread's items counts its tips (posts less hook and ending)."""
    import re

    seen_items = seen_posts = 0
    for seed in range(300):
        for parts_wanted in (None, 2, 3, 8):
            request = GenerationRequest(arm="thread:python", seed=seed, thread_parts=parts_wanted)
            parts = GEN.generate(request).parts
            text = " ".join(strip_numbering(p) for p in (parts[0], parts[-1]))
            for count in re.findall(r"(\d+) (?:things|steps|moves|would you|\w+ lessons)", text):
                assert int(count) == len(parts) - 2 >= 2, parts
                seen_items += 1
            for count in re.findall(r"in (\d+) posts", text):
                assert int(count) == len(parts), parts
                seen_posts += 1
    assert seen_items >= 50 and seen_posts >= 50, (seen_items, seen_posts)
