"""The sandbox's web pages use jinja2's own inheritance: every page extends ``base.html``."""

from __future__ import annotations

from pathlib import Path

from jinja2 import nodes

from xbot_assets.sandbox import web

TEMPLATES = Path(web.__file__).parent / "templates"
PAGES = sorted(p.stem for p in TEMPLATES.glob("*.html") if not p.stem.startswith("_"))


def test_every_page_extends_the_base_layout() -> None:
    assert set(PAGES) >= {"login", "challenge", "home", "status", "profile", "not_found", "error"}
    for name in PAGES:
        if name == "base":
            continue
        source = (TEMPLATES / f"{name}.html").read_text(encoding="utf-8")
        tree = web._ENV.parse(source)
        extends = list(tree.find_all(nodes.Extends))
        assert len(extends) == 1, f"{name}.html does not extend a layout"
        assert isinstance(extends[0].template, nodes.Const)
        assert extends[0].template.value == "base.html"
    assert "{% block" not in Path(web.__file__).read_text(encoding="utf-8")


def test_a_page_renders_inside_the_layout_and_escapes_text() -> None:
    html = web._ENV.get_template("login.html").render(
        title="Log in", redirect="/home", error="<b>wrong</b>"
    )
    assert html.startswith("<!doctype html>")
    assert "<title>Log in / X</title>" in html
    assert '<main role="main">' in html and 'data-testid="LoginForm_Login_Button"' in html
    assert "&lt;b&gt;wrong&lt;/b&gt;" in html  # autoescape on, through the inheritance


def test_the_compose_box_is_included_with_the_page_context() -> None:
    html = web._ENV.get_template("home.html").render(
        title="Home", handle="acme", items=[], reply_to=None, create_path=web.CREATE_TWEET_PATH,
        textarea_id="tweetTextarea_0", button_id="tweetButtonInline",
    )  # fmt: skip
    assert 'data-testid="tweetTextarea_0"' in html
    assert web.CREATE_TWEET_PATH in html
    assert "'/acme/status/'" in html
