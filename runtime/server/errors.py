"""One error shape for every non-2xx answer: ``{"error": "<message>", "field": "<name>"}``.

``field`` (present when one input is at fault) names the JSON key, form field, path parameter
(``name``) or header (``content-length``) to fix.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    """Raised anywhere in request handling; rendered by :func:`error_response`."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = " ".join(str(message).split())
        self.field = field
        self.headers = headers or {}


def error_body(message: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return body


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.message, exc.field), status_code=exc.status, headers=exc.headers)


def bad_request(message: str, field: str | None = None) -> ApiError:
    """422: the request is well-formed HTTP but a value in it is invalid."""
    return ApiError(422, message, field)
