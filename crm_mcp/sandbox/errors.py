"""The sandbox's errors, in the contract's error shape.

Every error body has `status_code`, `error` (the HTTP reason phrase), `type_name`, `message`
(human-readable, naming the offending parameter, header or field) and `detail`, plus `ref`, a
link to Apideck's description of the error type.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

__all__ = ["ApiError", "bad_request", "error_body", "invalid", "not_found"]

# type_name values, as the contract's examples and Apideck's error catalogue name them
REQUEST_VALIDATION = "RequestValidationError"
UNSUPPORTED_FILTERS = "UnsupportedFiltersError"
UNSUPPORTED_SORT = "UnsupportedSortFieldError"
INVALID_CURSOR = "InvalidCursorError"
NOT_FOUND = "EntityNotFoundError"
UNAUTHORIZED = "UnauthorizedError"
INVALID_STATE = "InvalidStateError"
RATE_LIMIT = "RequestLimitError"
SERVER_ERROR = "UnexpectedError"
UNKNOWN_ROUTE = "NotFoundError"
METHOD_NOT_ALLOWED = "MethodNotAllowedError"
BODY_TOO_LARGE = "RequestTooLargeError"


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_body(status: int, type_name: str, message: str, detail: str | dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status_code": status,
        "error": phrase(status),
        "type_name": type_name,
        "message": message,
        "detail": detail if detail is not None else message,
        "ref": f"https://developers.apideck.com/errors#{type_name.lower()}",
    }
    return body


class ApiError(Exception):
    """An answer in the contract's error shape; raised anywhere, rendered by the app."""

    def __init__(
        self,
        status: int,
        type_name: str,
        message: str,
        detail: str | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type_name = type_name
        self.message = message
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.type_name, self.message, self.detail)


def bad_request(
    message: str, type_name: str = REQUEST_VALIDATION, detail: str | dict[str, Any] | None = None
) -> ApiError:
    return ApiError(400, type_name, message, detail)


MAX_REPORTED = 5  # field errors an `invalid` message spells out (`detail.errors` has them all)


def invalid(what: str, errors: list[dict[str, str]]) -> ApiError:
    """A 400 for `what` ("request body", "custom object", ...) listing field errors, each a dict
    with `field`, `rule` and `message`."""
    shown = "; ".join(e["message"] for e in errors[:MAX_REPORTED])
    more = f" (and {len(errors) - MAX_REPORTED} more)" if len(errors) > MAX_REPORTED else ""
    return bad_request(f"Invalid {what}: {shown}{more}", detail={"errors": errors})


def not_found(what: str, id_: str) -> ApiError:
    return ApiError(404, NOT_FOUND, f"{what} with id '{id_}' not found", {"id": id_, "resource": what})
