"""Profanity and slur detection on normalised text: a word list plus a model.

Layer 1 is better-profanity's word list (with its leetspeak entries), trimmed of words a tech
account uses innocently (``len``, ``strip``, ``slope``, ``dummy``, ``kill``, ``Guido``...) and
extended with slurs it lacks. Matching runs on every reading of each token that
:mod:`xbot_assets.content.normalize` produces (look-alikes, leetspeak, stretching, masking with
``*``, spaced-out letters, words split in two), always on whole tokens so ``class`` and
``Scunthorpe`` stay clean. Layer 2 is alt-profanity-check, a linear model trained on insults,
which catches abuse phrased without any listed word ("go kill yourself").
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from better_profanity.utils import get_complete_path_of_file, read_wordlist

from xbot_assets.content.normalize import (
    deleet_variants,
    fold,
    letters_only,
    remove_urls,
    repetition_variants,
)


def _word_set(text: str) -> frozenset[str]:
    """Words written as a whitespace-separated block (easier to read and extend than a list)."""
    return frozenset(text.split())


# Words in better-profanity's list that are ordinary in tech, statistics or names of people.
BENIGN_WORDS: Final[frozenset[str]] = _word_set(
    """
    len slope dummy facial organ ovary ovum ovums hemp pot rum vodka drunk stupid ugly god
    omg lmao hell kill sniper thrust stroke strip maxi revue stoned weed pawn erect seaman
    seamen tramp fat wad woody willy junkie junky hump humped virgin naked gay gays queer
    queers homo knob mams guido paddy reich arian yury loin loins quicky whiz wang prude
    prig fubar foobar screw suck sucked pasty pastie flange uzi hookah snatch racy dopey
    doofus ninny nimrod organ urinal drunk toke hooch hootch hoar xx lust lusty meth pms
    herp undies tinkle potty poop pee peepee jerk jerked vixen souse soused hobag
    lesbian lesbians transsexual screwed screwing sucking sucks vomit
    """
)

# Slurs (hate against a group): reported as ``slur`` rather than ``profanity``.
SLURS: Final[frozenset[str]] = _word_set(
    """
    nigger niggers nigga niggas niggaz niggah nigg nig niglet nigg3r nigg4h n1g n1gg n1gga
    n1gger faggot faggots fag fags fagg fagged faggit fagot fagots faggs kike kikes kyke
    spic spick spik spiks chink chinks gook gooks wetback wetbacks coon coons retard retards
    retarded tard tards rtard ritard tranny trannies dyke dykes paki pakis jap japs wop wops
    polack kraut krauts honky injun hebe heeb wigger raghead ragheads towelhead towelheads
    beaner beaners zipperhead sandnigger gypo chinaman spook spooks shemale
    """
)

# Strong stems that are never innocent inside a longer token ("motherfucker", "bullshitting").
STRONG_STEMS: Final[tuple[str, ...]] = (
    "fuck", "shit", "cunt", "bitch", "nigger", "nigga", "faggot", "whore", "twat", "wanker",
    "wanking", "asshole", "dickhead", "cocksucker", "motherf", "retard",
)  # fmt: skip
STEM_EXCEPTIONS: Final[tuple[str, ...]] = (
    "scunthorpe", "shiitake", "mishit", "retardant", "retardation", "niggard",
)  # fmt: skip

EXTRA_PROFANITY: Final[frozenset[str]] = _word_set(
    """
    fck fcking fkn fking fuk fukin fuking mf mfer motherfucker motherfucking stfu gtfo kys
    shithead shitheads dipshit dumbass jackass asshat assholes bullshit bs cocksucker
    dickhead dickheads douchebag subhuman prick pricks bollocks bellend tosser wankers arsehole
    arseholes
    """
)

HARASSMENT_PHRASES: Final[tuple[str, ...]] = (
    "kill yourself", "kill urself", "go die", "hope you die", "i will kill you",
    "i'll kill you", "neck yourself", "end yourself", "drink bleach", "unalive yourself",
    "die in a fire", "know where you live", "find where you live", "you should die",
)  # fmt: skip


@dataclass(frozen=True)
class ProfanityHit:
    """One match: the reason code (``profanity``, ``slur``, ``harassment``) and the word."""

    code: str
    word: str


_SLUR_FORMS: set[str] = set()
"""Every normalised spelling that comes from a slur (``n1gger`` -> ``nigger``, ``nlgger``)."""


@lru_cache(maxsize=1)
def _lexicon() -> tuple[frozenset[str], tuple[str, ...], dict[int, tuple[str, ...]]]:
    """(single words, multi-word phrases, words by length) from the word lists."""
    listed = {
        w.strip().lower()
        for w in read_wordlist(get_complete_path_of_file("profanity_wordlist.txt"))
    }
    listed = {w for w in listed if w and w not in BENIGN_WORDS}
    listed |= SLURS | EXTRA_PROFANITY
    single: set[str] = set()
    for word in (w for w in listed if " " not in w):
        # Keep the literal entry (``sh!t``) and its plain-letter readings (``shit``).
        forms = {word} | {letters_only(v) for v in deleet_variants(word)}
        kept = {f for f in forms if len(f) >= 2 and f not in BENIGN_WORDS}
        single |= kept
        if word in SLURS:
            _SLUR_FORMS.update(kept)
    phrases = tuple(sorted(w for w in listed if " " in w)) + HARASSMENT_PHRASES
    by_length: dict[int, list[str]] = {}
    for word in single:
        if word.isalpha():
            by_length.setdefault(len(word), []).append(word)
    return frozenset(single), phrases, {k: tuple(v) for k, v in by_length.items()}


_TOKEN_EDGE = re.compile(
    r"^[\"'“”‘’«»(\[{<#:;,.?]+|(?<![\"'“”‘’«»)\]}>:;,.?!])[\"'“”‘’«»)\]}>:;,.?!]+$"
)
"""Leading and trailing punctuation of a token. The trailing run may start only where such a
run starts (the look-behind), so a token of 100k ``)`` followed by a letter is scanned once."""
_PHRASE_SPACE = re.compile(r"[\s\W_]+")


def _code_for(word: str) -> str:
    _lexicon()  # fills _SLUR_FORMS
    return "slur" if word in SLURS or word in _SLUR_FORMS else "profanity"


def _readings(token: str) -> set[str]:
    """Every normalised reading of one (folded) token."""
    out: set[str] = set()
    for variant in deleet_variants(token) | {token}:
        for form in (variant, letters_only(variant)):
            if form:
                out |= repetition_variants(form)
    return out


def _masked_match(token: str, by_length: dict[int, tuple[str, ...]]) -> str | None:
    """``f**k``/``sh#t``: a token with mask characters matches a listed word letter for letter."""
    core = "".join(c for c in token if c.isalpha() or c in "*#")
    masks = sum(1 for c in core if c in "*#")
    letters = len(core) - masks
    if masks == 0 or letters < 2 or masks > letters:
        return None
    for word in by_length.get(len(core), ()):
        if all(m in "*#" or m == w for m, w in zip(core, word, strict=True)):
            return word
    return None


def _stem_match(reading: str) -> str | None:
    if any(e in reading for e in STEM_EXCEPTIONS):
        return None
    for stem in STRONG_STEMS:
        if stem in reading:
            return stem
    return None


def _check_token(
    raw: str, single: frozenset[str], by_length: dict[int, tuple[str, ...]]
) -> str | None:
    token = _TOKEN_EDGE.sub("", raw)
    if not token:
        return None
    for reading in sorted(_readings(token)):
        if reading in single:
            return reading
        if len(reading) >= 4 and (stem := _stem_match(reading)):
            return stem
    if (leet := deleet_variants(token)) and any(c in token for c in "*#"):
        for variant in leet | {token}:
            if masked := _masked_match(variant, by_length):
                return masked
    return None


def find_profanity(text: str) -> list[ProfanityHit]:
    """Every profanity, slur or harassment phrase found in ``text`` (empty list when clean)."""
    single, phrases, by_length = _lexicon()
    folded = fold(remove_urls(text))
    tokens = folded.split()
    hits: list[ProfanityHit] = []
    seen: set[str] = set()

    def add(word: str, code: str | None = None) -> None:
        if word not in seen:
            seen.add(word)
            hits.append(ProfanityHit(code or _code_for(word), word))

    for raw in tokens:
        if found := _check_token(raw, single, by_length):
            add(found)
    # Spaced-out letters: "f u c k", "s . h . i . t" (runs of 3+ one-character tokens).
    stripped = [_TOKEN_EDGE.sub("", t) if len(t) > 1 else t for t in tokens]
    run: list[str] = []
    for token in [*stripped, "  "]:
        if len(token) == 1:
            run.append(token)
            continue
        if token == "" and run:
            continue
        if len(run) >= 3:
            for i in range(len(run)):
                for j in range(i + 3, len(run) + 1):
                    if found := _check_token("".join(run[i:j]), single, by_length):
                        add(found)
        run = []
    # A word split in two: "fu ck", "sh it" (only the strong family, to stay precise).
    for left, right in itertools.pairwise(stripped):
        if not left or not right:
            continue
        for reading in sorted(_readings(left + right)):
            if reading in single and _stem_match(reading):
                add(reading)
                break
    # Multi-word phrases ("blow job", "kill yourself") over words joined by single spaces.
    spaced = " " + " ".join(_PHRASE_SPACE.sub(" ", folded).split()) + " "
    for phrase in phrases:
        if f" {phrase} " in spaced:
            add(phrase, "harassment" if phrase in HARASSMENT_PHRASES else None)
    return hits


_model_lock = threading.Lock()
_model: Callable[[list[str]], Iterable[float]] | None = None


def _fast_predictor(vectorizer: Any, model: Any) -> Callable[[list[str]], Iterable[float]] | None:
    """The same probabilities as the model's ``predict_proba``, without sklearn's per-call cost.

    alt-profanity-check is a sigmoid-calibrated linear SVM averaged over 5 folds: that is a few
    dot products, but ``predict_proba`` spends ~40 ms a call on validation. Returns ``None``
    (use the model as it is) if the model is not of that shape.
    """
    import numpy as np

    try:
        folds = model.calibrated_classifiers_
        if getattr(model, "method", None) != "sigmoid":
            return None
        coef = np.vstack([np.asarray(f.estimator.coef_).ravel() for f in folds])
        intercept = np.array([float(np.ravel(f.estimator.intercept_)[0]) for f in folds])
        slope = np.array([float(f.calibrators[0].a_) for f in folds])
        offset = np.array([float(f.calibrators[0].b_) for f in folds])
        positive = list(model.classes_).index(1)
    except (AttributeError, IndexError, ValueError):
        return None

    def predict(texts: list[str]) -> Iterable[float]:
        decision = vectorizer.transform(texts) @ coef.T + intercept  # (n_texts, n_folds)
        # sklearn's calibrators give P(class 1) = 1 / (1 + exp(a * f + b)) per fold.
        p_one = 1.0 / (1.0 + np.exp(slope * np.asarray(decision) + offset))
        p = p_one.mean(axis=1)
        return p if positive == 1 else 1.0 - p

    return predict


def _load_model() -> Callable[[list[str]], Iterable[float]]:
    global _model
    with _model_lock:
        if _model is None:
            # Slow import (scikit-learn, joblib model files): only when the guard first runs.
            from profanity_check import profanity_check as apc

            fast = _fast_predictor(apc.vectorizer, apc.model)
            probe = ["you are a worthless idiot", "pandas groupby is fast", "go to hell"]
            if fast is not None:
                import numpy as np

                expected = apc.predict_prob(probe)
                if not np.allclose(np.asarray(list(fast(probe))), expected, atol=1e-6):
                    fast = None
            _model = fast or apc.predict_prob
        return _model


@lru_cache(maxsize=4096)
def _toxicity_one(folded: str) -> float:
    return float(next(iter(_load_model()([folded]))))


def toxicity_scores(texts: list[str]) -> list[float]:
    """alt-profanity-check's probability that each text is offensive (0..1), on folded text."""
    return [_toxicity_one(fold(remove_urls(t))) for t in texts]
