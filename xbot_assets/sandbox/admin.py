"""The sandbox's test-only admin routes under ``/__sandbox/``: faults, clock, accounts, counters.

They exist only in the sandbox (real X has nothing like them) and take no auth: the server binds
to loopback for tests and ``xbot sandbox serve``.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xbot_assets.sandbox import errors
from xbot_assets.sandbox.errors import SandboxError
from xbot_assets.sandbox.faults import FAULTS
from xbot_assets.sandbox.http_json import ASCII_INT, error_response, json_response, parse_json
from xbot_assets.sandbox.platform import SandboxX
from xbot_assets.sandbox.render import iso, parse_time

MAX_ADVANCE = timedelta(days=3650)
"""Largest single clock move: ten simulated years (further is no scenario, and overflows)."""
MAX_FOLLOWERS = 1_000_000_000
MAX_AUDIENCE_JITTER = 2.0
"""The largest per-account audience jitter (log-scale standard deviation) an account may get."""


class AdminRoutes:
    """Test-only routes under ``/__sandbox/`` (no auth: loopback test servers only)."""

    def __init__(self, sandbox: SandboxX) -> None:
        self.sandbox = sandbox

    async def _payload(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        payload = parse_json(raw, "The admin request body")
        if not isinstance(payload, dict):
            raise errors.invalid_request("The admin request body must be a JSON object.")
        return payload

    async def state(self, request: Request) -> Response:
        return json_response(self.sandbox.admin_state())

    async def faults(self, request: Request) -> Response:
        if request.method == "GET":
            return json_response(
                {"available": FAULTS, "active": self.sandbox.admin_state()["faults"]}
            )
        if request.method == "DELETE":
            self.sandbox.clear_faults(request.path_params.get("name"))
            return json_response({"active": self.sandbox.admin_state()["faults"]})
        try:
            payload = await self._payload(request)
            self.sandbox.set_fault(
                str(payload["name"]),
                match=payload.get("match"),
                count=payload.get("count"),
                seconds=payload.get("seconds", 0.0),
            )
        except SandboxError as exc:
            return error_response(exc)
        except (KeyError, ValueError, TypeError) as exc:
            names = ", ".join(sorted(FAULTS))
            hint = f"bad fault request: {exc}; body {{name, match?, count?, seconds?}}; {names}"
            return error_response(errors.invalid_request(hint))
        return json_response({"active": self.sandbox.admin_state()["faults"]})

    async def clock(self, request: Request) -> Response:
        if request.method == "GET":
            return json_response({"now": iso(self.sandbox.clock.now())})
        try:
            payload = await self._payload(request)
            action = request.path_params.get("action", "advance")
            if action == "set":
                self.sandbox.clock.set(parse_time(str(payload["now"]), "now"))
            else:
                self.sandbox.advance(duration_of(payload))
        except SandboxError as exc:
            return error_response(exc)
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            return error_response(errors.invalid_request(f"bad clock request: {exc}"))
        return json_response({"now": iso(self.sandbox.clock.now())})

    async def accounts(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                payload = await self._payload(request)
                followers = payload.get("followers", 500)
                if isinstance(followers, str) and ASCII_INT.fullmatch(followers):
                    followers = int(followers)
                if isinstance(followers, bool) or not isinstance(followers, int):
                    raise ValueError("followers must be a whole number")
                if not 0 <= followers <= MAX_FOLLOWERS:
                    raise ValueError(f"followers must be between 0 and {MAX_FOLLOWERS}")
                jitter = payload.get("audience_jitter", 0.0)
                if isinstance(jitter, bool) or not isinstance(jitter, int | float):
                    raise ValueError("audience_jitter must be a number")
                if not 0 <= jitter <= MAX_AUDIENCE_JITTER:
                    raise ValueError(f"audience_jitter must be between 0 and {MAX_AUDIENCE_JITTER}")
                self.sandbox.add_account(
                    str(payload["handle"]), followers, name=payload.get("name"),
                    audience_jitter=float(jitter),
                )  # fmt: skip
            except SandboxError as exc:
                return error_response(exc)
            except (KeyError, ValueError, TypeError) as exc:
                return error_response(errors.invalid_request(f"bad account request: {exc}"))
            account = self.sandbox.account(str(payload["handle"]))
            return json_response(account_json(account), 201)
        return json_response({"accounts": [account_json(a) for a in self.sandbox.accounts]})

    async def metrics(self, request: Request) -> Response:
        try:
            return json_response(self.sandbox.post_metrics(request.path_params["id"]))
        except KeyError as exc:
            return error_response(errors.not_found_request(str(exc)))

    async def reset_counters(self, request: Request) -> Response:
        self.sandbox.counters.clear()
        return json_response({"counters": {}})


def duration_of(payload: dict[str, Any]) -> timedelta:
    """The clock move of an admin body: finite numbers, at most :data:`MAX_ADVANCE` in all."""
    total = 0.0
    for unit, seconds in (
        ("days", 86400.0),
        ("hours", 3600.0),
        ("minutes", 60.0),
        ("seconds", 1.0),
    ):
        value = payload.get(unit, 0)
        if isinstance(value, str):
            value = float(value)  # "1.5" as before; "inf"/"nan" are refused below
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{unit} must be a number")
        if not math.isfinite(value):
            raise ValueError(f"{unit} must be a finite number")
        total += float(value) * seconds
    if not abs(total) <= MAX_ADVANCE.total_seconds():
        raise ValueError(f"a clock move is at most {MAX_ADVANCE.days} days; move it in steps")
    return timedelta(seconds=total)


def account_json(account: Any) -> dict[str, Any]:
    return {
        "id": account.id,
        "handle": account.handle,
        "name": account.name,
        "user_token": account.user_token,
        "password": account.password,
    }


def admin_routes(sandbox: SandboxX) -> list[Route]:
    """The ``/__sandbox/`` routes over ``sandbox``."""
    admin = AdminRoutes(sandbox)
    return [
        Route("/__sandbox/state", admin.state, methods=["GET"]),
        Route("/__sandbox/faults", admin.faults, methods=["GET", "POST", "DELETE"]),
        Route("/__sandbox/faults/{name}", admin.faults, methods=["DELETE"]),
        Route("/__sandbox/clock", admin.clock, methods=["GET"]),
        Route("/__sandbox/clock/{action}", admin.clock, methods=["POST"]),
        Route("/__sandbox/accounts", admin.accounts, methods=["GET", "POST"]),
        Route("/__sandbox/posts/{id}/metrics", admin.metrics, methods=["GET"]),
        Route("/__sandbox/counters/reset", admin.reset_counters, methods=["POST"]),
    ]
