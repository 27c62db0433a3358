"""The adversarial corpus: every item gets the verdict written next to it by hand."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from xbot_assets.content.safety import REASONS, GuardConfig, check

CORPUS = Path(__file__).parent / "data" / "adversarial_corpus.jsonl"
ITEMS: list[dict[str, Any]] = [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines()]


def test_corpus_is_large_and_covers_every_kind_of_attack() -> None:
    assert len(ITEMS) >= 200
    categories = Counter(item["category"] for item in ITEMS)
    for needed in (
        "profanity",
        "slur",
        "pii",
        "secret",
        "injection",
        "bidi",
        "length",
        "ordinary",
        "markup",
        "mixed_script",
        "near_duplicate",
    ):
        assert categories[needed] >= 3, needed
    lengths = [i for i in ITEMS if i["category"] == "length"]
    assert any(i["ok"] for i in lengths) and any(not i["ok"] for i in lengths)
    expected_codes = {code for item in ITEMS for code in item["reasons"]}
    assert expected_codes <= set(REASONS), expected_codes - set(REASONS)


@pytest.mark.parametrize(
    "item", ITEMS, ids=[f"{i:03d}-{item['category']}" for i, item in enumerate(ITEMS)]
)
def test_corpus_item_gets_its_expected_verdict(item: dict[str, Any]) -> None:
    config = GuardConfig.from_mapping(item.get("config"))
    verdict = check(item["text"], recent=item.get("recent", ()), config=config)
    if item["ok"]:
        assert verdict.ok, (item["text"], verdict.reasons, verdict.details)
        assert verdict.reasons == []
    else:
        assert not verdict.ok, item["text"]
        missing = set(item["reasons"]) - set(verdict.reasons)
        assert not missing, (item["text"], verdict.reasons, verdict.details)


def test_secrets_and_personal_data_never_appear_in_verdict_details() -> None:
    for item in ITEMS:
        if item["category"] not in ("secret", "pii"):
            continue
        verdict = check(item["text"])
        shown = " ".join(verdict.details)
        for token in item["text"].split():
            if len(token) >= 8 and any(c.isdigit() for c in token):
                assert token not in shown, (token, shown)
