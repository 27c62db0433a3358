"""Drive the sandbox X like the bot would, to give the warehouse tests real data.

Posts go through the durable store's posting protocol (enqueue → claim → post to the sandbox
→ mark posted); metrics come back through the real reader (XApiClient over the sandbox's HTTP
server) at 1h/6h/24h/72h on the sandbox's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from xbot_assets.sandbox import SandboxX
from xbot_assets.sandbox.platform import APP_BEARER_TOKEN
from xbot_assets.sandbox.server import running_server
from xbot_assets.sandbox.textgen import make_post_text
from xbot_assets.store.durable import DurableStore
from xbot_assets.warehouse.collector import collect_due_metrics, record_followers
from xbot_assets.xapi import BearerAuth, XApiClient

FORMATS = ("single", "question", "list", "hot_take", "how_to")
TOPICS = ("ai", "python", "data_science", "startups")
GENERATORS = ("offline", "openai")


@dataclass
class SimulationResult:
    account_id: int
    handle: str
    timezone: str
    n_posts: int
    collector_calls: int


def simulate(
    store: DurableStore,
    *,
    n_posts: int = 30,
    seed: int = 11,
    hours_between_posts: int = 3,
    tail_hours: int = 80,
) -> SimulationResult:
    """Post ``n_posts`` posts a few hours apart, collecting due metrics every sim hour."""
    rng = np.random.default_rng(seed)
    sandbox = SandboxX("default", seed=seed)
    x_account = sandbox.account()
    timezone = sandbox.params.timezone
    account = store.ensure_account(x_account.handle, x_user_id=x_account.id, timezone=timezone)
    posted = 0
    with running_server(sandbox) as base_url:
        client = XApiClient(
            base_url,
            user_auth=BearerAuth(x_account.user_token),
            app_auth=BearerAuth(APP_BEARER_TOKEN),
        )
        calls = 0
        total_hours = n_posts * hours_between_posts + tail_hours
        for hour in range(total_hours):
            now = sandbox.clock.now()
            if hour % hours_between_posts == 0 and posted < n_posts:
                fmt = FORMATS[int(rng.integers(len(FORMATS)))]
                topic = TOPICS[int(rng.integers(len(TOPICS)))]
                text = make_post_text(fmt, topic, rng) + f" #{posted}"
                post = store.enqueue_post(
                    account.id,
                    text,
                    arm=f"{fmt}:{topic}",
                    format=fmt,
                    topic=topic,
                    scheduled_at=now,
                    score=float(rng.random()),
                    metadata={"generator": GENERATORS[posted % 2], "policy": "thompson"},
                )
                claim = store.claim_post(post.id, now=now)
                assert claim is not None
                created = client.create_tweet(text)
                store.mark_posted(
                    post.id, x_id=created.id, attempt_id=claim.attempt_id, posted_at=now
                )
                posted += 1
            report = collect_due_metrics(store, client, now=now)
            calls += report.calls
            if hour % 12 == 0:
                record_followers(store, client, now=now)
            sandbox.advance(timedelta(hours=1))
        client.close()
    return SimulationResult(account.id, x_account.handle, timezone, posted, calls)
