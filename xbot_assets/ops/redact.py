"""Make error text safe to show: no password in a URL, no token-looking string, bounded length.

Health answers and CLI errors quote exceptions from drivers (psycopg, redis-py, httpx), whose
messages can carry a connection URL or DSN. :func:`mask_credentials` is the one masker of
connection strings (settings output uses it through ``config.mask_url``); everything else an
operator sees goes through :func:`redact` or :func:`safe_error`, which apply it first.

Credential forms masked (those psycopg/libpq and redis-py accept):

- URI user info: ``postgresql://user:pw@host``, ``redis://:pw@host``, ``rediss://user:pw@``,
  ``unix://:pw@/path``; the password may hold ``@``, ``?`` or ``#`` (all up to the last ``@`` of the
  word are masked, only the user name before the first ``:`` is kept);
- query parameters and keyword DSNs: ``?password=...``, ``&sslpassword=...``,
  ``host=h password='it\\'s secret'`` (libpq quoting), ``passfile=...``, ``"password": "..."``.

Every pattern here runs in linear time (no nested or overlapping repeats, bounded schemes), so a
hostile message cannot stall the process that masks it.
"""

from __future__ import annotations

import re

MASK = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,30}://")
_WORD = re.compile(r"\S+")
# The key may carry a bounded prefix (``X_OAUTH2_USER_TOKEN``, ``access_token``, ``PGPASSWORD``,
# ``OPENAI_API_KEY``): ``\b`` never matches after ``_``, so a plain ``\btoken`` missed them.
_KEY_VALUE_SECRET = re.compile(
    r"(?i)(?<![A-Za-z0-9])([A-Za-z0-9_]{0,40}?"
    r"(?:(?:ssl)?password|passwd|pwd|passfile|token|secret|api[_-]?key|authorization))"
    r"([\"']?[ \t]*[=:][ \t]*)"
    r"(\"(?:[^\"\\]|\\.)*\"?|'(?:[^'\\]|\\.)*'?|(?:\\.|[^\s\\])+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=\-]+)")
_LONG_TOKEN = re.compile(r"\b(?:sk-[A-Za-z0-9_\-]{8,}|[A-Za-z0-9_\-]{40,})\b")
MAX_ERROR_CHARS = 300


def _mask_userinfo(word: re.Match[str]) -> str:
    """One whitespace-free word with the user info of its URL(s) masked (keeps the user name)."""
    return _mask_userinfo_text(word.group(0))


def _mask_userinfo_text(text: str) -> str:
    """``text`` with everything from its first scheme's ``//`` to its last ``@`` masked."""
    scheme = _SCHEME.search(text)
    if scheme is None:
        return text
    start = scheme.end()
    at = text.rfind("@")
    if at < start:
        return text
    userinfo = text[start:at]
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:{MASK}" if colon else MASK
    return f"{text[:start]}{masked}{text[at:]}"


def mask_credentials(text: str) -> str:
    """``text`` with every connection-string credential masked (URL user info, password=...)."""
    if "@" in text and "://" in text:
        text = _WORD.sub(_mask_userinfo, text)
    return _KEY_VALUE_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def mask_one_url(url: str) -> str:
    """A string known to be one URL or DSN, its credentials masked: the user info up to the
    LAST ``@`` of the whole string, since a password may hold a space (drivers accept
    ``postgresql://u:two words@h/db``) and the word-by-word masker would show its halves."""
    return mask_credentials(_mask_userinfo_text(url) if "@" in url else url)


def redact(text: str) -> str:
    """``text`` with credentials (:func:`mask_credentials`), bearer values, long tokens masked."""
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = mask_credentials(text)
    return _LONG_TOKEN.sub(MASK, text)


def safe_error(exc: BaseException, limit: int = MAX_ERROR_CHARS) -> str:
    """One redacted line naming the exception type and the start of its message."""
    message = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    line = redact(line)
    return line if len(line) <= limit else line[: limit - 3] + "..."
