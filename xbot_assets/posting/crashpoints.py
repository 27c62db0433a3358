"""Named points where the crash-matrix tests kill the posting process (SIGKILL, no cleanup).

``XBOT_CRASH_AT`` names one point; the process kills itself when it reaches it (after passing it
``XBOT_CRASH_SKIP`` times first, default 0: so a test can die at the second part of a thread).
Read at each call (cheap), so a test can set it per subprocess. Unset in normal runs: then every
call is a no-op.

Points, in the order a post passes them:
``before_claim``, ``after_claim``, ``after_mark`` (the "sent" mark is committed, no byte of the
request is out yet), ``after_send`` (the request's bytes are out, no answer yet:
fired from the HTTP client's trace hook), ``after_answer`` (X answered with the id, not yet
recorded), ``after_record`` (the id is committed).
"""

from __future__ import annotations

import os
import signal
from typing import Any

CRASH_ENV = "XBOT_CRASH_AT"
CRASH_SKIP_ENV = "XBOT_CRASH_SKIP"
CRASH_POINTS = (
    "before_claim",
    "after_claim",
    "after_mark",
    "after_send",
    "after_answer",
    "after_record",
)


_passed: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here with SIGKILL when ``XBOT_CRASH_AT`` names this point (tests only)."""
    if os.environ.get(CRASH_ENV) != name:
        return
    seen = _passed.get(name, 0)
    _passed[name] = seen + 1
    if seen >= int(os.environ.get(CRASH_SKIP_ENV) or 0):
        os.kill(os.getpid(), signal.SIGKILL)


_last_method: list[bytes | str] = [b""]


def http_trace(event: str, info: dict[str, Any]) -> None:
    """httpcore trace hook: ``after_send`` fires once a write's request body is fully sent.

    httpcore names the request only in the ``.started`` events, so the method is remembered
    there (requests of one poster are sequential).
    """
    if event == "http11.send_request_headers.started":
        _last_method[0] = getattr(info.get("request"), "method", b"")
    elif event == "http11.send_request_body.complete" and _last_method[0] in (b"POST", "POST"):
        crash_point("after_send")
