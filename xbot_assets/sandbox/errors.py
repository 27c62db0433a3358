"""X's error responses, as one exception type carrying the status, JSON body and headers.

X API v2 answers errors in two families: request-level errors (HTTP 4xx/5xx) and partial errors
inside a 200 body (``{"errors": [...]}``, e.g. a deleted post in a lookup). Request-level bodies
here carry X's v2 problem fields (``title``, ``detail``, ``type``, ``status``), the ``code`` and
``message`` of the spec's ``Error`` schema, and the legacy ``errors: [{code, message}]`` list that
carries codes such as 226 (automation) and 187 (duplicate), so any client parser finds what it
looks for in one body.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://api.x.com/2/problems/"

AUTOMATION_MESSAGE = (
    "This request looks like it might be automated. To protect our users from spam and other "
    "malicious activity, we can't complete this action right now. Please try again later."
)
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."


class SandboxError(Exception):
    """An X API error: HTTP ``status``, X's JSON ``body`` and response ``headers``.

    The message never carries a token; it is ``"<status> <title>: <detail>"``.
    """

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        super().__init__(f"{status} {body.get('title', '')}: {body.get('detail', '')}")

    @property
    def code(self) -> int:
        """X's numeric error code (226 automation, 187 duplicate, 88 rate limit, ...)."""
        return int(self.body.get("code", self.status))


def error_body(
    status: int,
    title: str,
    detail: str,
    *,
    code: int,
    message: str | None = None,
    problem_type: str = "about:blank",
    extra_errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One request-level X error body (see the module docstring for its shape)."""
    text = message or detail
    return {
        "title": title,
        "detail": detail,
        "type": problem_type,
        "status": status,
        "code": code,
        "message": text,
        "errors": extra_errors or [{"code": code, "message": text}],
    }


def unauthorized() -> SandboxError:
    """401: no or unknown token."""
    return SandboxError(
        401,
        error_body(
            401, "Unauthorized", "Unauthorized", code=32, message="Could not authenticate you."
        ),
    )


def unsupported_authentication() -> SandboxError:
    """403: an app-only bearer token on an endpoint that needs a user token."""
    detail = (
        "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
        "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context]."
    )
    return SandboxError(
        403,
        error_body(
            403,
            "Unsupported Authentication",
            detail,
            code=453,
            problem_type="https://api.x.com/2/problems/unsupported-authentication",
        ),
    )


def invalid_request(message: str, parameter: str | None = None) -> SandboxError:
    """400: a parameter or body X rejects."""
    item: dict[str, Any] = {"message": message}
    if parameter:
        item["parameters"] = {parameter: []}
    return SandboxError(
        400,
        error_body(
            400,
            "Invalid Request",
            "One or more parameters to your request was invalid.",
            code=44,
            message=message,
            problem_type=PROBLEM_BASE + "invalid-request",
            extra_errors=[item],
        ),
    )


def forbidden(detail: str, code: int = 403) -> SandboxError:
    """403 with X's ``about:blank`` problem (duplicates, replies to deleted posts, ...)."""
    return SandboxError(403, error_body(403, "Forbidden", detail, code=code))


def client_not_enrolled() -> SandboxError:
    """403 ``client-forbidden``: the app's access level does not include this endpoint."""
    detail = (
        "When authenticating requests to the Twitter API v2 endpoints, you must use keys and "
        "tokens from a Twitter developer App that is attached to a Project with the appropriate "
        "level of API access."
    )
    body = error_body(
        403,
        "Client Forbidden",
        detail,
        code=453,
        message="You currently have access to a subset of X API V2 endpoints.",
        problem_type=PROBLEM_BASE + "client-forbidden",
    )
    body.update(
        {"reason": "client-not-enrolled", "required_enrollment": "Appropriate Level of API Access"}
    )
    return SandboxError(403, body)


def duplicate_content() -> SandboxError:
    """403: X refuses a post whose text duplicates a recent one of the same account."""
    return SandboxError(
        403,
        error_body(403, "Forbidden", DUPLICATE_DETAIL, code=187, message="Status is a duplicate."),
    )


def automation_block() -> SandboxError:
    """403 with error code 226: X's automated-behaviour block."""
    return SandboxError(403, error_body(403, "Forbidden", AUTOMATION_MESSAGE, code=226))


def rate_limited(headers: dict[str, str]) -> SandboxError:
    """429 with the ``x-rate-limit-*`` headers."""
    return SandboxError(
        429,
        error_body(
            429, "Too Many Requests", "Too Many Requests", code=88, message="Rate limit exceeded"
        ),
        headers,
    )


def server_error() -> SandboxError:
    """500: an internal error (fault switch)."""
    return SandboxError(
        500,
        error_body(
            500,
            "Internal Server Error",
            "Something went wrong. Please try again later.",
            code=131,
            problem_type=PROBLEM_BASE + "internal-error",
        ),
    )


def unavailable() -> SandboxError:
    """503: over capacity (fault switch, and the lost response of ``lose_response``)."""
    return SandboxError(
        503,
        error_body(
            503,
            "Service Unavailable",
            "Service Unavailable",
            code=130,
            message="Over capacity",
        ),
    )


def not_found_request(detail: str) -> SandboxError:
    """404 at the request level (e.g. deleting a post that does not exist)."""
    return SandboxError(
        404,
        error_body(
            404,
            "Not Found Error",
            detail,
            code=144,
            message="No status found with that ID.",
            problem_type=PROBLEM_BASE + "resource-not-found",
        ),
    )


def not_found_item(resource_type: str, value: str, parameter: str) -> dict[str, Any]:
    """A partial error inside a 200 body: one id that does not exist (or was deleted)."""
    return {
        "value": value,
        "detail": f"Could not find {resource_type} with {parameter}: [{value}].",
        "title": "Not Found Error",
        "resource_type": resource_type,
        "parameter": parameter,
        "resource_id": value,
        "type": PROBLEM_BASE + "resource-not-found",
    }


def field_not_authorized(resource_id: str, field: str) -> dict[str, Any]:
    """A partial error: a private metrics field the caller may not read (not the owner)."""
    return {
        "value": field,
        "detail": f"Sorry, you are not authorized to access '{field}' on the Tweet with id "
        f"[{resource_id}].",
        "title": "Field Authorization Error",
        "resource_type": "tweet",
        "parameter": "tweet.fields",
        "field": field,
        "resource_id": resource_id,
        "section": "data",
        "type": PROBLEM_BASE + "not-authorized-for-field",
    }


def not_authorized_item(resource_type: str, resource_id: str, parameter: str) -> dict[str, Any]:
    """A partial error: a resource the caller may not read (analytics of another account)."""
    return {
        "value": resource_id,
        "detail": f"Sorry, you are not authorized to see the {resource_type} with {parameter}: "
        f"[{resource_id}].",
        "title": "Authorization Error",
        "resource_type": resource_type,
        "parameter": parameter,
        "resource_id": resource_id,
        "section": "data",
        "type": PROBLEM_BASE + "not-authorized-for-resource",
    }
