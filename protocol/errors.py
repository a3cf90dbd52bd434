"""Matrix errors: one exception type, one errcode-to-HTTP-status table.

Client-Server API, "Standard error response": every error a client sees is a JSON
object with ``errcode`` and ``error``; the HTTP status comes from the errcode unless the
raiser knows better (e.g. ``M_UNRECOGNIZED`` is 404 for an unknown endpoint and 405 for
a known endpoint called with the wrong method).
"""

from __future__ import annotations

from typing import Any

# errcode -> default HTTP status. The spec names the status for most codes in the
# endpoint definitions; where one code is used with several statuses the most common
# is listed here and the raiser passes ``status=``.
ERRCODE_STATUS: dict[str, int] = {
    "M_FORBIDDEN": 403,
    "M_UNKNOWN_TOKEN": 401,
    "M_MISSING_TOKEN": 401,
    "M_USER_LOCKED": 401,
    "M_USER_SUSPENDED": 403,
    "M_BAD_JSON": 400,
    "M_NOT_JSON": 400,
    "M_NOT_FOUND": 404,
    "M_LIMIT_EXCEEDED": 429,
    "M_UNRECOGNIZED": 404,
    "M_UNKNOWN": 400,
    "M_UNAUTHORIZED": 401,
    "M_USER_DEACTIVATED": 403,
    "M_USER_IN_USE": 400,
    "M_INVALID_USERNAME": 400,
    "M_ROOM_IN_USE": 400,
    "M_INVALID_ROOM_STATE": 400,
    "M_THREEPID_IN_USE": 400,
    "M_THREEPID_NOT_FOUND": 400,
    "M_THREEPID_AUTH_FAILED": 401,
    "M_THREEPID_DENIED": 403,
    "M_THREEPID_MEDIUM_NOT_SUPPORTED": 400,
    "M_SERVER_NOT_TRUSTED": 403,
    "M_UNSUPPORTED_ROOM_VERSION": 400,
    "M_INCOMPATIBLE_ROOM_VERSION": 400,
    "M_BAD_STATE": 403,
    "M_GUEST_ACCESS_FORBIDDEN": 403,
    "M_CAPTCHA_NEEDED": 401,
    "M_CAPTCHA_INVALID": 401,
    "M_MISSING_PARAM": 400,
    "M_INVALID_PARAM": 400,
    "M_TOO_LARGE": 413,
    "M_EXCLUSIVE": 400,
    "M_RESOURCE_LIMIT_EXCEEDED": 403,
    "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM": 403,
    "M_WEAK_PASSWORD": 400,
    "M_UNKNOWN_DEVICE": 404,
    "M_USER_LIMIT_EXCEEDED": 403,
    "M_UNABLE_TO_AUTHORISE_JOIN": 400,
    "M_UNABLE_TO_GRANT_JOIN": 502,
    "M_BAD_ALIAS": 400,
    "M_DUPLICATE_ANNOTATION": 400,
    "M_NOT_YET_UPLOADED": 504,
    "M_CANNOT_OVERWRITE_MEDIA": 409,
    "M_APPSERVICE_LOGIN_UNSUPPORTED": 400,
    "M_PROFILE_TOO_LARGE": 400,
    "M_KEY_TOO_LARGE": 400,
    "M_WRONG_ROOM_KEYS_VERSION": 403,
}


class MatrixError(Exception):
    """An error that reaches a client as ``{"errcode", "error", **extra}``."""

    def __init__(
        self,
        errcode: str,
        error: str,
        *,
        status: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{errcode}: {error}")
        self.errcode = errcode
        self.error = error
        self.status = status if status is not None else ERRCODE_STATUS.get(errcode, 400)
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.error, **self.extra}


def forbidden(error: str = "Forbidden") -> MatrixError:
    return MatrixError("M_FORBIDDEN", error)


def guest_access_forbidden(error: str = "Guest access is not allowed here") -> MatrixError:
    """Client-Server API, "Guest access": what a guest account may not do."""
    return MatrixError("M_GUEST_ACCESS_FORBIDDEN", error)


def not_found(error: str = "Not found") -> MatrixError:
    return MatrixError("M_NOT_FOUND", error)


def bad_json(error: str) -> MatrixError:
    return MatrixError("M_BAD_JSON", error)


def missing_param(name: str) -> MatrixError:
    return MatrixError("M_MISSING_PARAM", f"Missing parameter: {name}")


def invalid_param(error: str) -> MatrixError:
    return MatrixError("M_INVALID_PARAM", error)


def unrecognized(error: str = "Unrecognized request", *, status: int = 404) -> MatrixError:
    return MatrixError("M_UNRECOGNIZED", error, status=status)


def limit_exceeded(retry_after_ms: int) -> MatrixError:
    return MatrixError(
        "M_LIMIT_EXCEEDED",
        "Too many requests",
        retry_after_ms=retry_after_ms,
    )
