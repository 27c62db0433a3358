"""The x.com-like pages work in a real browser: login, compose, reply chain, layout change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xbot_assets.sandbox import Post, SandboxX

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.browser


@pytest.fixture
def page(base_url: str) -> Iterator:
    assert Path(CHROMIUM).exists(), (
        f"Debian's Chromium is missing at {CHROMIUM}: apt-get install -y chromium"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(base_url=base_url)
        yield context.new_page()
        browser.close()


def test_login_post_and_reply_chain_in_chromium(page, sandbox: SandboxX) -> None:
    account = sandbox.account()
    page.goto("/home")
    assert "/i/flow/login" in page.url
    page.fill("input[autocomplete=username]", account.handle)
    page.fill("input[name=password]", account.password)
    page.click('[data-testid="LoginForm_Login_Button"]')
    page.wait_for_url("**/home")
    page.fill('[data-testid="tweetTextarea_0"]', "How to ship a Python package in 5 steps")
    page.click('[data-testid="tweetButtonInline"]')
    page.wait_for_selector('[data-testid="toast"] a')
    root_id = page.get_attribute("body", "data-last-post-id")
    assert _post(sandbox, root_id).text == "How to ship a Python package in 5 steps"
    page.goto(f"/{account.handle}/status/{root_id}")
    page.fill('[data-testid="tweetTextarea_0"]', "Step 1: write a pyproject.toml")
    page.click('[data-testid="tweetButtonInline"]')
    page.wait_for_selector('[data-testid="toast"] a')
    reply_id = page.get_attribute("body", "data-last-post-id")
    reply = _post(sandbox, reply_id)
    assert reply.reply_to is not None and reply.reply_to.id == root_id
    assert reply.conversation_id == root_id
    sandbox.set_fault("automation_block", count=1)
    page.fill('[data-testid="tweetTextarea_0"]', "Step 2: build with uv")
    page.click('[data-testid="tweetButtonInline"]')
    page.wait_for_function(
        "document.querySelector('[data-testid=toast]').textContent.includes('226')"
    )
    page.goto(f"/{account.handle}")
    assert page.locator(f'a[href="/{account.handle}/status/{root_id}"]').count() == 1
    sandbox.set_fault("layout_changed")
    page.goto("/home")
    assert page.locator('[data-testid="tweetTextarea_0"]').count() == 0


def _post(sandbox: SandboxX, post_id: str | None) -> Post:
    post = sandbox.post(str(post_id))
    assert post is not None, f"post {post_id} is not in the sandbox"
    return post
