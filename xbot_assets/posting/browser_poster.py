"""The ``browser`` poster: Playwright (sync API) driving the X web pages with a saved session.

OPT-IN ONLY. X's automation rules forbid scripting the website; the ``api`` poster is the
supported way to post and the default in production. This poster exists because the seed bot
posted this way, and it is tested end to end against the sandbox's x.com-like pages. Choose it
only with ``POSTER=browser``, knowing the account may be restricted for it.

How it works, and what it refuses to do:

- it runs Debian's Chromium (``settings.chromium_path``; never ``playwright install``) headless
  with a saved storage state (``settings.browser_storage_state``: a logged-in session, as secret
  as a password: never logged, never tracked by git, written back with mode 0600);
- a logged-out session or a login challenge stops it (:class:`SessionExpired`,
  :class:`LoginChallenge`): the service raises the brake and alerts. It never types a password
  or guesses through a challenge;
- one session is one account: before typing it reads who is logged in (the page's profile link)
  and stops with :class:`WrongAccount` unless it is the account it posts for;
- it types into ``tweetTextarea_0`` and clicks ``tweetButtonInline`` (with fallbacks for small
  layout changes); a thread part is a reply typed on the parent's status page;
- the new post's id is read from the network answer to the click (X's ``CreateTweet`` GraphQL
  answer, or an API-shaped ``data.id``) or else from the page it moved to or the "view" link
  it shows, never invented nor taken from what the page showed before the click (a reply's
  parent): with no id the outcome is "may have posted" and the reconciler reads the profile.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from xbot_assets.files import write_atomic
from xbot_assets.posting.api_poster import is_loopback_url
from xbot_assets.posting.base import (
    AuthFailed,
    AutomationBlocked,
    DuplicateRefused,
    LoginChallenge,
    NotSent,
    OwnPost,
    PosterBase,
    PosterKindName,
    PostResult,
    PostTimeout,
    RateLimited,
    Rejected,
    ServerFailed,
    SessionExpired,
    SessionStatus,
    WrongAccount,
)
from xbot_assets.xapi.errors import RateLimit

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

TEXTBOX_SELECTORS = (
    '[data-testid="tweetTextarea_0"]',
    '[data-testid="tweetTextarea_0RichTextInputContainer"] [contenteditable="true"]',
    'div[role="textbox"][contenteditable="true"]',
    "textarea[name='text']",
)
BUTTON_SELECTORS = (
    '[data-testid="tweetButtonInline"]',
    '[data-testid="tweetButton"]',
    'button:has-text("Post")',
    'button:has-text("Reply")',
)
LOGIN_URL_MARKERS = ("/login", "/i/flow/login", "/logout")
CHALLENGE_URL_MARKERS = ("/account/access", "/i/flow/challenge", "/challenge", "/account/locked")
CHALLENGE_SELECTORS = (
    '[data-testid="challenge"]',
    'input[name="challenge_response"]',
    "#arkose_iframe",
)
LOGIN_SELECTORS = (
    '[data-testid="loginButton"]',
    '[data-testid="LoginForm_Login_Button"]',
    'input[name="password"]',
)
PROFILE_LINK_SELECTORS = ('[data-testid="AppTabBar_Profile_Link"]',)
"""The navigation's link to the logged-in account's own profile (``/<handle>``)."""
STATUS_ID = re.compile(r"/status/(\d+)")
SESSION_FILE_MODE = 0o600
"""The session file holds X's login cookies: readable by its owner only."""


def _find_id(body: Any) -> str | None:
    """X's id of the created post in a JSON answer (GraphQL CreateTweet or API v2 shape)."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if isinstance(data, dict):
        create = data.get("create_tweet") or data.get("createTweet")
        if isinstance(create, dict):
            result = (create.get("tweet_results") or {}).get("result") or {}
            rest_id = result.get("rest_id") or result.get("id")
            if rest_id:
                return str(rest_id)
        if data.get("id") and isinstance(data.get("id"), str | int):
            return str(data["id"])
    return None


def _error_codes(body: Any) -> list[int]:
    codes: list[int] = []
    if isinstance(body, dict):
        for err in body.get("errors") or []:
            if isinstance(err, dict) and isinstance(err.get("code"), int):
                codes.append(err["code"])
    return codes


class BrowserPoster(PosterBase):
    """Posts by driving the web pages in Chromium with a saved, logged-in session.

    Args:
        web_base_url: ``https://x.com`` or the sandbox's web URL.
        handle: the account's handle (profile page for the timeline read).
        storage_state: path of the saved session (secret; never logged).
        chromium_path: the Chromium executable.
        timeout_ms: how long to wait for each page step and for X's answer.
    """

    kind: PosterKindName = "browser"

    def __init__(
        self,
        web_base_url: str,
        *,
        handle: str,
        storage_state: Path | None,
        chromium_path: Path = Path("/usr/bin/chromium"),
        timeout_ms: int = 15_000,
    ) -> None:
        self.web_base_url = web_base_url.rstrip("/")
        self.handle = handle.lstrip("@")
        self._storage_state = storage_state
        self._chromium_path = chromium_path
        self.timeout_ms = timeout_ms
        self._pw: Any = None
        self._browser: Any = None
        self._context: Any = None

    def __repr__(self) -> str:
        return f"BrowserPoster(web_base_url={self.web_base_url!r}, handle={self.handle!r})"

    @property
    def targets_loopback(self) -> bool:
        return is_loopback_url(self.web_base_url)

    # --- browser lifecycle -------------------------------------------------------------------
    def _ensure_context(self) -> Any:
        if self._context is not None:
            return self._context
        if self._storage_state is None or not Path(self._storage_state).is_file():
            raise SessionExpired(
                "no saved browser session: log in once by hand and save the Playwright storage "
                "state to the file BROWSER_STORAGE_STATE names"
            )
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(
            executable_path=str(self._chromium_path), args=CHROMIUM_ARGS, headless=True
        )
        self._context = self._browser.new_context(storage_state=str(self._storage_state))
        self._context.set_default_timeout(self.timeout_ms)
        return self._context

    def _save_session(self) -> None:
        """Write the refreshed cookies back (mode 0600): sessions stay valid longer."""
        if self._context is None or self._storage_state is None:
            return
        write_atomic(Path(self._storage_state), json.dumps(self._context.storage_state()),
                     mode=SESSION_FILE_MODE)  # fmt: skip

    def close(self) -> None:
        for closer in (self._context, self._browser):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer.close()
        if self._pw is not None:
            with contextlib.suppress(Exception):
                self._pw.stop()
        self._pw = self._browser = self._context = None

    # --- page helpers ------------------------------------------------------------------------
    def _open(self, path: str) -> Any:
        context = self._ensure_context()
        page = context.new_page()
        try:
            page.goto(f"{self.web_base_url}{path}", wait_until="domcontentloaded")
            self._check_logged_in(page)
        except BaseException:
            page.close()
            raise
        return page

    def _check_logged_in(self, page: Any) -> None:
        """Raise when the page is a login form or a challenge; never try to pass either."""
        url_path = urlsplit(page.url).path.lower()
        if any(m in url_path for m in CHALLENGE_URL_MARKERS) or self._any_visible(
            page, CHALLENGE_SELECTORS
        ):
            raise LoginChallenge(
                "X asks for a login challenge: posting stopped; a person must log in by hand "
                "and save a fresh session"
            )
        if any(m in url_path for m in LOGIN_URL_MARKERS) or self._any_visible(
            page, LOGIN_SELECTORS
        ):
            raise SessionExpired(
                "the saved browser session is logged out: posting stopped; log in by hand and "
                "save a fresh session to BROWSER_STORAGE_STATE"
            )

    def _check_account(self, page: Any) -> str:
        """The logged-in handle, when it is the account this poster posts for.

        A session saved for another account would post there: stop instead (nothing typed).

        Raises:
            WrongAccount: the session is another account's.
            NotSent: the page shows no profile link to tell (layout changed?).
        """
        link = self._first(page, PROFILE_LINK_SELECTORS, "link to the logged-in profile")
        logged_in = urlsplit(link.get_attribute("href") or "").path.strip("/").split("/")[0]
        if logged_in.lower() != self.handle.lower():
            raise WrongAccount(
                f"the saved browser session is logged in as @{logged_in}, not @{self.handle}: "
                f"posting stopped, nothing sent; log in as @{self.handle} with `xbot "
                "browser-login` and save that session to BROWSER_STORAGE_STATE"
            )
        return logged_in

    @staticmethod
    def _any_visible(page: Any, selectors: tuple[str, ...]) -> bool:
        for selector in selectors:
            with contextlib.suppress(Exception):
                if page.locator(selector).first.is_visible():
                    return True
        return False

    def _first(self, page: Any, selectors: tuple[str, ...], what: str) -> Any:
        """The first selector (preferred testid, then fallbacks) present on the page."""
        from playwright.sync_api import TimeoutError as PWTimeout

        with contextlib.suppress(PWTimeout):
            page.wait_for_selector(", ".join(selectors), state="attached", timeout=self.timeout_ms)
        for selector in selectors:
            locator = page.locator(selector)
            if locator.count() > 0:
                return locator.first
        self._check_logged_in(page)
        raise NotSent(
            f"the page has no {what} (layout changed?): nothing was sent; update the "
            "selectors in browser_poster.py"
        )

    # --- Poster ------------------------------------------------------------------------------
    def post(self, text: str, *, reply_to: str | None = None) -> PostResult:
        from playwright.sync_api import Error as PWError
        from playwright.sync_api import TimeoutError as PWTimeout

        path = f"/{self.handle}/status/{reply_to}" if reply_to else "/home"
        try:
            page = self._open(path)
        except PWError as exc:
            raise NotSent(f"could not open the X web page ({type(exc).__name__})") from None
        clicked = False
        try:
            self._check_account(page)
            box = self._first(page, TEXTBOX_SELECTORS, "compose box")
            box.click()
            page.keyboard.insert_text(text)
            button = self._first(page, BUTTON_SELECTORS, "post button")

            def is_create(response: Any) -> bool:
                request = response.request
                return request.method == "POST" and (
                    "CreateTweet" in request.url
                    or urlsplit(request.url).path.endswith("/tweets")
                    or "/compose" in request.url
                    or "/status" in request.url
                )

            # A reply is typed on its parent's page: that URL and every status link already
            # shown name older posts, never the new one.
            before_links = {path, page.url, *self._status_links(page)}
            try:
                with page.expect_response(is_create, timeout=self.timeout_ms) as answer:
                    clicked = True
                    button.click()
            except PWTimeout:
                raise PostTimeout(
                    "no answer from X after clicking post: the post may exist"
                ) from None
            result = self._read_result(page, answer.value, text, before_links)
            with contextlib.suppress(Exception):
                self._save_session()  # only a session that just worked is written back
            return result
        except PWError as exc:
            if not clicked:
                raise NotSent(
                    f"the browser failed before the post button was clicked "
                    f"({type(exc).__name__}): nothing was sent"
                ) from None
            raise PostTimeout(
                f"the browser failed while posting ({type(exc).__name__}): the post may exist"
            ) from None
        finally:
            with contextlib.suppress(Exception):
                page.close()

    def _read_result(
        self, page: Any, response: Any, text: str, before_links: set[str]
    ) -> PostResult:
        status = response.status
        body: Any = None
        with contextlib.suppress(Exception):
            body = response.json()
        codes = _error_codes(body)
        messages = (
            " ".join(
                str(e.get("message", ""))
                for e in (body or {}).get("errors") or []
                if isinstance(e, dict)
            )
            if isinstance(body, dict)
            else ""
        )
        if 226 in codes or "automated" in messages.lower():
            raise AutomationBlocked("X's automation block (226) on the web: posting stopped")
        if 187 in codes or "duplicate" in messages.lower():
            raise DuplicateRefused("X refused the post as a duplicate")
        if status == 429 or 88 in codes:
            reset = RateLimit.from_headers(dict(response.headers)).reset_at
            raise RateLimited("X rate-limited the web post", retry_after=reset)
        if status == 401 or 32 in codes or 353 in codes:
            raise SessionExpired(
                "X refused the saved session while posting: posting stopped; log in by hand "
                "and save a fresh session"
            )
        if status >= 500:
            raise ServerFailed(f"X answered {status} to the web post: it may exist")
        if status >= 400 or codes:
            raise Rejected(f"X refused the web post ({status}, codes {codes})")
        x_id = _find_id(body) or self._new_status_id(page, before_links)
        if x_id is None:
            raise ServerFailed(
                "X accepted the web post but showed no id: the reconciler will read the profile"
            )
        return PostResult(x_id=x_id, text=text, raw={"via": "browser"})

    def _new_status_id(self, page: Any, before_links: set[str]) -> str | None:
        """The new post's id as the page shows it after the click: the URL it moved to, else a
        "view" link that appeared. An id the page showed before the click (the opened page's
        own, a reply's parent) is never taken: it would record the part under another post's id.
        """
        with contextlib.suppress(Exception):
            page.wait_for_load_state("domcontentloaded")
        old_ids = {m.group(1) for link in before_links if (m := STATUS_ID.search(link))}
        for link in (page.url, *self._status_links(page)):
            match = STATUS_ID.search(link)
            if match and match.group(1) not in old_ids:
                return match.group(1)
        return None

    @staticmethod
    def _status_links(page: Any) -> list[str]:
        with contextlib.suppress(Exception):
            return list(
                page.eval_on_selector_all(
                    'a[href*="/status/"]', "els => els.map(e => e.getAttribute('href'))"
                )
            )
        return []

    def recent_own_posts(self, *, limit: int = 100) -> list[OwnPost]:
        """The profile page's posts (text and id from each ``article``'s status link)."""
        page = self._open(f"/{self.handle}")
        try:
            items = page.eval_on_selector_all(
                'article, [data-testid="tweet"]',
                """els => els.map(e => {
                    const t = e.querySelector('[data-testid="tweetText"]');
                    const a = e.querySelector('a[href*="/status/"]');
                    return {text: t ? t.innerText : '', href: a ? a.getAttribute('href') : ''};
                })""",
            )
        finally:
            page.close()
        out: list[OwnPost] = []
        seen: set[str] = set()
        for item in items:
            match = STATUS_ID.search(item.get("href") or "")
            if not match or match.group(1) in seen:
                continue
            seen.add(match.group(1))
            out.append(OwnPost(x_id=match.group(1), text=str(item.get("text") or "")))
            if len(out) >= limit:
                break
        return out

    def check_session(self) -> SessionStatus:
        from playwright.sync_api import Error as PWError

        try:
            page = self._open("/home")
            try:
                logged_in = self._check_account(page)
            finally:
                page.close()
        except (AuthFailed, NotSent) as exc:
            return SessionStatus(ok=False, reason=str(exc))
        except PWError as exc:
            return SessionStatus(ok=False, reason=f"browser error: {type(exc).__name__}")
        return SessionStatus(ok=True, handle=logged_in)


def save_browser_session(
    web_base_url: str,
    *,
    handle: str,
    password: str,
    storage_state: Path,
    chromium_path: Path = Path("/usr/bin/chromium"),
    timeout_ms: int = 15_000,
) -> None:
    """Log in once through the login form and save the session (mode 0600) for the poster.

    Meant for an operator at a terminal (and for tests against the sandbox). A verification
    challenge is never answered: it raises :class:`LoginChallenge` and saves nothing.

    Raises:
        LoginChallenge: X asked for a verification step.
        SessionExpired: the login did not succeed (wrong handle or password).
    """
    from playwright.sync_api import sync_playwright

    base = web_base_url.rstrip("/")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context()
            context.set_default_timeout(timeout_ms)
            page = context.new_page()
            page.goto(f"{base}/i/flow/login", wait_until="domcontentloaded")
            page.fill('input[name="text"]', handle)
            page.fill('input[name="password"]', password)
            with page.expect_navigation(wait_until="domcontentloaded"):
                page.click('[data-testid="LoginForm_Login_Button"], button[type="submit"]')
            path = urlsplit(page.url).path.lower()
            if any(m in path for m in CHALLENGE_URL_MARKERS) or BrowserPoster._any_visible(
                page, CHALLENGE_SELECTORS
            ):
                raise LoginChallenge(
                    "X asks for a verification step at login: complete it by hand; nothing saved"
                )
            if any(m in path for m in LOGIN_URL_MARKERS):
                raise SessionExpired("login failed: check the handle and password")
            state = context.storage_state()
        finally:
            browser.close()
    storage_state = Path(storage_state)
    storage_state.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(storage_state, json.dumps(state), mode=SESSION_FILE_MODE)
