"""Issue 17 item 9: bad input gets a 400 problem-JSON from the sandbox, never a 500 or a hang.

Each body is checked against the spec's ``InvalidRequestProblem`` (the shape X gives a request
it refuses), and the sandbox keeps serving afterwards.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest

from tests.sandbox.test_schemathesis import load_spec
from xbot_assets.sandbox import SandboxX


def _problem(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    spec = load_spec()
    jsonschema.Draft7Validator(
        {**spec, "$ref": "#/components/schemas/InvalidRequestProblem"}
    ).validate(body)
    return body


def _timeline_ok(client: httpx.Client, sandbox: SandboxX, headers: dict[str, str]) -> None:
    response = client.get(f"/2/users/{sandbox.account().id}/tweets", headers=headers)
    assert response.status_code == 200, response.text[:300]


@pytest.mark.parametrize("value", ["²", "٣٣", "1" * 5000, "99999999999999999999", "+5", " 5"])
def test_max_results_that_is_not_plain_ascii_digits_or_is_huge_is_a_400(
    client: httpx.Client, sandbox: SandboxX, user_headers: dict[str, str], value: str
) -> None:
    """issue 17 item 9: ``max_results`` of non-ASCII digits or thousands of digits was a 500."""
    response = client.get(
        f"/2/users/{sandbox.account().id}/tweets",
        params={"max_results": value},
        headers=user_headers,
    )
    assert "max_results" in _problem(response)["message"]


def test_deeply_nested_json_is_a_400(
    client: httpx.Client, sandbox: SandboxX, user_headers: dict[str, str]
) -> None:
    """issue 17 item 9: a deeply nested body raised RecursionError (500)."""
    deep = b'{"text": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    for path in ("/2/tweets", "/__sandbox/faults", "/__sandbox/clock/advance"):
        body = _problem(client.post(path, content=deep, headers=user_headers))
        assert "nested too deeply" in body["message"]
    _timeline_ok(client, sandbox, user_headers)


def test_a_lone_surrogate_in_a_post_is_refused_and_timelines_keep_working(
    client: httpx.Client, sandbox: SandboxX, user_headers: dict[str, str]
) -> None:
    """issue 17 item 9: a lone surrogate was stored, then every timeline read was a 500."""
    raw = b'{"text": "hello \\ud800 world"}'
    body = _problem(client.post("/2/tweets", content=raw, headers=user_headers))
    assert "surrogate" in body["message"]
    _timeline_ok(client, sandbox, user_headers)
    ok = client.post("/2/tweets", json={"text": "hello \U0001f600 world"}, headers=user_headers)
    assert ok.status_code == 201  # a proper pair (an emoji) is fine
    _timeline_ok(client, sandbox, user_headers)


@pytest.mark.parametrize(
    "raw",
    [b'{"days": 1e10}', b'{"days": Infinity}', b'{"hours": NaN}', b'{"days": "inf"}',
     b'{"seconds": -1e300}', b'{"days": [1]}'],
)  # fmt: skip
def test_admin_clock_advance_that_overflows_is_a_400(
    client: httpx.Client, sandbox: SandboxX, user_headers: dict[str, str], raw: bytes
) -> None:
    """issue 17 item 9: advancing the clock by ``1e10`` days or ``Infinity`` was a 500."""
    before = client.get("/__sandbox/clock").json()["now"]
    _problem(client.post("/__sandbox/clock/advance", content=raw))
    assert client.get("/__sandbox/clock").json()["now"] == before
    assert client.post("/__sandbox/clock/advance", json={"hours": 2}).status_code == 200
    _timeline_ok(client, sandbox, user_headers)


@pytest.mark.parametrize(
    "raw", [b'{"handle": "inf_bot", "followers": Infinity}',
            b'{"handle": "big_bot", "followers": 1e400}',
            b'{"handle": "neg_bot", "followers": -5}',
            b'{"handle": "list_bot", "followers": [1]}'],
)  # fmt: skip
def test_admin_account_with_impossible_followers_is_a_400(client: httpx.Client, raw: bytes) -> None:
    """issue 17 item 9: ``followers=Infinity`` was a 500."""
    _problem(client.post("/__sandbox/accounts", content=raw))
    made = client.post("/__sandbox/accounts", json={"handle": "fine_bot", "followers": 10})
    assert made.status_code == 201


@pytest.mark.parametrize(
    "fault",
    [{"name": "server_error", "count": [1]}, {"name": "server_error", "count": "2"},
     {"name": "slow", "seconds": 1e9}, {"name": "slow", "seconds": "x"},
     {"name": "server_error", "match": ["create"]}],
)  # fmt: skip
def test_a_malformed_fault_is_refused_and_later_requests_still_work(
    client: httpx.Client,
    sandbox: SandboxX,
    user_headers: dict[str, str],
    fault: dict[str, Any],
) -> None:
    """issue 17 item 9: a fault whose ``count`` was a list was stored, then every later
    request was a 500."""
    _problem(client.post("/__sandbox/faults", json=fault))
    assert client.get("/__sandbox/faults").json()["active"] == {}
    _timeline_ok(client, sandbox, user_headers)
    made = client.post("/2/tweets", json={"text": "still posting"}, headers=user_headers)
    assert made.status_code == 201


def test_a_10_mb_body_is_refused_at_once_without_reading_it(base_url: str) -> None:
    """issue 17 item 9: a 10 MB body held the server for 30 s. Now the answer (413, problem
    JSON) comes from the headers alone, before the client sends more than its first bytes,
    and the server answers others meanwhile."""
    parts = urlsplit(base_url)
    size = 10 * 1024 * 1024
    assert parts.port is not None  # the fixture's URL names its port
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            b"POST /2/tweets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
            + b'{"text": "'
            + b"a" * 1000
        )
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    elapsed = time.monotonic() - started
    head, _, payload = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    body = json.loads(payload)
    assert body["status"] == 413 and "larger than" in body["message"]
    jsonschema.Draft7Validator(
        {**load_spec(), "$ref": "#/components/schemas/InvalidRequestProblem"}
    ).validate(body)
    assert elapsed < 2.0, elapsed
    with httpx.Client(base_url=base_url, timeout=5) as client:
        assert client.get("/__sandbox/state").status_code == 200
        chunked = client.post(
            "/__sandbox/faults", content=iter([b"{" + b" " * 70_000, b"}"])
        )  # no Content-Length: counted while it arrives
        assert chunked.status_code == 413
