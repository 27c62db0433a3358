"""What an operator may do to a queued post: approve, edit, reject, move. Each is one
transaction with its audit row (who, what, ids; never the text), conditional on the post still
being ``queued`` in this environment, so a post the poster already claimed is never changed.

Edits and rejections are also kept on the post itself (``metadata.edits`` with the previous
text, ``metadata.rejection`` with the reason), so learning can read what people refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from xbot_assets.console.slots import SlotRules, next_free_slot, slot_problem, taken_times
from xbot_assets.content.length import MAX_WEIGHTED_LENGTH, weighted_length
from xbot_assets.content.safety import DUPLICATE_WINDOW, GuardConfig, check, check_thread
from xbot_assets.ops.audit import record_audit
from xbot_assets.store.durable import DurableStore, thread_part_hash
from xbot_assets.store.durable.posts import recent_texts_query
from xbot_assets.store.durable.schema import tweets
from xbot_assets.store.hot.dedup import content_hash

MAX_REASON_CHARS = 500


class ActionRefused(Exception):
    """The action cannot be done; the message says why and what to do (shown on the page)."""


@dataclass(frozen=True)
class ActionResult:
    """What an action did, for the page's notice."""

    message: str
    post_id: int


def slot_rules(store: DurableStore, settings: Any, timezone: str) -> SlotRules:
    """The account's slot rules: the planner's schedule config and the settings' caps."""
    from xbot_assets.engine.planner import schedule_config

    return SlotRules(
        schedule=schedule_config(store, settings, timezone),
        max_posts_per_hour=settings.max_posts_per_hour,
        max_posts_per_day=settings.max_posts_per_day,
    )


class PostActions:
    """Operator actions on one environment's posts.

    Args:
        store: the durable store (its environment is the only one acted on).
        settings: caps and the approval mode.
        clock: the bot's clock (the simulated one in the main job).
    """

    def __init__(self, store: DurableStore, settings: Any, clock: Any) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.environment = store.environment

    # --- helpers ---------------------------------------------------------------------------
    def _queued_root(self, conn: Connection, post_id: int, account_id: int) -> Any:
        row = conn.execute(
            select(tweets).where(
                tweets.c.environment == self.environment,
                tweets.c.id == post_id,
                tweets.c.account_id == account_id,
            )
        ).first()
        if row is None:
            raise ActionRefused(f"no post {post_id} for this account in {self.environment}")
        if row.thread_position != 0:
            raise ActionRefused(f"post {post_id} is a thread part: act on its root")
        if row.status != "queued":
            raise ActionRefused(
                f"post {post_id} is {row.status}, no longer queued: reload the page"
            )
        return row

    def _ids(self, conn: Connection, row: Any) -> list[int]:
        if row.thread_size <= 1:
            return [int(row.id)]
        found: list[Any] = list(
            conn.execute(
                select(tweets.c.id).where(
                    tweets.c.environment == self.environment, tweets.c.thread_root_id == row.id
                )
            ).scalars()
        )
        return [int(i) for i in found]

    def _set(self, conn: Connection, ids: list[int], now: datetime, **values: Any) -> None:
        done = conn.execute(
            update(tweets)
            .where(
                tweets.c.environment == self.environment,
                tweets.c.id.in_(ids),
                tweets.c.status == "queued",
            )
            .values(updated_at=now, **values)
        ).rowcount
        if done != len(ids):
            raise ActionRefused("the post changed while you acted (the poster took it?): reload")

    def _audit(
        self, conn: Connection, event: str, actor: str, data: dict[str, Any], now: datetime
    ) -> None:
        record_audit(
            conn,
            environment=self.environment,
            event_type=event,
            actor=actor,
            component="console",
            data=data,
            clock=lambda: now,
        )

    def _rules(self, account_id: int) -> SlotRules:
        timezone = self.store.get_account(account_id).timezone
        return slot_rules(self.store, self.settings, timezone)

    # --- actions ---------------------------------------------------------------------------
    def approve(self, account_id: int, post_id: int, *, actor: str) -> ActionResult:
        """Approve; a post whose slot passed moves to the next free slot (never sent late)."""
        now = self.clock()
        rules = self._rules(account_id)
        with self.store.engine.begin() as conn:
            row = self._queued_root(conn, post_id, account_id)
            ids = self._ids(conn, row)
            values: dict[str, Any] = {
                "approval": "approved",
                "approved_by": actor[:128],
                "approved_at": now,
            }
            data: dict[str, Any] = {"post_id": post_id, "account_id": account_id}
            message = f"post {post_id} approved"
            if row.scheduled_at < now:
                taken = taken_times(
                    conn, self.environment, account_id, around=now, exclude_id=row.id
                )
                try:
                    slot = next_free_slot(rules, taken, after=now)
                except ValueError as exc:
                    raise ActionRefused(str(exc)) from None
                values["scheduled_at"] = slot
                data.update(moved_from=row.scheduled_at.isoformat(), moved_to=slot.isoformat())
                message += (
                    f"; its slot had passed, so it moved to the next free slot "
                    f"{slot.isoformat(timespec='minutes')}"
                )
            self._set(conn, ids, now, **values)
            self._audit(conn, "console.post_approved", actor, data, now)
        return ActionResult(message, post_id)

    def reject(self, account_id: int, post_id: int, *, reason: str, actor: str) -> ActionResult:
        """Reject with a reason: the post (every part) becomes ``failed`` and is never sent."""
        reason = " ".join(reason.split())[:MAX_REASON_CHARS]
        if not reason:
            raise ActionRefused("say why you reject it (the reason is kept for learning)")
        now = self.clock()
        with self.store.engine.begin() as conn:
            row = self._queued_root(conn, post_id, account_id)
            ids = self._ids(conn, row)
            meta = dict(row.metadata or {})
            meta["rejection"] = {"reason": reason, "by": actor, "at": now.isoformat()}
            conn.execute(update(tweets).where(tweets.c.id == row.id).values(metadata=meta))
            self._set(
                conn,
                ids,
                now,
                status="failed",
                approval="rejected",
                approved_by=actor[:128],
                approved_at=now,
                last_error=f"rejected by {actor}: {reason}"[:2000],
            )
            self._audit(
                conn,
                "console.post_rejected",
                actor,
                {"post_id": post_id, "account_id": account_id, "reason": reason, "arm": row.arm},
                now,
            )
        return ActionResult(f"post {post_id} rejected", post_id)

    def move(self, account_id: int, post_id: int, when: datetime, *, actor: str) -> ActionResult:
        """Move the slot to ``when`` (UTC) if quiet hours, spacing and caps allow it."""
        now = self.clock()
        rules = self._rules(account_id)
        with self.store.engine.begin() as conn:
            row = self._queued_root(conn, post_id, account_id)
            taken = taken_times(conn, self.environment, account_id, around=when, exclude_id=row.id)
            problem = slot_problem(when, rules, taken, now=now)
            if problem is not None:
                raise ActionRefused(f"cannot move post {post_id} there: {problem}")
            self._set(conn, self._ids(conn, row), now, scheduled_at=when)
            self._audit(
                conn,
                "console.post_moved",
                actor,
                {
                    "post_id": post_id,
                    "account_id": account_id,
                    "from": row.scheduled_at.isoformat(),
                    "to": when.isoformat(),
                },
                now,
            )
        return ActionResult(
            f"post {post_id} moved to {when.isoformat(timespec='minutes')}", post_id
        )

    def edit(self, account_id: int, post_id: int, parts: list[str], *, actor: str) -> ActionResult:
        """Replace the text (one entry per thread part) after the length rule and the safety
        guard accept it; a refusal says why and changes nothing."""
        parts = [p.replace("\r\n", "\n").strip() for p in parts]
        now = self.clock()
        with self.store.engine.begin() as conn:
            row = self._queued_root(conn, post_id, account_id)
            ids = self._ids(conn, row)
            current = {
                int(r.id): r for r in conn.execute(select(tweets).where(tweets.c.id.in_(ids)))
            }
            ordered = sorted(current.values(), key=lambda r: r.thread_position)
            if len(parts) != len(ordered):
                raise ActionRefused(
                    f"post {post_id} has {len(ordered)} part(s); send exactly that many texts"
                )
            if any(not p for p in parts):
                raise ActionRefused("a part is empty: write its text or reject the post")
            if parts == [r.text for r in ordered]:
                raise ActionRefused("nothing changed")
            for index, part in enumerate(parts, start=1):
                length = weighted_length(part)
                if length > MAX_WEIGHTED_LENGTH:
                    where = f"part {index}" if len(parts) > 1 else "the text"
                    raise ActionRefused(
                        f"edit refused: {where} is {length} weighted characters, X allows "
                        f"{MAX_WEIGHTED_LENGTH}"
                    )
            query = recent_texts_query(
                self.environment, account_id, now - DUPLICATE_WINDOW, exclude_ids=ids
            )
            recent = [str(text) for text in conn.execute(query).scalars()]
            config = GuardConfig()
            verdict = (
                check_thread(parts, recent=recent, config=config)
                if len(parts) > 1
                else check(parts[0], recent=recent, config=config)
            )
            if not verdict.ok:
                raise ActionRefused(
                    "edit refused by the safety guard: "
                    + "; ".join(verdict.details or verdict.reasons)
                )
            root_hash = content_hash(" ".join(parts))
            clash = conn.execute(
                select(tweets.c.id).where(
                    tweets.c.environment == self.environment,
                    tweets.c.account_id == account_id,
                    tweets.c.content_hash == root_hash,
                    tweets.c.id.not_in(ids),
                )
            ).first()
            if clash is not None:
                raise ActionRefused(f"edit refused: post {clash.id} already has this text")
            meta = dict(ordered[0].metadata or {})
            edits = list(meta.get("edits", []))
            edits.append(
                {
                    "at": now.isoformat(),
                    "by": actor,
                    "previous_parts": [r.text for r in ordered],
                    "previous_hash": ordered[0].content_hash,
                }
            )
            meta["edits"] = edits
            for row_, text in zip(ordered, parts, strict=True):
                digest = (
                    root_hash
                    if row_.thread_position == 0
                    else thread_part_hash(root_hash, row_.thread_position)
                )
                extra: dict[str, Any] = {"metadata": meta} if row_.thread_position == 0 else {}
                conn.execute(
                    update(tweets)
                    .where(tweets.c.id == row_.id, tweets.c.status == "queued")
                    .values(text=text, content_hash=digest, updated_at=now, **extra)
                )
            self._audit(
                conn,
                "console.post_edited",
                actor,
                {
                    "post_id": post_id,
                    "account_id": account_id,
                    "previous_hash": ordered[0].content_hash,
                    "new_hash": root_hash,
                    "parts": len(parts),
                    "guard": "passed",
                },
                now,
            )
        return ActionResult(f"post {post_id} edited (guard and length rules passed)", post_id)

    def audit_refusal(self, event: str, actor: str, data: dict[str, Any]) -> None:
        """Record a refused action (a refused edit, a bad CSRF token) as a warning row."""
        self.audit_info(event, actor, data, severity="warning")

    def audit_info(
        self, event: str, actor: str, data: dict[str, Any], *, severity: str = "info"
    ) -> None:
        """One audit row of its own (a login, a refusal)."""
        record_audit(
            self.store.engine,
            environment=self.environment,
            event_type=event,
            actor=actor,
            component="console",
            data=data,
            severity=severity,
            clock=self.clock,
        )
