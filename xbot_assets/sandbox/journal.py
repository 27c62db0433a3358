"""The sandbox's journal: its writes as JSON lines, replayed so several processes share one state.

Also :func:`locked`, the guard every public sandbox call runs under (the thread lock, plus the
journal's file lock and catch-up when the sandbox has a journal).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from xbot_assets.sandbox.platform import SandboxX

T = TypeVar("T")


def locked(method: Callable[..., T]) -> Callable[..., T]:
    """Run a sandbox method under its lock, after catching up with other processes' writes."""

    @functools.wraps(method)
    def wrapper(self: SandboxX, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            if self._journal is None or self._journal.replaying:
                return method(self, *args, **kwargs)
            with self._journal.hold(self):  # file lock + the other processes' writes
                return method(self, *args, **kwargs)

    return wrapper


class JournalError(ValueError):
    """A journal this sandbox cannot replay (another scenario or version, a corrupt line)."""


class Journal:
    """An append-only JSON-lines log of a sandbox's writes, replayed to rebuild its state.

    Outcomes are a deterministic function of the seed and the sequence of writes, so replaying
    the writes at their simulated times rebuilds every post, count and follower exactly. This
    lets separate processes (Dagster runs of the embedded default) share one sandbox: each
    opens ``SandboxX(..., journal=path)``, picks up the others' writes before every call, and
    appends its own under a file lock. Faults and rate-limit windows are not journaled.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.offset = 0
        self.replaying = False
        self._depth = 0
        self._lock_file: Any = None

    def open(self, sandbox: SandboxX) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.hold(sandbox, sync=False):
            if not self.path.exists() or self.path.stat().st_size == 0:
                meta = {
                    "op": "meta",
                    "scenario": sandbox.params.name,
                    "seed": sandbox.seed,
                    "epoch": sandbox.epoch.isoformat(),
                }
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(meta) + "\n")
            self.sync(sandbox)

    @contextlib.contextmanager
    def hold(self, sandbox: SandboxX, *, sync: bool = True) -> Iterator[None]:
        """Hold the journal's file lock (re-entrant) and catch up with other writers first."""
        if self._depth == 0:
            self._lock_file = self.lock_path.open("a")
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self._depth += 1
        try:
            if sync and self._depth == 1:
                self.sync(sandbox)
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    def sync(self, sandbox: SandboxX) -> None:
        """Apply entries appended since the last read (by this or another process)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size <= self.offset:
            return
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.replaying = True
        saved_now = sandbox.clock.now()
        latest = saved_now
        try:
            for number, raw in enumerate(complete.decode("utf-8", "replace").splitlines(), 1):
                if not raw.strip():
                    continue
                try:
                    entry = json.loads(raw)
                    latest = max(latest, self._apply(sandbox, entry))
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise JournalError(
                        f"sandbox journal {self.path} line {number} is not a journal entry "
                        f"({type(exc).__name__}): move the file away to start afresh, or "
                        "give another --journal path"
                    ) from None
        finally:
            self.replaying = False
            sandbox.clock.set(latest)
        self.offset += len(complete)

    def _apply(self, sandbox: SandboxX, entry: dict[str, Any]) -> datetime:
        op = entry["op"]
        if op == "meta":
            if entry["scenario"] != sandbox.params.name or int(entry["seed"]) != sandbox.seed:
                raise JournalError(
                    f"sandbox journal {self.path} belongs to scenario {entry['scenario']!r} "
                    f"seed {entry['seed']}, not {sandbox.params.name!r} seed {sandbox.seed}: "
                    "use the same scenario and seed, or another journal path"
                )
            sandbox.epoch = datetime.fromisoformat(entry["epoch"])
            return sandbox.clock.now()
        at = datetime.fromisoformat(entry["at"])
        sandbox.clock.set(at)
        if op == "account":
            sandbox.add_account(
                entry["handle"], entry["followers"], name=entry["name"],
                following=entry["following"], audience_jitter=entry.get("audience_jitter", 0.0),
            )  # fmt: skip
        elif op == "post":
            post = sandbox.store_post(
                sandbox.account(entry["handle"]), entry["text"], entry["reply_to"], replay=True
            )
            if post.id != entry["id"]:
                raise JournalError(
                    f"sandbox journal {self.path} does not replay (post {entry['id']} came back "
                    f"as {post.id}): it was written by another sandbox version; move it away"
                )
        elif op == "delete":
            post = sandbox.state.posts[entry["id"]]
            post.deleted_at = at
        elif op == "block":
            sandbox.account(entry["handle"]).blocked_until = datetime.fromisoformat(entry["until"])
        return at

    def append(self, sandbox: SandboxX, entry: dict[str, Any]) -> None:
        """Write one entry (stamped with the simulated time) under the file lock."""
        line = json.dumps({**entry, "at": sandbox.clock.now().isoformat()}) + "\n"
        with self.hold(sandbox, sync=False), self.path.open("ab") as handle:
            handle.write(line.encode("utf-8"))
            self.offset = handle.tell()
