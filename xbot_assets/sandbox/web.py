"""x.com-like web pages for the browser poster: login flow, home timeline, post and profile pages.

The pages carry x.com's ``data-testid`` attributes (``tweetTextarea_0``, ``tweetButtonInline``,
``tweet``, ``tweetText``, ``LoginForm_Login_Button``, ...) and post through a JSON fetch shaped
like x.com's ``CreateTweet`` GraphQL call, whose answer carries the new post's id at
``data.create_tweet.tweet_results.result.rest_id``. The session is a cookie ``auth_token`` (plus
``ct0``, echoed in the ``x-csrf-token`` header like x.com).

Fault switches (see :data:`~xbot_assets.sandbox.faults.FAULTS`): ``expired_session`` (every
page redirects to the login flow, CreateTweet answers 401), ``login_challenge`` (login shows a
verification page), ``automation_block`` (CreateTweet answers X's error 226, shown in a toast),
``rate_limit`` (CreateTweet answers 429), ``slow`` / ``server_error`` (any ``web_*`` endpoint),
``layout_changed`` (compose testids renamed to ``composerTextarea`` / ``composerPostButton``),
``answer_without_id`` (CreateTweet stores the post but its answer carries no id).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, PackageLoader
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from xbot_assets.sandbox.errors import SandboxError
from xbot_assets.sandbox.platform import SandboxX
from xbot_assets.sandbox.render import iso
from xbot_assets.sandbox.state import Account, Post

CREATE_TWEET_PATH = "/i/api/graphql/SoVnbfCycZ7fERGCwpZkYA/CreateTweet"
"""The CreateTweet GraphQL path the compose box posts to (query id as on x.com)."""

RENAMED_TESTIDS = {"tweetTextarea_0": "composerTextarea", "tweetButtonInline": "composerPostButton"}
"""What ``layout_changed`` renames each compose testid to."""

_ENV = Environment(loader=PackageLoader("xbot_assets.sandbox", "templates"), autoescape=True)
"""The pages live in ``sandbox/templates/``: each extends ``base.html`` and fills its ``body``
block; ``_compose.html`` (the compose box) and ``_article.html`` (one post) are included."""


class _Web:
    """The web route handlers; sessions live in memory (cookie ``auth_token`` -> account)."""

    def __init__(self, sandbox: SandboxX) -> None:
        self.sandbox = sandbox
        self.sessions: dict[str, tuple[str, str]] = {}  # auth_token -> (handle, ct0)

    # --- helpers -----------------------------------------------------------------------------
    async def _gate(self, endpoint: str) -> Response | None:
        slow = self.sandbox.fault_active("slow", endpoint)
        if slow is not None and slow.seconds > 0:
            await asyncio.sleep(slow.seconds)
        if self.sandbox.fault_active("server_error", endpoint):
            return self._render("error", 500, title="Error")
        return None

    def _render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("title", "X")
        return HTMLResponse(_ENV.get_template(f"{name}.html").render(**context), status_code=status)

    def _session(self, request: Request, endpoint: str) -> Account | None:
        token = request.cookies.get("auth_token")
        if not token or token not in self.sessions:
            return None
        if self.sandbox.fault_active("expired_session", endpoint):
            self.sessions.pop(token, None)
            return None
        return self.sandbox.account(self.sessions[token][0])

    def _to_login(self, request: Request) -> RedirectResponse:
        target = quote(request.url.path, safe="")
        response = RedirectResponse(f"/i/flow/login?redirect_after_login={target}", 302)
        response.delete_cookie("auth_token")
        return response

    def _testids(self) -> dict[str, Any]:
        changed = self.sandbox.fault_active("layout_changed", "web_compose", consume=False)
        ids = RENAMED_TESTIDS if changed else {k: k for k in RENAMED_TESTIDS}
        return {"textarea_id": ids["tweetTextarea_0"], "button_id": ids["tweetButtonInline"]}

    def _article(self, post: Post) -> Markup:
        metrics = self.sandbox.post_metrics(post.id)
        # Already escaped by its own template: mark safe so the page does not escape it twice.
        article = _ENV.get_template("_article.html")
        html = article.render(post=post, when=iso(post.created_at), m=metrics)
        return Markup(html)  # noqa: S704 - rendered with autoescape above

    # --- login -------------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        blocked = await self._gate("web_login")
        if blocked is not None:
            return blocked
        redirect = request.query_params.get("redirect_after_login", "/home")
        if request.method == "GET":
            return self._render("login", title="Log in", redirect=redirect, error=None)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        redirect = form.get("redirect_after_login", "/home") or "/home"
        if not redirect.startswith("/") or redirect.startswith("//"):
            redirect = "/home"
        account = self.sandbox.check_password(
            form.get("text", "").strip().lstrip("@"), form.get("password", "")
        )
        if account is None:
            return self._render(
                "login", 200, title="Log in", redirect=redirect,
                error="Wrong password! Check your username and password.",
            )  # fmt: skip
        if self.sandbox.fault_active("login_challenge", "web_login"):
            return RedirectResponse("/account/login_challenge", 302)
        token, ct0 = secrets.token_hex(20), secrets.token_hex(16)
        self.sessions[token] = (account.handle, ct0)
        response = RedirectResponse(redirect, 302)
        response.set_cookie("auth_token", token, httponly=True, samesite="lax")
        response.set_cookie("ct0", ct0, samesite="lax")
        return response

    async def challenge(self, request: Request) -> Response:
        return self._render("challenge", title="Verify your identity")

    async def logout(self, request: Request) -> Response:
        self.sessions.pop(request.cookies.get("auth_token", ""), None)
        response = RedirectResponse("/i/flow/login", 302)
        response.delete_cookie("auth_token")
        response.delete_cookie("ct0")
        return response

    # --- pages -------------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        blocked = await self._gate("web_home")
        if blocked is not None:
            return blocked
        account = self._session(request, "web_home")
        if account is None:
            return self._to_login(request)
        posts = self.sandbox.posts_of(account.handle)[:50]
        return self._render(
            "home", title="Home", handle=account.handle, reply_to=None,
            create_path=CREATE_TWEET_PATH, items=[self._article(p) for p in posts],
            **self._testids(),
        )  # fmt: skip

    async def status(self, request: Request) -> Response:
        blocked = await self._gate("web_status")
        if blocked is not None:
            return blocked
        account = self._session(request, "web_status")
        if account is None:
            return self._to_login(request)
        post = self.sandbox.post(request.path_params["id"])
        handle = request.path_params["handle"]
        if (
            post is None
            or post.deleted_at is not None
            or (post.account.handle.lower() != handle.lower())
        ):
            return self._render("not_found", 404, title="Page not found")
        top = self.sandbox.post(post.conversation_id) or post
        conversation = [top, *self._descendants(top)]
        visible = [p for p in conversation if p.deleted_at is None]
        return self._render(
            "status", title=f"{post.account.name} on X", handle=account.handle,
            reply_to=post.id, can_reply=True, create_path=CREATE_TWEET_PATH,
            items=[self._article(p) for p in visible], **self._testids(),
        )  # fmt: skip

    def _descendants(self, root: Post) -> list[Post]:
        out: list[Post] = []
        stack = list(reversed(root.children))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return sorted(out, key=lambda p: (p.created_at, p.seq))

    async def profile(self, request: Request) -> Response:
        blocked = await self._gate("web_profile")
        if blocked is not None:
            return blocked
        if self._session(request, "web_profile") is None:
            return self._to_login(request)
        try:
            account = self.sandbox.account(request.path_params["handle"])
        except KeyError:
            return self._render("not_found", 404, title="Page not found")
        posts = self.sandbox.posts_of(account.handle)[:100]
        return self._render(
            "profile", title=f"{account.name} (@{account.handle})", account=account,
            followers=self.sandbox.followers(account.handle),
            items=[self._article(p) for p in posts],
        )  # fmt: skip

    # --- CreateTweet -------------------------------------------------------------------------
    async def create_tweet(self, request: Request) -> Response:
        slow = self.sandbox.fault_active("slow", "web_create_tweet")
        if slow is not None and slow.seconds > 0:
            await asyncio.sleep(slow.seconds)
        account = self._session(request, "web_create_tweet")
        if account is None:
            return _gql_error(401, 32, "Could not authenticate you.")
        token = request.cookies.get("auth_token", "")
        if request.headers.get("x-csrf-token") != self.sessions[token][1]:
            return _gql_error(403, 353, "This request requires a matching csrf cookie and header.")
        try:
            payload = json.loads(await request.body())
            variables = payload["variables"]
            text = str(variables["tweet_text"])
            reply = variables.get("reply") or {}
            reply_to = reply.get("in_reply_to_tweet_id")
        except (ValueError, KeyError, TypeError, AttributeError):
            return _gql_error(400, 214, "Bad request: variables.tweet_text is required.")
        try:
            post = self.sandbox.web_create_tweet(text, str(reply_to) if reply_to else None, account)
        except SandboxError as exc:
            return _web_error(exc)
        if self.sandbox.fault_active("answer_without_id", "web_create_tweet"):
            return JSONResponse({"data": {}}, headers=self.sandbox.last_headers)
        return JSONResponse(_create_tweet_result(post), headers=self.sandbox.last_headers)


def _gql_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "code": code}]}, status_code=status)


def _web_error(exc: SandboxError) -> JSONResponse:
    """X's web answers: GraphQL errors with HTTP 200 for refusals, plain status otherwise."""
    code = exc.code
    message = str(exc.body.get("message") or exc.body.get("detail") or "")
    if exc.status in (403, 400):
        body = {
            "errors": [
                {
                    "message": f"Authorization: {message} ({code})" if code == 226 else message,
                    "code": code,
                    "kind": "Permissions",
                    "name": "AuthorizationError",
                    "extensions": {"code": code, "kind": "Permissions"},
                }
            ],
            "data": {},
        }
        return JSONResponse(body, status_code=200, headers=exc.headers)
    return JSONResponse(
        {"errors": [{"message": message, "code": code}]}, status_code=exc.status,
        headers=exc.headers,
    )  # fmt: skip


def _create_tweet_result(post: Post) -> dict[str, Any]:
    legacy: dict[str, Any] = {
        "full_text": post.text,
        "id_str": post.id,
        "created_at": post.created_at.strftime("%a %b %d %H:%M:%S +0000 %Y"),
        "conversation_id_str": post.conversation_id,
        "user_id_str": post.account.id,
    }
    if post.reply_to is not None:
        legacy["in_reply_to_status_id_str"] = post.reply_to.id
        legacy["in_reply_to_user_id_str"] = post.reply_to.account.id
    return {
        "data": {
            "create_tweet": {
                "tweet_results": {
                    "result": {"__typename": "Tweet", "rest_id": post.id, "legacy": legacy}
                }
            }
        }
    }


def web_routes(sandbox: SandboxX) -> list[Route]:
    """The web routes (mounted after the API routes; ``/{handle}`` catches the rest)."""
    web = _Web(sandbox)
    return [
        Route("/i/flow/login", web.login, methods=["GET", "POST"]),
        Route("/account/login_challenge", web.challenge, methods=["GET", "POST"]),
        Route("/logout", web.logout, methods=["GET", "POST"]),
        Route("/home", web.home, methods=["GET"]),
        Route(CREATE_TWEET_PATH, web.create_tweet, methods=["POST"]),
        Route("/{handle}/status/{id:int}", web.status, methods=["GET"]),
        Route("/{handle}", web.profile, methods=["GET"]),
    ]
