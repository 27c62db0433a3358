"""Text normalisation shared by the safety guard: fold the tricks people use to dodge filters.

Filters that match raw text are beaten by ``ＦＵＣＫ`` (fullwidth), ``fսck`` (Armenian/Cyrillic
look-alikes), ``fück`` (diacritics), ``f*ck``/``sh1t`` (leetspeak), ``fuuuuck`` (repetition) and
``f u c k`` (spacing). These helpers undo each trick so the matchers see the word underneath.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

# Look-alike letters from other scripts that render like Latin ones (a small, high-value subset of
# Unicode's confusables table: the letters seen in filter-evasion in practice).
_CONFUSABLES: Final[dict[str, str]] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ь": "b", "п": "n", "г": "r", "д": "d", "ц": "u",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ς": "c", "μ": "u", "ω": "w", "γ": "y",
    # Armenian and others
    "ս": "u", "օ": "o", "ց": "g", "հ": "h", "ո": "n", "ƒ": "f", "ı": "i", "ɡ": "g", "ʀ": "r",
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
    "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u",
    "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z", "ø": "o", "đ": "d", "ł": "l", "ß": "ss",
}  # fmt: skip
_CONFUSABLE_TABLE: Final = str.maketrans(_CONFUSABLES)

_LEET_I: Final = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
     "@": "a", "$": "s", "!": "i", "|": "i", "+": "t", "€": "e", "(": "c", "<": "c", "¡": "i"}
)  # fmt: skip
_LEET_L: Final = str.maketrans(
    {"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
     "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "(": "c", "<": "c", "¡": "i"}
)  # fmt: skip

# Characters that carry no visible glyph and are used to split words invisibly.
INVISIBLE_CHARS: Final[frozenset[str]] = frozenset(
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u2060\u2061\u2062"
    "\u2063\u2064\u3164\ufeff\uffa0"
)
BIDI_CONTROLS: Final[frozenset[str]] = frozenset(
    "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"
)

_RUN3 = re.compile(r"(.)\1{2,}")
_RUN2 = re.compile(r"(.)\1+")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w]+")
_THREAD_NUMBER = re.compile(
    r"^\s*\(?\d{1,2}\s*/\s*\d{0,2}\)?\s*|(?<!\s)\s*\(?\d{1,2}\s*/\s*\d{1,2}\)?\s*$"
)
"""A thread number at the start or end. The trailing form starts only where a run of spaces
starts (the look-behind): without it 100k spaces took quadratic time (issue 17 item 10)."""


def strip_invisible(text: str) -> str:
    """Remove zero-width, soft-hyphen and bidi control characters."""
    return "".join(c for c in text if c not in INVISIBLE_CHARS and c not in BIDI_CONTROLS)


def strip_marks(text: str) -> str:
    """Drop combining marks (``fück`` -> ``fuck``, ``f̶u̶c̶k̶`` -> ``fuck``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=8192)
def fold(text: str) -> str:
    """Casefold, NFKC (fullwidth, math letters), strip marks, map look-alikes, drop invisibles."""
    if text.isascii():
        return text.casefold()
    text = strip_invisible(unicodedata.normalize("NFKC", text))
    text = strip_marks(text).casefold()
    return text.translate(_CONFUSABLE_TABLE)


def deleet_variants(token: str) -> set[str]:
    """The readings of a leetspeak token (``1`` as ``i`` and as ``l``); unchanged without letters.

    A token made only of digits and symbols (``455``, ``2024``) is a number, not leetspeak.
    """
    if not any("a" <= c <= "z" for c in token):
        return {token}
    return {token.translate(_LEET_I), token.translate(_LEET_L)}


def letters_only(token: str) -> str:
    """Keep letters (drops separators such as ``.``, ``-``, ``_``, ``*``)."""
    return "".join(c for c in token if c.isalpha())


def repetition_variants(word: str) -> set[str]:
    """``fuuuuck`` -> {``fuuuuck``, ``fuck``, ``fuuck``}: undo stretching (runs of 3 or more)."""
    if not _RUN3.search(word):
        return {word}
    return {word, _RUN3.sub(r"\1", word), _RUN3.sub(r"\1\1", word), _RUN2.sub(r"\1", word)}


def remove_urls(text: str) -> str:
    """Drop explicit URLs (``https://...``, ``www....``)."""
    return _URL.sub(" ", text)


@lru_cache(maxsize=8192)
def for_dedup(text: str) -> str:
    """A canonical form for near-duplicate comparison.

    Folded, URLs and thread numbering (``1/5``) removed, punctuation to spaces, whitespace
    collapsed: two posts that differ only in those are the same post to a reader.
    """
    text = _THREAD_NUMBER.sub(" ", text)
    text = fold(remove_urls(text))
    return " ".join(_NON_WORD.sub(" ", text).split())
