"""What an API error answer says: its message, its error code, its ``retry-after``.

Read here once, for the retry policy (reliability/retry.py: what to do) and the limiter
(limiter/admission.py: how long the group waits after a 429).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import anthropic

#: An API error's ``error.type`` -> the HTTP status it comes with (ANTHROPIC_API.md):
#: for an error that arrives without one (an ``error`` event after a stream's 200, a
#: batch entry's error).
ERROR_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

#: ``error.details.error_code`` of a 429 that is the account's spend limit, not a rate.
SPEND_LIMIT_CODE = "enforced_spend_limit_reached"


def is_rate_limit(exc: BaseException) -> bool:
    """A 429 about the rate (not the spend limit): the group should wait its retry-after."""
    return (
        isinstance(exc, anthropic.APIStatusError)
        and exc.status_code == 429
        and error_code(exc) != SPEND_LIMIT_CODE
    )


def error_message(exc: BaseException) -> str:
    """The API's ``error.message`` (any SDK), else the exception's text; 2,000 chars at most."""
    api_message = getattr(exc, "api_message", None)  # the body's error.message (SDK >= 2.5)
    if not api_message:  # older SDKs: the parsed JSON body
        body = getattr(exc, "body", None)
        error = body.get("error") if isinstance(body, dict) else None
        api_message = error.get("message") if isinstance(error, dict) else None
    text = api_message if isinstance(api_message, str) and api_message else str(exc)
    return text[:2000]


def error_code(exc: anthropic.APIStatusError) -> str | None:
    """``error.details.error_code`` of an API error (``enforced_spend_limit_reached``)."""
    code = getattr(exc, "error_code", None)  # SDK >= 2.x parses error.details.error_code
    if isinstance(code, str):
        return code
    body = exc.body  # older SDKs: the parsed JSON body
    if isinstance(body, dict):
        error = body.get("error", body)
        details = error.get("details") if isinstance(error, dict) else None
        if isinstance(details, dict) and isinstance(details.get("error_code"), str):
            return str(details["error_code"])
    return None


def retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds from a ``retry-after`` header (seconds or an HTTP date), or None."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
