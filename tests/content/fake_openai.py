# ruff: noqa: E501  (canned answers read better unwrapped)
"""A tiny OpenAI-compatible HTTP server on loopback for the generator tests.

It speaks the real wire protocol of ``POST /v1/chat/completions`` (with ``response_format``
json_schema structured output, ``refusal``, ``finish_reason`` and ``usage``) and
``POST /v1/moderations``, so the real ``openai`` client is exercised end to end. Tests script the
answers: each queued :class:`Reply` is used once, in order; with none queued the server writes a
valid post for the arm named in the prompt.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from xbot_assets.content.base import GenerationRequest
from xbot_assets.content.offline import OfflineGenerator

DEFAULT_POSTS = {
    "single": "Pin pip dependencies with a lock file; Python builds stop breaking. Boring, and it works.",
    "question": "What pandas trick saved you the most time in Python this year?",
    "list": "Python habits:\n1. Use pytest fixtures.\n2. Add typing at boundaries.\n3. Profile before rewriting.",
    "hot_take": "Hot take: most pandas code in Python would be clearer as one groupby.",
    "how_to": "How to speed up a slow pandas groupby in Python: sort first, then use observed=True.",
}


@dataclass
class Reply:
    """One scripted answer.

    Attributes:
        content: the assistant message content (a JSON string for structured output).
        refusal: a refusal message instead of content.
        finish_reason: ``stop`` or ``length``.
        status: an HTTP error status to return instead (e.g. 500, 429).
        delay_s: sleep before answering (timeouts).
        usage: (prompt_tokens, completion_tokens).
    """

    content: str | None = None
    refusal: str | None = None
    finish_reason: str = "stop"
    status: int = 200
    delay_s: float = 0.0
    usage: tuple[int, int] = (120, 80)


@dataclass
class FakeOpenAI:
    """The server's state: scripted replies and every request received."""

    replies: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    moderation_requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    """The ``Authorization`` header of every request (``Bearer <key>``): the key reached us."""
    flag_words: tuple[str, ...] = ("FLAGME",)
    moderation_status: int = 200
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def default_reply(self, body: dict[str, Any]) -> Reply:
        prompt = body["messages"][-1]["content"]
        match = re.search(r"for the arm (\w+):(\w+)", prompt)
        fmt, topic = (match.group(1), match.group(2)) if match else ("single", "python")
        if fmt == "thread":
            data = {
                "format": fmt, "topic": topic, "hook": "Python lessons, a thread",
                "intended_arm": f"{fmt}:{topic}", "text": "",
                "parts": ["Python lessons that took me years, a short thread:",
                          "Use pytest fixtures with one job each.",
                          "Add typing at module boundaries first."],
            }  # fmt: skip
        else:
            text = DEFAULT_POSTS[fmt]
            data = {"format": fmt, "topic": topic, "hook": text.split("\n")[0],
                    "intended_arm": f"{fmt}:{topic}", "text": text, "parts": []}  # fmt: skip
        return Reply(content=json.dumps(data))

    def start(self) -> FakeOpenAI:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                state.authorizations.append(self.headers.get("Authorization", ""))
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.endswith("/moderations"):
                    state.moderation_requests.append(body)
                    if state.moderation_status != 200:
                        self._send(state.moderation_status, {"error": {"message": "down"}})
                        return
                    text = body["input"] if isinstance(body["input"], str) else body["input"][0]
                    flagged = any(w in text for w in state.flag_words)
                    self._send(200, {
                        "id": "modr-1", "model": body.get("model", "omni-moderation-latest"),
                        "results": [{
                            "flagged": flagged,
                            "categories": {"harassment": flagged, "violence": False},
                            "category_scores": {"harassment": 0.99 if flagged else 0.01,
                                                "violence": 0.0},
                        }],
                    })  # fmt: skip
                    return
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                state.requests.append(body)
                reply = state.replies.popleft() if state.replies else state.default_reply(body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.status != 200:
                    self._send(reply.status, {"error": {"message": "scripted failure",
                                                        "type": "server_error"}})  # fmt: skip
                    return
                prompt_tokens, completion_tokens = reply.usage
                self._send(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "gpt-4o-mini"),
                    "choices": [{
                        "index": 0, "finish_reason": reply.finish_reason, "logprobs": None,
                        "message": {"role": "assistant", "content": reply.content,
                                    "refusal": reply.refusal},
                    }],
                    "usage": {"prompt_tokens": prompt_tokens,
                              "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens},
                })  # fmt: skip

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def post_json(**overrides: Any) -> str:
    """A valid structured answer for ``single:python`` with fields overridden."""
    data: dict[str, Any] = {
        "format": "single", "topic": "python", "hook": "Pin pip dependencies",
        "intended_arm": "single:python", "text": DEFAULT_POSTS["single"], "parts": [],
    }  # fmt: skip
    data.update(overrides)
    return json.dumps(data)


ARM_IN_PROMPT = re.compile(r"for the arm (\w+):(\w+)")


def offline_parts(arm: str, seed: int) -> tuple[str, ...]:
    """What the scripted model writes for ``arm`` at ``seed``: a valid post for that arm."""
    request = GenerationRequest(arm=arm, seed=seed, numbered_threads=False)
    return OfflineGenerator().generate(request).parts


def model_answer(body: dict[str, Any]) -> Reply:
    """A structured answer for the arm named in the prompt (the offline text at that seed)."""
    match = ARM_IN_PROMPT.search(body["messages"][-1]["content"])
    assert match, "the prompt names the arm"
    fmt, topic = match.groups()
    parts = offline_parts(f"{fmt}:{topic}", int(body["seed"]))
    thread = fmt == "thread"
    data = {
        "format": fmt, "topic": topic, "hook": parts[0].split("\n", 1)[0],
        "intended_arm": f"{fmt}:{topic}", "text": "" if thread else parts[0],
        "parts": list(parts) if thread else [],
    }  # fmt: skip
    return Reply(content=json.dumps(data))


def requested_arms(server: FakeOpenAI) -> list[str]:
    """The arm each chat-completions request asked for, in order."""
    arms = []
    for body in server.requests:
        match = ARM_IN_PROMPT.search(body["messages"][-1]["content"])
        assert match
        arms.append(f"{match.group(1)}:{match.group(2)}")
    return arms
