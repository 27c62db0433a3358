"""The console's web app: four pages per account and the actions behind their forms.

Routes (every page needs a session; every POST needs the session's CSRF token):

- ``GET /login``, ``POST /login`` (token -> session cookie), ``POST /logout``;
- ``GET /a/<handle>/queue|recent|learning|controls`` (``?page=N`` on the first two);
- ``POST /a/<handle>/posts/<id>/approve|edit|reject|move``;
- ``POST /a/<handle>/brake`` (on with a reason, off with a reason).

Handlers that touch the store run in Starlette's thread pool (the store is synchronous).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from xbot_assets.console import views
from xbot_assets.console.actions import ActionRefused, PostActions
from xbot_assets.console.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Session,
    SessionStore,
    same_secret,
    verify_token,
)
from xbot_assets.store.durable.errors import StoreError
from xbot_assets.store.timebase import Clock, utc_now

TEMPLATES = Path(__file__).parent / "templates"
MAX_FORM_BYTES = 64 * 1024
CSS = (TEMPLATES / "console.css").read_text(encoding="utf-8")
"""The stylesheet, inlined in every page: a linked one is a second, render-blocking request
(and the load event waits for it); 3 KB inline costs less than that round trip."""
CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
SECURITY_HEADERS = {
    # The inline stylesheet is allowed by its hash only; no other inline style or any script.
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'self' 'sha256-{CSS_HASH}'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class ConsoleState:
    """What every handler needs."""

    settings: Any
    store: Any
    clock: Clock
    sessions: SessionStore
    secure_cookies: bool
    templates: Environment
    actions: PostActions
    models_dir: Path


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,
        trim_blocks=True,  # no blank lines from template tags: a smaller page
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    return env


def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def _cookie(state: ConsoleState, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=state.secure_cookies,
        path="/",
    )


class Console:
    """The app's handlers over one :class:`ConsoleState`."""

    def __init__(self, state: ConsoleState) -> None:
        self.state = state

    # --- rendering ---------------------------------------------------------------------------
    def page(self, name: str, status: int = 200, **context: Any) -> Response:
        state = self.state
        body = state.templates.get_template(name).render(
            css=CSS,
            environment=state.store.environment,
            approval=state.settings.approval,
            **context,
        )
        return _secure(HTMLResponse(body, status_code=status))

    def session(self, request: Request) -> Session | None:
        session = self.state.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None or session.identity.environment != self.state.store.environment:
            return None
        return session

    def refused(self, message: str, status: int = 403) -> Response:
        return self.page("error.html", status=status, message=message, session=None)

    # --- login -----------------------------------------------------------------------------
    def login_form(
        self, request: Request, message: str | None = None, status: int = 200
    ) -> Response:
        nonce = secrets.token_urlsafe(24)
        response = self.page("login.html", status=status, csrf=nonce, message=message, session=None)
        _cookie(self.state, response, LOGIN_COOKIE, nonce, 600)
        return response

    async def login_get(self, request: Request) -> Response:
        return self.login_form(request)

    async def login_post(self, request: Request) -> Response:
        form = await _form(request)
        if form is None or not same_secret(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
            await run_in_threadpool(
                self.state.actions.audit_refusal,
                "console.csrf_refused",
                "console:anonymous",
                {"path": "/login"},
            )
            return self.login_form(request, "the form expired: log in again", 403)
        identity = await run_in_threadpool(
            verify_token,
            self.state.store.engine,
            self.state.store.environment,
            form.get("token", ""),
        )
        if identity is None:
            await run_in_threadpool(
                self.state.actions.audit_refusal,
                "console.login_refused",
                "console:anonymous",
                {"environment": self.state.store.environment},
            )
            return self.login_form(
                request,
                f"unknown or revoked token for {self.state.store.environment}: print one with "
                "`xbot console token` in this environment",
                401,
            )
        sid, _session = self.state.sessions.create(identity)
        await run_in_threadpool(
            self.state.actions.audit_info,
            "console.login",
            identity.actor,
            {"token_id": identity.token_id},
        )
        response = _secure(RedirectResponse("/", status_code=303))
        _cookie(self.state, response, SESSION_COOKIE, sid, int(self.state.sessions.ttl_s))
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        session = self.session(request)
        form = await _form(request)
        if session is not None and form is not None and same_secret(form.get("csrf"), session.csrf):
            self.state.sessions.drop(request.cookies.get(SESSION_COOKIE))
        response = _secure(RedirectResponse("/login", status_code=303))
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- pages -----------------------------------------------------------------------------
    def _account(self, handle: str) -> Any:
        try:
            return self.state.store.get_account_by_handle(handle)
        except StoreError:
            return None

    def _page_context(
        self, request: Request, session: Session, account: Any, tab: str
    ) -> dict[str, Any]:
        accounts = self.state.store.list_accounts()
        return {
            "session": session,
            "csrf": session.csrf,
            "account": account,
            "accounts": accounts,
            "tab": tab,
            "notice": request.query_params.get("notice"),
            "error": request.query_params.get("error"),
            "now_local": views.local(self.state.clock(), ZoneInfo(account.timezone)),
        }

    def _guarded_get(self, request: Request, tab: str, render: Callable[..., Response]) -> Response:
        session = self.session(request)
        if session is None:
            return _secure(RedirectResponse("/login", status_code=303))
        account = self._account(request.path_params["handle"])
        if account is None:
            return self.refused(f"no account @{request.path_params['handle']} here", 404)
        return render(request, session, account, self._page_context(request, session, account, tab))

    def home(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return _secure(RedirectResponse("/login", status_code=303))
        accounts = self.state.store.list_accounts()
        if not accounts:
            return self.refused("no accounts yet: run the bot once (`xbot run`) first", 404)
        handle = quote(accounts[0].handle)
        return _secure(RedirectResponse(f"/a/{handle}/queue", status_code=303))

    def queue(self, request: Request) -> Response:
        def render(
            request: Request, session: Session, account: Any, ctx: dict[str, Any]
        ) -> Response:
            page = views.queue_page(
                self.state.store.engine, self.state.store.environment, account, _page_no(request)
            )
            return self.page("queue.html", page=page, **ctx)

        return self._guarded_get(request, "queue", render)

    def recent(self, request: Request) -> Response:
        def render(
            request: Request, session: Session, account: Any, ctx: dict[str, Any]
        ) -> Response:
            page = views.recent_page(
                self.state.store.engine,
                self.state.store.environment,
                account,
                _page_no(request),
                web_base_url=self.state.settings.x_web_base_url,
                before=views.parse_cursor(request.query_params.get("cursor")),
            )
            return self.page("recent.html", page=page, horizons=views.HORIZONS, **ctx)

        return self._guarded_get(request, "recent", render)

    def _learning(self, account: Any) -> views.LearningView:
        return views.learning_view(
            self.state.store.engine,
            self.state.store.environment,
            account,
            self.state.settings,
            self.state.models_dir,
        )

    def learning(self, request: Request) -> Response:
        def render(
            request: Request, session: Session, account: Any, ctx: dict[str, Any]
        ) -> Response:
            return self.page("learning.html", view=self._learning(account), **ctx)

        return self._guarded_get(request, "learning", render)

    def learning_png(self, request: Request) -> Response:
        from xbot_assets.console import plots

        def render(
            request: Request, session: Session, account: Any, ctx: dict[str, Any]
        ) -> Response:
            view = self._learning(account)
            if request.path_params["figure"] == "arms":
                if not view.arms:
                    return self.refused("no arm posteriors yet", 404)
                png = plots.interval_chart(
                    view.arms, label="arm", title="Arm posteriors (best 25 by mean)"
                )
            else:
                png = plots.hour_chart(view.hours, title=f"Hour posteriors ({account.timezone})")
            return _secure(Response(png, media_type="image/png"))

        return self._guarded_get(request, "learning", render)

    def controls(self, request: Request) -> Response:
        def render(
            request: Request, session: Session, account: Any, ctx: dict[str, Any]
        ) -> Response:
            from xbot_assets.console.controls import controls_view

            data = controls_view(self.state.settings, self.state.store, account, self.state.clock)
            return self.page("controls.html", data=data, **ctx)

        return self._guarded_get(request, "controls", render)

    # --- actions ---------------------------------------------------------------------------
    async def _post(self, request: Request) -> tuple[Session, Any, dict[str, str]] | Response:
        session = self.session(request)
        form = await _form(request)
        actor = session.identity.actor if session is not None else "console:anonymous"
        if session is None:
            return self.refused("not logged in (or the session expired): log in again", 403)
        if form is None or not same_secret(form.get("csrf"), session.csrf):
            await run_in_threadpool(
                self.state.actions.audit_refusal,
                "console.csrf_refused",
                actor,
                {"path": request.url.path},
            )
            return self.refused(
                "the form's security token is missing or wrong: reload the page and try again"
            )
        account = await run_in_threadpool(self._account, request.path_params["handle"])
        if account is None:
            return self.refused(f"no account @{request.path_params['handle']} here", 404)
        return session, account, form

    async def post_action(self, request: Request) -> Response:
        got = await self._post(request)
        if isinstance(got, Response):
            return got
        session, account, form = got
        actor = session.identity.actor
        action = request.path_params["action"]
        try:
            post_id = int(request.path_params["post_id"])
        except ValueError:
            return self.refused("bad post id", 404)
        actions = self.state.actions
        tab = form.get("back", "queue") if form.get("back") in ("queue", "recent") else "queue"
        try:
            if action == "approve":
                result = await run_in_threadpool(actions.approve, account.id, post_id, actor=actor)
            elif action == "reject":
                result = await run_in_threadpool(
                    actions.reject, account.id, post_id, reason=form.get("reason", ""), actor=actor
                )
            elif action == "move":
                when = _local_time(form.get("slot", ""), account.timezone)
                result = await run_in_threadpool(
                    actions.move, account.id, post_id, when, actor=actor
                )
            elif action == "edit":
                parts = [form[k] for k in sorted(form, key=_part_key) if k.startswith("part_")]
                result = await run_in_threadpool(
                    actions.edit, account.id, post_id, parts, actor=actor
                )
            else:
                return self.refused(f"unknown action {action!r}", 404)
        except ActionRefused as exc:
            await run_in_threadpool(
                actions.audit_refusal,
                f"console.{action}_refused",
                actor,
                {"post_id": post_id, "reason": str(exc)[:300]},
            )
            return self._back(account, tab, form, error=str(exc))
        return self._back(account, tab, form, notice=result.message)

    def _back(self, account: Any, tab: str, form: dict[str, str], **message: str) -> Response:
        query = {k: v for k, v in message.items() if v}
        page = form.get("page")
        if page and page.isdigit():
            query["page"] = page
        url = f"/a/{quote(account.handle)}/{tab}?{urlencode(query)}"
        return _secure(RedirectResponse(url, status_code=303))

    async def brake(self, request: Request) -> Response:
        got = await self._post(request)
        if isinstance(got, Response):
            return got
        session, account, form = got
        from xbot_assets.console.controls import set_brake

        reason = " ".join(form.get("reason", "").split())[:500]
        state = form.get("state")
        if state not in ("on", "off") or not reason:
            return self._back(account, "controls", {}, error="say why: the brake needs a reason")
        await run_in_threadpool(
            set_brake,
            self.state.settings,
            self.state.store,
            engaged=state == "on",
            reason=reason,
            actor=session.identity.actor,
            clock=self.state.clock,
        )
        word = "ON: no post will be claimed" if state == "on" else "off: posting allowed"
        return self._back(account, "controls", {}, notice=f"brake {word}")

    def css(self, request: Request) -> Response:
        response = Response(CSS, media_type="text/css")
        _secure(response)
        response.headers["Cache-Control"] = "max-age=3600"
        return response


def _part_key(name: str) -> int:
    tail = name.removeprefix("part_")
    return int(tail) if tail.isdigit() else 10_000


def _page_no(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 1_000_000 else 1


def _local_time(value: str, timezone: str) -> datetime:
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ActionRefused(f"{value!r} is not a time: use YYYY-MM-DDTHH:MM") from None
    if naive.tzinfo is None:
        naive = naive.replace(tzinfo=ZoneInfo(timezone))
    return naive.astimezone(ZoneInfo("UTC"))


async def _form(request: Request) -> dict[str, str] | None:
    """The urlencoded form (last value of each key), or None when it is not one."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def create_app(
    settings: Any,
    *,
    store: Any | None = None,
    clock: Clock = utc_now,
    secure_cookies: bool = False,
) -> Starlette:
    """The console app over ``store`` (default: the settings' durable store).

    Args:
        settings: the process settings (environment, caps, approval mode, X web URL).
        store: a :class:`~xbot_assets.store.durable.DurableStore` (tests and the benchmark
            share theirs).
        clock: the bot's clock (approval-after-slot and slot checks use it).
        secure_cookies: mark cookies Secure (always when not on loopback).
    """
    from xbot_assets.store.durable import DurableStore

    if store is None:
        store = DurableStore.from_settings(settings)
    actions = PostActions(store, settings, clock)
    state = ConsoleState(
        settings=settings,
        store=store,
        clock=clock,
        sessions=SessionStore(),
        secure_cookies=secure_cookies,
        templates=_templates(),
        actions=actions,
        models_dir=settings.xbot_home / "models" / settings.app_env,
    )
    console = Console(state)
    routes = [
        Route("/", console.home),
        Route("/login", console.login_get, methods=["GET"]),
        Route("/login", console.login_post, methods=["POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/static/console.css", console.css),
        Route("/a/{handle}/queue", console.queue),
        Route("/a/{handle}/recent", console.recent),
        Route("/a/{handle}/learning", console.learning),
        Route("/a/{handle}/learning/{figure:str}.png", console.learning_png),
        Route("/a/{handle}/controls", console.controls),
        Route("/a/{handle}/posts/{post_id}/{action}", console.post_action, methods=["POST"]),
        Route("/a/{handle}/brake", console.brake, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.console = state
    return app
