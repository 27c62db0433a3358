"""``xbot post --dry-run``: the post the poster would make next, and whether it would go out.

For each active account: the post :meth:`PostingLedger.next_due_id` names (the exact row the
next claim would take), its arm, scores and schedule, the safety guard's verdict on its text
(the whole thread for a thread root, compared with the account's recent posts), and the gate the
claim checks (brake, X back-off, rate caps) as of now. Nothing is claimed, sent or written.

The text is shown because this is the operator's own terminal and the point of a dry run; the
health server never shows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from xbot_assets.content.safety import DUPLICATE_WINDOW
from xbot_assets.health.checks import HealthContext
from xbot_assets.ops.dbread import read_connection
from xbot_assets.store.durable.posts import recent_texts_query
from xbot_assets.store.durable.schema import accounts, tweets


def _guard(texts: list[str], recent: list[str]) -> dict[str, Any]:
    from xbot_assets.content import safety

    if len(texts) > 1:
        verdict = safety.check_thread(texts, recent=recent)
    else:
        verdict = safety.check(texts[0], recent=recent)
    return verdict.to_dict()


def _account_ids(ctx: HealthContext, handle: str | None) -> list[tuple[int, str]]:
    query = select(accounts.c.id, accounts.c.handle).where(
        and_(accounts.c.environment == ctx.environment, accounts.c.active.is_(True))
    )
    if handle is not None:
        query = query.where(accounts.c.handle == handle.lstrip("@"))
    with read_connection(ctx.engine) as conn:
        return [(int(r.id), str(r.handle)) for r in conn.execute(query.order_by(accounts.c.id))]


class UnknownAccountError(LookupError):
    """The ``--account`` handle is not an active account of this environment."""


def dry_run_next_post(
    ctx: HealthContext, *, account: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """What the next claim would take and whether it would be sent, per account (read only)."""
    from xbot_assets.posting.ledger import PostingLedger, RateCaps

    now = now or ctx.clock()
    ledger = PostingLedger(ctx.engine, ctx.environment)
    caps = RateCaps.from_settings(ctx.settings)
    found = _account_ids(ctx, account)
    if account is not None and not found:
        raise UnknownAccountError(
            f"no active account @{account.lstrip('@')} in {ctx.environment}: "
            "check the handle (xbot status lists them)"
        )
    plans: list[dict[str, Any]] = []
    for account_id, handle in found:
        plan: dict[str, Any] = {"account": handle, "account_id": account_id}
        due_id = ledger.next_due_id(account_id, now=now, approved_only=caps.require_approval)
        with read_connection(ctx.engine) as conn:
            if due_id is None:
                upcoming = conn.execute(
                    select(tweets.c.id, tweets.c.scheduled_at)
                    .where(
                        and_(
                            tweets.c.environment == ctx.environment,
                            tweets.c.account_id == account_id,
                            tweets.c.status == "queued",
                        )
                    )
                    .order_by(tweets.c.scheduled_at)
                    .limit(1)
                ).first()
                plan.update(
                    {
                        "would_post": False,
                        "why_not": "nothing due: the queue is empty"
                        if upcoming is None
                        else f"nothing due yet: post {upcoming.id} is scheduled for "
                        f"{upcoming.scheduled_at.isoformat()}",
                        "post": None,
                    }
                )
                plans.append(plan)
                continue
            row = conn.execute(select(tweets).where(tweets.c.id == due_id)).one()
            parts, ids = [row.text], [int(row.id)]
            if row.thread_position == 0 and row.thread_size > 1:
                rows = conn.execute(
                    select(tweets.c.id, tweets.c.text)
                    .where(tweets.c.thread_root_id == row.id)
                    .order_by(tweets.c.thread_position)
                ).all()
                parts, ids = [r.text for r in rows], [int(r.id) for r in rows]
            # What is on X (or may be) in the duplicate window, as X would compare it.
            query = recent_texts_query(
                ctx.environment, account_id, now - DUPLICATE_WINDOW, exclude_ids=ids,
                statuses=("posting", "posted", "unknown"),
            )  # fmt: skip
            recent = [str(text) for text in conn.execute(query).scalars()]
            blocked = ledger.gate(conn, account_id, caps, now, is_reply=row.thread_position > 0)
        verdict = _guard(parts, recent)
        plan["post"] = {
            "id": int(row.id),
            "arm": row.arm,
            "format": row.format,
            "topic": row.topic,
            "score": row.score,
            "scores": row.scores,
            "scheduled_at": row.scheduled_at.isoformat(),
            "thread_position": int(row.thread_position),
            "thread_size": int(row.thread_size),
            "text": parts,
        }
        plan["guard"] = verdict
        plan["gate"] = {
            "open": blocked is None,
            "blocked_by": blocked.reason if blocked else None,
            "until": blocked.until.isoformat() if blocked and blocked.until else None,
        }
        plan["would_post"] = blocked is None and bool(verdict["ok"])
        if blocked is not None:
            plan["why_not"] = blocked.reason
        elif not verdict["ok"]:
            plan["why_not"] = "the safety guard rejects it: " + ", ".join(verdict["reasons"])
        plans.append(plan)
    return {
        "environment": ctx.environment,
        "at": now.isoformat(),
        "poster": ctx.settings.resolved_poster,
        "posting_to_real_x": ctx.settings.posting_to_real_x,
        "accounts": plans,
    }


def render_dry_run(result: dict[str, Any]) -> str:
    """The text form of :func:`dry_run_next_post`."""
    lines = [
        f"dry run at {result['at']} ({result['environment']}, poster {result['poster']}): "
        "nothing is claimed or sent"
    ]
    if not result["accounts"]:
        lines.append("no active account: the posting job creates it on its first run")
    for plan in result["accounts"]:
        lines.append(f"@{plan['account']}")
        post = plan.get("post")
        if post is None:
            lines.append(f"  would not post: {plan['why_not']}")
            continue
        lines.append(
            f"  next post #{post['id']} arm {post['arm'] or '-'} score "
            f"{post['score'] if post['score'] is not None else '-'} scheduled "
            f"{post['scheduled_at']} (part {post['thread_position'] + 1}/{post['thread_size']})"
        )
        if post["scores"]:
            lines.append(f"  scores {post['scores']}")
        for index, text in enumerate(post["text"], start=1):
            prefix = f"  [{index}] " if len(post["text"]) > 1 else "  | "
            lines.extend(prefix + line for line in text.splitlines() or [""])
        guard = plan["guard"]
        lines.append(
            "  guard: pass"
            if guard["ok"]
            else "  guard: REJECT (" + ", ".join(guard["reasons"]) + ")"
        )
        gate = plan["gate"]
        lines.append("  gate: open" if gate["open"] else f"  gate: BLOCKED, {gate['blocked_by']}")
        verdict = "would post now" if plan["would_post"] else f"would not post: {plan['why_not']}"
        lines.append(f"  => {verdict}")
    return "\n".join(lines)


class PolicyPreviewError(RuntimeError):
    """The policy preview cannot run as asked (e.g. it would spend AI budget unasked)."""


def preview_policy(
    ctx: HealthContext,
    *,
    account: str | None = None,
    allow_ai_spend: bool = False,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """What the content policy would queue for each account's next open slot; writes nothing.

    It runs the engine's own decision (:func:`xbot_assets.engine.decide.decide_slot`: sample an
    arm from the latest posteriors, generate candidates, guard, score, pick) without queueing,
    recording candidates or touching the sandbox. With the OpenAI generator it calls OpenAI and
    spends budget, so it refuses unless ``allow_ai_spend``.
    """
    settings = ctx.settings
    if settings.resolved_generator == "openai" and not allow_ai_spend:
        raise PolicyPreviewError(
            "the policy preview would call OpenAI and spend AI budget: add --allow-ai-spend, "
            "or drop --policy to see only the queued post"
        )
    from xbot_assets.engine.decide import decide_slot, load_models
    from xbot_assets.engine.planner import open_slots
    from xbot_assets.engine.runtime import Runtime
    from xbot_assets.store.durable import DurableStore

    now = now or ctx.clock()
    store = DurableStore(ctx.engine, ctx.environment)
    found = _account_ids(ctx, account)
    if account is not None and not found:
        raise UnknownAccountError(
            f"no active account @{account.lstrip('@')} in {ctx.environment}: "
            "check the handle (xbot status lists them)"
        )
    models = None
    previews: list[dict[str, Any]] = []
    for account_id, handle in found:
        account_settings = settings.model_copy(update={"x_handle": handle})
        timezone = store.get_account(account_id).timezone
        slots = open_slots(store, account_settings, account_id, now=now, timezone=timezone)
        if not slots:
            previews.append(
                {"account": handle, "slot": None, "why_not": "no open slot in the next 24 h"}
            )
            continue
        models = models or load_models(settings)
        runtime = Runtime(account_settings, lambda: now)
        generator = runtime.generator(store)
        recent = store.recent_texts(account_id, since=now - DUPLICATE_WINDOW)
        try:
            decision, candidates, chosen = decide_slot(
                runtime,
                store,
                account_id,
                slots[0],
                models,
                generator=generator,
                timezone=timezone,
                recent=recent,
            )
        finally:
            runtime.close()
        previews.append(
            {
                "account": handle,
                "slot": slots[0].isoformat(),
                "arm": decision.arm,
                "propensity": round(decision.propensity, 6),
                "sampled_value": decision.sampled_values.get(decision.arm),
                "posteriors_cold_start": models.posteriors_cold,
                "scorer_cold_start": models.scorer_cold,
                "candidates": [
                    {
                        "parts": list(c.parts),
                        "accepted": c.accepted,
                        "reasons": c.reasons,
                        "score": c.score,
                        "generator": c.generator,
                    }
                    for c in candidates
                ],
                "chosen": None
                if chosen is None
                else {"parts": list(chosen.parts), "score": chosen.score},
                "why_not": None if chosen is not None else decision.skipped_reason,
            }
        )
    return previews


def render_policy_preview(previews: list[dict[str, Any]]) -> str:
    """The text form of :func:`preview_policy`."""
    lines = ["policy preview (nothing is queued or recorded)"]
    for preview in previews:
        if preview["slot"] is None:
            lines.append(f"@{preview['account']}: {preview['why_not']}")
            continue
        lines.append(
            f"@{preview['account']}: slot {preview['slot']} arm {preview['arm']} "
            f"(propensity {preview['propensity']:.3f}"
            + (", cold start" if preview["posteriors_cold_start"] else "")
            + ")"
        )
        for candidate in preview["candidates"]:
            mark = "pass" if candidate["accepted"] else "REJECT " + ",".join(candidate["reasons"])
            score = candidate["score"]
            first = candidate["parts"][0].splitlines()[0] if candidate["parts"] else ""
            lines.append(f"  [{mark}] score {score if score is not None else '-'}  {first[:70]}")
        chosen = preview["chosen"]
        lines.append(
            f"  => would queue: {chosen['parts'][0].splitlines()[0][:70]}"
            if chosen
            else f"  => would queue nothing: {preview['why_not']}"
        )
    return "\n".join(lines)
