"""Requests checked against the rules of X's OpenAPI spec, as X checks them: 400 otherwise.

``x_api_rules.json`` holds, for each endpoint the sandbox serves, its path and query parameters
and its JSON body schema, extracted from X's spec (``tests/sandbox/spec_rules.py`` writes it; a
test keeps it in step with the spec). Only the JSON-Schema keywords those rules use are
implemented here: the sandbox imports nothing outside its package, and a parameter check must
stay cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from xbot_assets.sandbox import errors

RULES_FILE = Path(__file__).with_name("x_api_rules.json")
ALIASES = {"tweet.fields": "post.fields"}
"""Older names X still accepts for a parameter (the rules know the newer one)."""
_INT = re.compile(r"-?[0-9]{1,18}")


@lru_cache(maxsize=1)
def rules() -> dict[str, Any]:
    return dict(json.loads(RULES_FILE.read_text()))


def check_params(
    endpoint: str,
    path: dict[str, str],
    query: list[tuple[str, str]],
    extra: Mapping[str, Collection[str]] | None = None,
) -> None:
    """Refuse path or query parameters that break the endpoint's rules (400, the first one).

    ``extra``: values a list parameter takes besides the spec's enum (names real X still
    accepts, such as ``referenced_tweets``, and the sandbox's own analytics fields).
    """
    rule = rules().get(endpoint)
    if rule is None:
        return
    for name, value in path.items():
        spec = rule["path"].get(name)
        if spec is not None:
            _param(name, value, spec["schema"])
    seen: set[str] = set()
    for name, value in query:
        key = ALIASES.get(name, name)
        spec = rule["query"].get(key)
        if spec is None:
            continue  # unknown names are the route's own check (its message lists the known)
        if name in seen:
            raise errors.invalid_request(f"The `{name}` query parameter is given twice", name)
        seen.add(name)
        schema = spec["schema"]
        more = (extra or {}).get(key)
        if more and "enum" in schema.get("items", {}):
            items = {**schema["items"], "enum": sorted({*schema["items"]["enum"], *more})}
            schema = {**schema, "items": items}
        _param(name, value, schema)
    for name, spec in rule["query"].items():
        aliases = {name} | {a for a, target in ALIASES.items() if target == name}
        if spec["required"] and not aliases & seen:
            raise errors.invalid_request(f"The `{name}` query parameter is required", name)


def check_body(endpoint: str, payload: Any) -> None:
    """Refuse a JSON body that breaks the endpoint's body schema (400 naming the field)."""
    schema = rules().get(endpoint, {}).get("body")
    if schema is None:
        return
    problem = _problem(schema, payload, "")
    if problem is not None:
        where, what = problem
        raise errors.invalid_request(
            f"The request body field [{where or '(root)'}] {what}", where or None
        )


def _param(name: str, raw: str, schema: dict[str, Any]) -> None:
    value: Any = raw
    kind = schema.get("type")
    if kind == "array":  # style form, explode false: comma-separated
        value = raw.split(",")
    elif kind == "integer":
        if not _INT.fullmatch(raw):
            raise errors.invalid_request(
                f"The `{name}` query parameter value [{raw[:40]}] is not a number", name
            )
        value = int(raw)
    problem = _problem(schema, value, "")
    if problem is not None:
        raise errors.invalid_request(
            f"The `{name}` parameter value [{raw[:60]}] {problem[1]}", name
        )


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _problem(schema: dict[str, Any], value: Any, where: str) -> tuple[str, str] | None:
    """The first way ``value`` breaks ``schema``, as (location, message), or None."""
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _TYPES[kind])
        if kind in ("integer", "number") and isinstance(value, bool):
            ok = False
        if not ok:
            return where, f"must be of type {kind}"
    if "enum" in schema and value not in schema["enum"]:
        return where, f"must be one of [{','.join(map(str, schema['enum']))}]"[:400]
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return where, f"must have at least {schema['minLength']} character(s)"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return where, f"must have at most {schema['maxLength']} characters"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return where, f"does not match {schema['pattern']}"
        if schema.get("format") == "date-time" and not _is_datetime(value):
            return where, "is not an RFC 3339 date-time such as 2026-03-01T12:00:00Z"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return where, f"is not between {schema['minimum']} and {schema.get('maximum')}"
        if "maximum" in schema and value > schema["maximum"]:
            return where, f"is not between {schema.get('minimum')} and {schema['maximum']}"
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return where, f"must have at least {schema['minItems']} item(s)"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return where, f"must have at most {schema['maxItems']} items"
        if schema.get("uniqueItems") and len({json.dumps(v) for v in value}) != len(value):
            return where, "must not repeat an item"
        for i, item in enumerate(value):
            found = _problem(schema.get("items", {}), item, f"{where}[{i}]")
            if found is not None:
                return found
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                return _join(where, name), "is required"
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in props:
                found = _problem(props[name], item, _join(where, name))
            elif extra is False:
                return _join(where, name), "is not allowed"
            elif isinstance(extra, dict):
                found = _problem(extra, item, _join(where, name))
            else:
                found = None
            if found is not None:
                return found
    return None


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _is_datetime(value: str) -> bool:
    if not re.fullmatch(
        r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value
    ):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True
