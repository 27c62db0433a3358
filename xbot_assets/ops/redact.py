"""Make error text safe to show: no password in a URL, no token-looking string, bounded length.

Health answers and CLI errors quote exceptions from drivers (psycopg, redis-py, httpx), whose
messages can carry a connection URL. Everything an operator sees goes through :func:`safe_error`.
"""

from __future__ import annotations

import re

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/@\s]+)@")
_KEY_VALUE_SECRET = re.compile(
    r"(?i)\b(password|passwd|pwd|token|secret|api[_-]?key|authorization)"
    r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;)]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=\-]+)")
_LONG_TOKEN = re.compile(r"\b(?:sk-[A-Za-z0-9_\-]{8,}|[A-Za-z0-9_\-]{40,})\b")
MAX_ERROR_CHARS = 300


def redact(text: str) -> str:
    """``text`` with URL credentials, ``password=...``-style values and long tokens masked."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    text = _KEY_VALUE_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    return _LONG_TOKEN.sub("***", text)


def safe_error(exc: BaseException, limit: int = MAX_ERROR_CHARS) -> str:
    """One redacted line naming the exception type and the start of its message."""
    message = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    line = redact(line)
    return line if len(line) <= limit else line[: limit - 3] + "..."
