"""Anthropic's error responses: status code, ``error.type`` and the JSON body.

The SDK picks its exception class from the status code (and ``error.details.error_code``),
so these pairs are what makes ``anthropic.RateLimitError`` and friends come out right.
"""

from __future__ import annotations

from typing import Any

#: status -> error.type, as documented by Anthropic.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

DEFAULT_MESSAGES: dict[int, str] = {
    400: "Invalid request",
    401: "invalid x-api-key",
    402: "Your credit balance is too low to access the Anthropic API.",
    403: "Your API key does not have permission to use the specified resource.",
    404: "Not found",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of requests has exceeded your per-minute rate limit",
    500: "Internal server error",
    504: "Request timed out",
    529: "Overloaded",
}

SPEND_LIMIT_CODE = "enforced_spend_limit_reached"


class ApiError(Exception):
    """An error answer; raised anywhere in request handling, rendered by the server."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        error_code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        self.message = message or DEFAULT_MESSAGES.get(status, "Error")
        self.error_code = error_code
        self.retry_after_s = retry_after_s

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.error_code:
            error["details"] = {"error_code": self.error_code}
        return {"type": "error", "error": error, "request_id": request_id}


def invalid(message: str) -> ApiError:
    return ApiError(400, message)


def spend_limit_error() -> ApiError:
    # No retry-after: waiting does not lift a spend cap, an operator must act.
    return ApiError(
        429,
        "You have reached your specified API usage limits. You will regain access on "
        "the first of next month or when the limit is raised.",
        error_code=SPEND_LIMIT_CODE,
    )
