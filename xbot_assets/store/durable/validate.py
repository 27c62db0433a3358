"""Typed checks at the durable store's boundary (pydantic), raising one clear InvalidInputError.

Each rule is a pydantic type (strict: no silent coercion of ``"1"`` into ``1`` or of a naive
datetime into UTC) wrapped so that any failure reads ``<argument> <what it must be>, got <value>``:
the caller learns which argument was wrong and what to pass instead. Nothing here touches the
database, so bad input is refused before a transaction starts.

Usage: ``account_id = valid_id("account_id", account_id)``; every ``valid_*`` returns the checked,
normalised value (UTC datetimes, handles without ``@``, X ids as strings).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    Strict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.errors import InvalidInputError

T = TypeVar("T")

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
"""A format or topic name: lower case, like ``how_to`` or ``python``."""


def _explain(message: str) -> WrapValidator:
    """Replace pydantic's own wording with ``message`` (formatted with ``value``, ``type`` and
    ``detail``, pydantic's reason) so every failure of a rule reads the same way."""

    def wrap(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            detail = exc.errors()[0]["msg"].removeprefix("Value error, ")
            why = message.format(value=value, type=type(value).__name__, detail=detail)
            raise PydanticCustomError("xbot_input", "{why}", {"why": why}) from None

    return WrapValidator(wrap)


class Rule(Generic[T]):
    """One boundary rule: a pydantic type plus the sentence that says what to pass."""

    def __init__(self, annotation: Any, message: str) -> None:
        self._adapter: TypeAdapter[T] = TypeAdapter(Annotated[annotation, _explain(message)])

    def __call__(self, name: str, value: Any) -> T:
        try:
            return self._adapter.validate_python(value)
        except ValidationError as exc:
            raise InvalidInputError(f"{name} {exc.errors()[0]['msg']}") from None

    def optional(self, name: str, value: Any) -> T | None:
        """The rule, letting ``None`` through (an omitted optional argument)."""
        return None if value is None else self(name, value)


def _json_check(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except TypeError as exc:  # pydantic turns only ValueError into a validation error
        raise ValueError(str(exc)) from None
    return value


def _not_a_datetime(value: date) -> date:
    if isinstance(value, datetime):  # a datetime is a date too; a day must not carry a time
        raise ValueError("a datetime, not a date")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("not finite")
    return float(value)


def _choice(what: str, values: tuple[str, ...]) -> Rule[str]:
    """One of a fixed vocabulary (a status, a horizon, a severity)."""
    return Rule(
        Literal[values],
        "{value!r} is not a " + what + ": use one of " + ", ".join(values),
    )


_ID: Rule[int] = Rule(
    Annotated[StrictInt, Field(gt=0)], "must be a positive integer id, got {value!r}"
)
_TIME: Rule[datetime] = Rule(
    Annotated[AwareDatetime, Strict(), AfterValidator(lambda v: v.astimezone(UTC))],
    "must be a timezone-aware UTC datetime (e.g. datetime.now(UTC)), got {value!r:.60}",
)
_BOOL: Rule[bool] = Rule(StrictBool, "must be True or False, got {value!r}")
_FLOAT: Rule[float] = Rule(
    Annotated[StrictInt | StrictFloat, AfterValidator(_finite)],
    "must be a finite number, got {value!r}",
)
_LIMIT: Rule[int] = Rule(
    Annotated[StrictInt, Field(ge=1, le=100_000)],
    "must be an integer from 1 to 100000, got {value!r}",
)
_STATUS = _choice("post status", s.POST_STATUSES)
_HORIZON = _choice("horizon", s.HORIZONS)
_HANDLE: Rule[str] = Rule(
    Annotated[
        StrictStr,
        Field(pattern=r"^@?[A-Za-z0-9_]{1,64}$"),
        AfterValidator(lambda v: v.removeprefix("@")),
    ],
    "{value!r:.60} is not an X handle: use letters, digits and '_'",
)
_X_ID: Rule[str] = Rule(
    Annotated[
        Annotated[StrictInt, Field(ge=0)] | Annotated[StrictStr, Field(pattern=r"^[0-9]{1,32}$")],
        AfterValidator(str),
    ],
    "must be X's numeric post id as a string, got {value!r:.60}",
)
_ATTEMPT: Rule[str] = Rule(
    Annotated[uuid.UUID, AfterValidator(str)],
    "{value!r:.60} is not an attempt id: pass Claim.attempt_id",
)
_CONFIG_KEY: Rule[str] = Rule(
    Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_.:/-]{1,128}$")],
    "{value!r:.60} is invalid: use 1-128 letters, digits and . _ : / -",
)
_JSON: Rule[Any] = Rule(
    Annotated[Any, AfterValidator(_json_check)],
    "is not JSON ({detail}): pass dicts, lists, strings, numbers, booleans or None",
)
_JSON_OBJECT: Rule[dict[str, Any]] = Rule(
    Annotated[dict[StrictStr, Any], AfterValidator(_json_check)],
    "must be a JSON object (a dict with string keys, JSON values), got {type} ({detail})",
)


_SEVERITY = _choice("severity", s.SEVERITIES)
_HEALTH_STATUS = _choice("health status", s.HEALTH_STATUSES)
_COUNT: Rule[int] = Rule(
    Annotated[StrictInt, Field(ge=0)], "must be a non-negative integer, got {value!r}"
)
_DAY: Rule[date] = Rule(
    Annotated[date, Strict(), AfterValidator(_not_a_datetime)],
    "must be a datetime.date (the UTC day), got {value!r:.60}",
)
_GRACE: Rule[timedelta] = Rule(
    Annotated[timedelta, Strict(), Field(ge=timedelta(0))],
    "must be a non-negative timedelta (the grace period), got {value!r:.60}",
)
_SHA256: Rule[str] = Rule(
    Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")],
    "must be a 64-character hex SHA-256, got {value!r:.60}",
)


@cache
def _text_rule(max_len: int) -> Rule[str]:
    return Rule(
        Annotated[StrictStr, Field(max_length=max_len, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$")],
        f"must be a non-empty string of at most {max_len} characters without NUL, "
        "got {value!r:.60}",
    )


def valid_id(name: str, value: Any) -> int:
    """A positive integer id (``True`` is not an id)."""
    return _ID(name, value)


def valid_str(name: str, value: Any, max_len: int) -> str:
    """A non-blank string of at most ``max_len`` characters, without NUL."""
    return _text_rule(max_len)(name, value)


def valid_opt_str(name: str, value: Any, max_len: int) -> str | None:
    return _text_rule(max_len).optional(name, value)


def valid_bool(name: str, value: Any) -> bool:
    return _BOOL(name, value)


def valid_opt_float(name: str, value: Any) -> float | None:
    """A finite number (int or float, not bool), as a float; or None."""
    return _FLOAT.optional(name, value)


def valid_time(name: str, value: Any) -> datetime:
    """A timezone-aware datetime, converted to UTC (a naive one is refused, never guessed)."""
    return _TIME(name, value)


def valid_opt_time(name: str, value: Any) -> datetime | None:
    return _TIME.optional(name, value)


def valid_now(value: Any) -> datetime:
    """The caller's ``now`` (checked like any time), or the wall clock when it gave none."""
    return _TIME.optional("now", value) or datetime.now(UTC)


def valid_limit(value: Any) -> int:
    return _LIMIT("limit", value)


def valid_status(value: Any) -> str:
    return _STATUS("status", value)


def valid_horizon(value: Any) -> str:
    return _HORIZON("horizon", value)


def valid_severity(value: Any) -> str:
    return _SEVERITY("severity", value)


def valid_health_status(value: Any) -> str:
    return _HEALTH_STATUS("health status", value)


def valid_count(name: str, value: Any) -> int:
    """A non-negative integer (a metric's count; ``True`` is not a count)."""
    return _COUNT(name, value)


def valid_day(name: str, value: Any) -> date:
    """A calendar day (a ``datetime`` is refused: it would carry a time and a zone)."""
    return _DAY(name, value)


def valid_grace(name: str, value: Any) -> timedelta:
    return _GRACE(name, value)


def valid_opt_sha256(name: str, value: Any) -> str | None:
    return _SHA256.optional(name, value)


def valid_handle(value: Any) -> str:
    """An X handle, without its leading ``@``."""
    return _HANDLE("account handle", value)


def valid_x_id(value: Any) -> str:
    return _X_ID("x_id", value)


def valid_opt_attempt(value: Any) -> str | None:
    return _ATTEMPT.optional("attempt_id", value)


def valid_config_key(value: Any) -> str:
    return _CONFIG_KEY("config key", value)


def valid_json(name: str, value: Any) -> Any:
    """Any value JSON can store (no NaN or infinity)."""
    return _JSON(name, value)


def valid_json_obj(name: str, value: Any) -> dict[str, Any]:
    """A JSON object as a new dict (None is the empty object)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{name} must be a dict, got {type(value).__name__}")
    return _JSON_OBJECT(name, dict(value))


_NAME: Rule[str] = Rule(
    Annotated[StrictStr, Field(pattern=NAME_PATTERN)],
    "{value!r:.60} must be a lower-case name like 'how_to' or 'python'",
)
_ARM: Rule[tuple[str, str]] = Rule(
    Annotated[
        StrictStr,
        Field(pattern=NAME_PATTERN.removesuffix("$") + ":" + NAME_PATTERN.removeprefix("^")),
        AfterValidator(lambda v: tuple(v.split(":"))),
    ],
    "{value!r:.60} must be written '<format>:<topic>', e.g. 'how_to:python'",
)


def valid_arm(arm: Any, fmt: Any, topic: Any) -> tuple[str | None, str | None, str | None]:
    """Check an arm ``"<format>:<topic>"`` and its parts; fill whichever side is missing.

    A cross-field rule: the arm's parts must agree with ``format``/``topic`` when both are given
    (a thread keeps ``format='thread'`` whatever its arm's format).
    """
    fmt = _NAME.optional("format", fmt)
    topic = _NAME.optional("topic", topic)
    if arm is None:
        if fmt is not None and topic is not None:
            return f"{fmt}:{topic}", fmt, topic
        return None, fmt, topic
    a_fmt, a_topic = _ARM("arm", arm)
    if (fmt is not None and fmt not in (a_fmt, "thread")) or (
        topic is not None and topic != a_topic
    ):
        raise InvalidInputError(f"arm {arm!r} disagrees with format={fmt!r} / topic={topic!r}")
    return str(arm), a_fmt, a_topic


__all__ = [
    "NAME_PATTERN",
    "Rule",
    "valid_arm",
    "valid_bool",
    "valid_config_key",
    "valid_count",
    "valid_day",
    "valid_grace",
    "valid_handle",
    "valid_health_status",
    "valid_horizon",
    "valid_id",
    "valid_json",
    "valid_json_obj",
    "valid_limit",
    "valid_now",
    "valid_opt_attempt",
    "valid_opt_float",
    "valid_opt_sha256",
    "valid_opt_str",
    "valid_opt_time",
    "valid_severity",
    "valid_status",
    "valid_str",
    "valid_time",
    "valid_x_id",
]
