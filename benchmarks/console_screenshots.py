"""Screenshots of the console's four pages for the README (docs/img/console_*.png).

A short simulated run without Dagster: the engine fills a day of slots, the sandbox poster posts
what is due hour by hour, the collector takes the 1h/6h/24h snapshots, then the engine refills
the queue, so every page shows what the real code stores. Chromium (Debian's) renders each page
at 1000 px wide; Pillow quantises the PNGs to 128 colours so they stay small. Usage::

    nice -n 5 .venv/bin/python benchmarks/console_screenshots.py
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from xbot_assets.config import Settings, load_settings
from xbot_assets.console.app import create_app
from xbot_assets.console.auth import issue_token
from xbot_assets.console.demo import engine_fill
from xbot_assets.console.server import running_console
from xbot_assets.store.durable import DurableStore

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PAGES = ("queue", "recent", "learning", "controls")


def simulate(root: Path) -> tuple[Settings, DurableStore, datetime]:
    from xbot_assets.engine.decide import refill
    from xbot_assets.engine.runtime import build_runtime
    from xbot_assets.engine.sensing import cached_store
    from xbot_assets.posting.factory import post_due
    from xbot_assets.warehouse.collector import collect_due_metrics

    settings = load_settings(env_file=None, XBOT_HOME=str(root), APP_ENV="local")
    start = engine_fill(settings, posts_per_day=6, n_candidates=3)
    store = cached_store(settings)
    now = start
    for hour in range(1, 31):
        now = start + timedelta(hours=hour)
        runtime = build_runtime(settings, now=now)
        try:
            post_due(runtime.settings, poster=runtime.poster(), clock=runtime.now)
            account_id = runtime.account_id(store)
            collect_due_metrics(store, runtime.reader(), now=now, account_id=account_id)
            if hour == 24:
                refill(runtime, n_candidates=3)
        finally:
            runtime.close()
    return settings, store, now


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings, store, now = simulate(Path(tmp))
        token = issue_token(store.engine, "local", label="operator", created_by="docs", now=now)
        app = create_app(settings, store=store, clock=lambda: now)
        handle = settings.x_handle
        with running_console(app) as base_url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_context(
                base_url=base_url, viewport={"width": 1000, "height": 860}
            ).new_page()
            page.set_default_timeout(300_000)  # the first figure imports matplotlib (slow)
            page.goto("/login")
            page.fill("#token", token)
            page.click("#login")
            page.wait_for_url("**/queue")
            page.goto(f"/a/{handle}/learning", wait_until="load")  # draw the figures once
            for name in PAGES:
                page.goto(f"/a/{handle}/{name}", wait_until="load")
                path = OUT / f"console_{name}.png"
                page.screenshot(path=str(path))
                image = Image.open(path).convert("RGB").quantize(colors=128)
                image.save(path, optimize=True)
                print(f"{path} {path.stat().st_size // 1024} KiB")
            browser.close()


if __name__ == "__main__":
    main()
