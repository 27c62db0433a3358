"""Extract the request rules of the operations the sandbox serves from X's OpenAPI spec.

The sandbox imports nothing outside its package and cannot read ``shared/`` at run time, so it
ships these rules as ``xbot_assets/sandbox/x_api_rules.json``. ``test_schemathesis`` fails when
that file and the spec disagree; rewrite it with::

    XBOT_SHARED_DIR=/path/to/shared .venv/bin/python -m tests.sandbox.spec_rules
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RULES_PATH = Path(__file__).resolve().parents[2] / "xbot_assets" / "sandbox" / "x_api_rules.json"
ENDPOINTS = {
    "get_tweets": ("/2/tweets", "get"),
    "create_tweet": ("/2/tweets", "post"),
    "get_tweet": ("/2/tweets/{id}", "get"),
    "delete_tweet": ("/2/tweets/{id}", "delete"),
    "analytics": ("/2/tweets/analytics", "get"),
    "get_me": ("/2/users/me", "get"),
    "get_user": ("/2/users/{id}", "get"),
    "get_user_tweets": ("/2/users/{id}/tweets", "get"),
}
_KEEP = {
    "type", "enum", "pattern", "format", "minLength", "maxLength", "minimum", "maximum",
    "items", "minItems", "maxItems", "uniqueItems", "properties", "required",
    "additionalProperties",
}  # fmt: skip


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key not in _KEEP:
                continue
            if key == "properties":
                out[key] = {name: _resolve(spec, sub) for name, sub in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = _resolve(spec, value)
            else:
                out[key] = value
        return out
    return node


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """Per endpoint: its path and query parameters (schema, required) and its JSON body."""
    rules: dict[str, Any] = {}
    for endpoint, (path, method) in sorted(ENDPOINTS.items()):
        operation = spec["paths"][path][method]
        entry: dict[str, Any] = {"path": {}, "query": {}}
        for raw in operation.get("parameters", []):
            param = _resolve_param(spec, raw)
            entry[param["in"]][param["name"]] = {
                "required": bool(param.get("required", False)),
                "schema": _resolve(spec, param["schema"]),
            }
        body = operation.get("requestBody")
        if body is not None:
            body = _resolve_param(spec, body)
            entry["body"] = _resolve(spec, body["content"]["application/json"]["schema"])
        rules[endpoint] = entry
    return rules


def _resolve_param(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def render(rules: dict[str, Any]) -> str:
    return json.dumps(rules, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    from tests.sandbox.test_schemathesis import load_spec

    RULES_PATH.write_text(render(extract(load_spec())))
    print(f"wrote {RULES_PATH}")
