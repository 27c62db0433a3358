"""The sandbox X over HTTP: X API v2 endpoints, x.com-like web pages and test-only admin routes.

The API routes translate HTTP to :class:`~xbot_assets.sandbox.platform.SandboxX` calls and back
(same paths, parameters, JSON bodies, status codes and ``x-rate-limit-*`` headers as X), so the
very same client code talks to the sandbox and to the real API. The test-only admin routes under
``/__sandbox/`` live in :mod:`.admin`, the web pages in :mod:`.web`, and the JSON plumbing they
share (tokens, bodies, the body-size limit) in :mod:`.http_json`; this module holds the API routes,
the app that mounts all three, and the ways to run it.

Start it in a test with :func:`running_server`; from a shell with ``xbot sandbox serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xbot_assets.sandbox import errors, validation
from xbot_assets.sandbox.admin import admin_routes
from xbot_assets.sandbox.errors import SandboxError
from xbot_assets.sandbox.http_json import (
    ASCII_INT,
    BodyLimit,
    bearer_token_of,
    error_response,
    json_response,
    parse_json,
)
from xbot_assets.sandbox.platform import SandboxX
from xbot_assets.sandbox.render import (
    ANALYTICS_EXTENSION_FIELDS,
    ANALYTICS_FIELDS,
    POST_FIELDS,
    USER_FIELDS,
)

Handler = Callable[[Request], Awaitable[Response]]

_EXTRA_VALUES = {
    "post.fields": POST_FIELDS,
    "user.fields": USER_FIELDS,
    "analytics.fields": ANALYTICS_FIELDS | ANALYTICS_EXTENSION_FIELDS,
    "expansions": frozenset(
        {
            "referenced_tweets.id",
            "referenced_tweets.id.author_id",
            "edit_history_tweet_ids",
            "pinned_tweet_id",
            "most_recent_tweet_id",
            "attachments.poll_ids",
            "author_id",
        }
    ),
}
"""Values real X accepts that the (newer) spec's enums leave out, and the sandbox's extensions:
the field names the sandbox answers (render.py) are all accepted."""

_COMMON_POST_PARAMS = {
    "tweet.fields", "post.fields", "expansions", "user.fields", "media.fields", "poll.fields",
    "place.fields",
}  # fmt: skip
_ALLOWED_PARAMS: dict[str, set[str]] = {
    "get_tweets": {"ids"} | _COMMON_POST_PARAMS,
    "get_tweet": _COMMON_POST_PARAMS,
    "get_users": {"user.fields", "expansions", "tweet.fields", "post.fields"},
    "get_user_tweets": {
        "max_results",
        "pagination_token",
        "start_time",
        "end_time",
        "since_id",
        "until_id",
        "exclude",
    }
    | _COMMON_POST_PARAMS,
    "analytics": {"ids", "start_time", "end_time", "granularity", "analytics.fields"},
    "create_tweet": set(),
    "delete_tweet": set(),
}
_CREATE_KEYS = {
    "card_uri", "community_id", "direct_message_deep_link", "edit_options",
    "for_super_followers_only", "geo", "made_with_ai", "media", "nullcast", "paid_partnership",
    "poll", "quote_tweet_id", "reply", "reply_settings", "share_with_followers", "text",
}  # fmt: skip


def _fields(request: Request, *names: str) -> str | None:
    values = [request.query_params[n] for n in names if n in request.query_params]
    return ",".join(values) if values else None


def _check_params(request: Request, endpoint: str) -> None:
    allowed = _ALLOWED_PARAMS[endpoint]
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise errors.invalid_request(
            f"The query parameter [{unknown[0]}] is not one of [{','.join(sorted(allowed))}]",
            unknown[0],
        )


class _Api:
    """The X API v2 route handlers over one sandbox."""

    def __init__(self, sandbox: SandboxX) -> None:
        self.sandbox = sandbox

    async def _slow(self, endpoint: str) -> None:
        fault = self.sandbox.fault_active("slow", endpoint)
        if fault is not None and fault.seconds > 0:
            await asyncio.sleep(fault.seconds)

    async def _run(self, request: Request, endpoint: str, call: Callable[[], dict[str, Any]],
                   status: int = 200) -> Response:  # fmt: skip
        await self._slow(endpoint)
        try:
            _check_params(request, endpoint)
            rule = endpoint
            if endpoint == "get_users":
                rule = "get_user" if "id" in request.path_params else "get_me"
            validation.check_params(
                rule, dict(request.path_params), request.query_params.multi_items(), _EXTRA_VALUES
            )
            body = call()
        except SandboxError as exc:
            return error_response(exc)
        return json_response(body, status, self.sandbox.last_headers)

    async def tweets(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.create(request)
        token = bearer_token_of(request)
        return await self._run(
            request,
            "get_tweets",
            lambda: self.sandbox.get_tweets(
                _ids(request), _fields(request, "tweet.fields", "post.fields"), token=token
            ),
        )

    async def create(self, request: Request) -> Response:
        token = bearer_token_of(request)
        await self._slow("create_tweet")
        try:
            payload = parse_json(await request.body())
            if not isinstance(payload, dict):
                raise errors.invalid_request("The request body must be a JSON object.")
            unknown = sorted(set(payload) - _CREATE_KEYS)
            if unknown:
                raise errors.invalid_request(
                    f"The request body field [{unknown[0]}] is not allowed.", unknown[0]
                )
            validation.check_body("create_tweet", payload)
            reply = payload.get("reply")
            reply_to = None
            if reply is not None:
                if not isinstance(reply, dict) or "in_reply_to_tweet_id" not in reply:
                    raise errors.invalid_request(
                        "reply needs in_reply_to_tweet_id", "reply.in_reply_to_tweet_id"
                    )
                reply_to = str(reply["in_reply_to_tweet_id"])
            text = payload.get("text", "")
            if not isinstance(text, str):
                raise errors.invalid_request("text must be a string", "text")
        except SandboxError as exc:
            self.sandbox.record_request("create_tweet", write=True)
            return error_response(exc)
        try:
            body = self.sandbox.create_tweet(text, reply_to, token=token)
        except SandboxError as exc:
            return error_response(exc)
        headers = self.sandbox.last_headers
        held = self.sandbox.fault_active("slow_response", "create_tweet")
        if held is not None and held.seconds > 0:
            await asyncio.sleep(held.seconds)  # the post exists; its answer is late
        return json_response(body, 201, headers)

    async def tweet(self, request: Request) -> Response:
        token = bearer_token_of(request)
        post_id = request.path_params["id"]
        if request.method == "DELETE":
            return await self._run(
                request, "delete_tweet", lambda: self.sandbox.delete_tweet(post_id, token=token)
            )
        return await self._run(
            request,
            "get_tweet",
            lambda: self.sandbox.get_tweet(
                post_id, _fields(request, "tweet.fields", "post.fields"), token=token
            ),
        )

    async def analytics(self, request: Request) -> Response:
        token = bearer_token_of(request)
        q = request.query_params

        def call() -> dict[str, Any]:
            for required in ("ids", "start_time", "end_time"):
                if required not in q:
                    raise errors.invalid_request(
                        f"The `{required}` query parameter is required", required
                    )
            return self.sandbox.get_analytics(
                _ids(request),
                q["start_time"],
                q["end_time"],
                q.get("granularity", "total"),
                q.get("analytics.fields"),
                token=token,
            )

        return await self._run(request, "analytics", call)

    async def me(self, request: Request) -> Response:
        token = bearer_token_of(request)
        return await self._run(
            request, "get_users",
            lambda: self.sandbox.get_me(request.query_params.get("user.fields"), token=token),
        )  # fmt: skip

    async def user(self, request: Request) -> Response:
        token = bearer_token_of(request)
        user_id = request.path_params["id"]
        return await self._run(
            request, "get_users",
            lambda: self.sandbox.get_user(
                user_id, request.query_params.get("user.fields"), token=token
            ),
        )  # fmt: skip

    async def user_tweets(self, request: Request) -> Response:
        token = bearer_token_of(request)
        user_id = request.path_params["id"]
        q = request.query_params

        def call() -> dict[str, Any]:
            max_results = q.get("max_results")
            if max_results is not None and not ASCII_INT.fullmatch(max_results):
                # ASCII digits only: str.isdigit() also accepts "²" or "٣", which int() refuses
                shown = max_results[:40]
                if re.fullmatch(r"-?[0-9]+", max_results):
                    raise errors.invalid_request(
                        f"The `max_results` query parameter value [{shown}] is not between 5 "
                        "and 100",
                        "max_results",
                    )
                raise errors.invalid_request(
                    f"The `max_results` query parameter value [{shown}] is not a number",
                    "max_results",
                )
            return self.sandbox.get_user_tweets(
                user_id,
                max_results=int(max_results) if max_results is not None else None,
                pagination_token=q.get("pagination_token"),
                since_id=q.get("since_id"),
                until_id=q.get("until_id"),
                start_time=q.get("start_time"),
                end_time=q.get("end_time"),
                exclude=q.get("exclude"),
                fields=_fields(request, "tweet.fields", "post.fields"),
                token=token,
            )

        return await self._run(request, "get_user_tweets", call)


def _ids(request: Request) -> str:
    ids = request.query_params.get("ids")
    if ids is None:
        raise errors.invalid_request("The `ids` query parameter is required", "ids")
    return ids


async def _not_found(request: Request, exc: Exception) -> Response:
    """X answers unknown API paths with a JSON 404; web paths get a plain page."""
    if request.url.path.startswith("/2/"):
        return error_response(
            errors.not_found_request(f"Sorry, that page does not exist: {request.url.path}")
        )
    return Response("Not Found", status_code=404, media_type="text/plain")


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    body = errors.error_body(
        405, "Method Not Allowed", f"{request.method} is not allowed on {request.url.path}",
        code=405,
    )  # fmt: skip
    return json_response(body, 405)


def create_app(sandbox: SandboxX) -> Starlette:
    """The Starlette app serving ``sandbox`` (API, web pages, admin)."""
    from xbot_assets.sandbox.web import web_routes

    api = _Api(sandbox)
    routes = [
        Route("/2/tweets", api.tweets, methods=["GET", "POST"]),
        Route("/2/tweets/analytics", api.analytics, methods=["GET"]),
        Route("/2/tweets/{id}", api.tweet, methods=["GET", "DELETE"]),
        Route("/2/users/me", api.me, methods=["GET"]),
        Route("/2/users/{id}/tweets", api.user_tweets, methods=["GET"]),
        Route("/2/users/{id}", api.user, methods=["GET"]),
        *admin_routes(sandbox),
        *web_routes(sandbox),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={404: _not_found, 405: _method_not_allowed},
        middleware=[Middleware(BodyLimit)],
    )
    app.state.sandbox = sandbox
    return app


@contextlib.contextmanager
def running_server(sandbox: SandboxX, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``sandbox`` on a free loopback port in a thread; yields the base URL.

    Example:
        >>> with running_server(SandboxX()) as base_url:  # doctest: +SKIP
        ...     httpx.get(f"{base_url}/2/users/me", headers={"Authorization": "Bearer ..."})
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(sandbox), log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-x-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox X server did not start within 10 s")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(
    host: str = "127.0.0.1",
    port: int = 8787,
    scenario: str = "default",
    seed: int = 7,
    journal: str | None = None,
    speed: float = 0.0,
    clock_source: Callable[[], datetime] | None = None,
) -> None:
    """Run the sandbox X in the foreground (``xbot sandbox serve``) until interrupted.

    Args:
        journal: optional write log; the server then survives restarts with its posts.
        speed: 0 = the clock moves only through ``/__sandbox/clock`` (deterministic); above 0
            it also runs on its own at ``speed`` simulated seconds per real second, from the
            scenario's start.
        clock_source: the deployment's time source (its rehearsal clock); when given, the
            sandbox follows it instead and ``speed`` is ignored, so the bot and the sandbox agree.
    """
    from xbot_assets.sandbox.clock import FollowClock, SimClock, WallClock
    from xbot_assets.sandbox.scenario import load_scenario

    clock: SimClock | None = None
    if clock_source is not None:
        clock = FollowClock(clock_source)
    elif speed > 0:
        clock = WallClock(load_scenario(scenario, seed).start, speed)
    sandbox = SandboxX(scenario=scenario, seed=seed, clock=clock, journal=journal)
    account = sandbox.account()
    print(
        f"sandbox X ({scenario}, seed {seed}) on http://{host}:{port}\n"
        f"  account @{account.handle} user token: {account.user_token} "
        f"(web password: {account.password}; public sandbox test values)\n"
        f"  app bearer token: {sandbox.bearer_token}\n"
        f"  admin: http://{host}:{port}/__sandbox/state",
        flush=True,
    )
    uvicorn.run(create_app(sandbox), host=host, port=port, log_level="warning", lifespan="off")
