"""X's weighted length (twitter-text v3) at the edges: 280/281 with emoji, CJK, URLs, NFC."""

from __future__ import annotations

import unicodedata

import pytest

from xbot_assets.content.length import (
    MAX_WEIGHTED_LENGTH,
    fits,
    truncate_to_fit,
    urls_in,
    weighted_length,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("a" * 280, 280),
        ("a" * 281, 281),
        ("😀", 2),
        ("😀" * 140, 280),
        ("😀" * 141, 282),
        ("👨‍👩‍👧‍👦", 2),  # a ZWJ family sequence counts as one emoji
        ("🇺🇸", 2),
        ("👍🏽", 2),  # skin tone modifier
        ("日本", 4),
        ("日本" * 70, 280),
        ("한국어", 6),
        ("é", 1),
        ("e\u0301", 1),  # NFD input is normalised to NFC first
        ("https://example.com/" + "x" * 200, 23),
        ("see https://example.com/a and http://b.org", 4 + 23 + 5 + 23),
        ("example.com", 23),  # a bare domain is a link too
        ("Python ✅", 9),
    ],
)
def test_weighted_length_follows_twitter_text_v3(text: str, expected: int) -> None:
    assert weighted_length(text) == expected


def test_the_limit_is_280_weighted_not_280_characters() -> None:
    assert MAX_WEIGHTED_LENGTH == 280
    assert fits("a" * 280) and not fits("a" * 281)
    assert len("😀" * 141) == 141 and not fits("😀" * 141)  # 141 chars, but 282 weighted
    long_url = "https://example.com/" + "p" * 400
    text = "a" * 256 + " " + long_url
    assert len(text) > 600 and fits(text)  # 256 + 1 + 23 = 280
    assert not fits("a" * 257 + " " + long_url)


def test_nfc_and_nfd_spellings_count_the_same() -> None:
    nfd = "Cafe\u0301 " * 40
    assert weighted_length(nfd) == weighted_length(unicodedata.normalize("NFC", nfd))


def test_truncate_to_fit_cuts_at_a_word_and_fits() -> None:
    text = "word " * 100
    cut = truncate_to_fit(text)
    assert weighted_length(cut) <= 280 and cut.endswith("…")
    assert cut[:-1].rstrip().endswith("word")
    assert truncate_to_fit("short") == "short"
    assert weighted_length(truncate_to_fit("😀" * 300)) <= 280


def test_urls_in_finds_links_with_and_without_scheme() -> None:
    assert urls_in("go to example.com or https://x.org/a?b=1") == [
        "example.com",
        "https://x.org/a?b=1",
    ]
    assert urls_in("no links, version 3.11.2 here") == []
