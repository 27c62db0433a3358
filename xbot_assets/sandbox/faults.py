"""The sandbox's fault switches: which failures are on, for which endpoints, how many more times.

Kept apart from the platform state and the audience so a test that breaks X (429s, 503s, a lost
response, an expired web session) reads one small module; the API surface and the web pages only
ask :meth:`FaultSwitches.active` whether a switch applies to the request in hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FAULTS: dict[str, str] = {
    "rate_limit": "every matching API request answers 429 with x-rate-limit-* headers",
    "automation_block": "every matching write answers 403 with error code 226",
    "server_error": "every matching API request answers 500",
    "unavailable": "every matching API request answers 503",
    "no_access": "every matching API request answers 403 client-not-enrolled (the app's access "
    "level lacks the endpoint, as X answers for analytics without the needed tier)",
    "lose_response": "a matching write takes effect, then answers 503 (the post exists)",
    "slow": "the HTTP server waits `seconds` (real time) before answering",
    "slow_response": "a matching API write takes effect, then the HTTP server waits `seconds` "
    "(real time) before answering (a caller killed meanwhile never learns the post exists)",
    "expired_session": "web: every session cookie is expired (redirect to /i/flow/login)",
    "login_challenge": "web: the login flow shows a verification challenge instead of /home",
    "layout_changed": "web: the compose testids are renamed (tweetTextarea_0 -> ...)",
    "answer_without_id": "web: CreateTweet stores the post, then answers 200 without its id "
    "(an answer shape the poster does not know; the page shows no link to the post)",
}
"""Fault switches and what each one does (see :meth:`FaultSwitches.set`)."""

WRITE_ENDPOINTS = frozenset({"create_tweet", "delete_tweet", "web_create_tweet"})


@dataclass
class Fault:
    """An active fault switch: which requests it matches and how many it still affects."""

    name: str
    match: str | None = None
    remaining: int | None = None
    seconds: float = 0.0

    def applies(self, endpoint: str) -> bool:
        return self.match is None or self.match in endpoint


class FaultSwitches:
    """The switches that are on. Not thread-safe by itself: the sandbox calls it under its lock."""

    def __init__(self) -> None:
        self.on: dict[str, Fault] = {}

    def set(
        self,
        name: str,
        *,
        match: str | None = None,
        count: int | None = None,
        seconds: float = 0.0,
    ) -> None:
        """Switch a fault on (arguments as :meth:`SandboxX.set_fault`); ValueError when bad."""
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; use one of {sorted(FAULTS)}")
        # checked here, not when a request meets the fault: a bad fault would fail every request
        if match is not None and not isinstance(match, str):
            raise ValueError("match must be text (part of an endpoint name) or absent")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise ValueError("count must be a whole number of requests or absent")
        if count is not None and not 1 <= count <= 1_000_000:
            raise ValueError("count must be between 1 and 1000000")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ValueError("seconds must be a number")
        if not 0.0 <= seconds <= 60.0:  # NaN fails this too
            raise ValueError("seconds must be between 0 and 60")
        self.on[name] = Fault(name, match, count, float(seconds))

    def clear(self, name: str | None = None) -> None:
        """Switch one fault (or all) off."""
        if name is None:
            self.on.clear()
        else:
            self.on.pop(name, None)

    def active(self, name: str, endpoint: str, *, consume: bool = True) -> Fault | None:
        """The fault if it is on for this endpoint (consuming one of its ``count``)."""
        fault = self.on.get(name)
        if fault is None or not fault.applies(endpoint):
            return None
        if consume and fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self.on[name]
        return fault

    def as_json(self) -> dict[str, dict[str, Any]]:
        """The switches that are on, as the admin state shows them."""
        return {
            name: {"match": f.match, "remaining": f.remaining, "seconds": f.seconds}
            for name, f in self.on.items()
        }
