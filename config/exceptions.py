"""The one place where exceptions become Matrix error responses."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from protocol.errors import MatrixError

logger = logging.getLogger(__name__)


def to_matrix_error(exc: Exception) -> MatrixError | None:
    """Translate framework exceptions into the Matrix error a client should see."""
    if isinstance(exc, MatrixError):
        return exc
    if isinstance(exc, RequestDataTooBig):
        return MatrixError("M_TOO_LARGE", "Request body is too large")
    if isinstance(exc, drf.MethodNotAllowed):
        return MatrixError("M_UNRECOGNIZED", "Method not allowed for this endpoint", status=405)
    if isinstance(exc, drf.NotAuthenticated):
        return MatrixError("M_MISSING_TOKEN", "Missing access token")
    if isinstance(exc, drf.AuthenticationFailed):
        return MatrixError("M_UNKNOWN_TOKEN", "Unrecognised access token", soft_logout=False)
    if isinstance(exc, drf.PermissionDenied):
        return MatrixError("M_FORBIDDEN", str(exc.detail))
    if isinstance(exc, drf.ParseError):
        return MatrixError("M_NOT_JSON", "Content not JSON")
    if isinstance(exc, (drf.NotFound, Http404)):
        return MatrixError("M_NOT_FOUND", "Not found")
    if isinstance(exc, drf.Throttled):
        return MatrixError(
            "M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=int((exc.wait or 1) * 1000)
        )
    if isinstance(exc, drf.APIException):
        return MatrixError("M_UNKNOWN", str(exc.detail), status=exc.status_code)
    return None


def matrix_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: render every client-visible error as a Matrix error."""
    error = to_matrix_error(exc)
    if error is None:
        # An unexpected exception: log it with its traceback, answer a Matrix 500.
        logger.exception("Unhandled error in %s", context.get("view"))
        error = MatrixError("M_UNKNOWN", "Internal server error", status=500)
    headers = {}
    if error.errcode == "M_LIMIT_EXCEEDED" and "retry_after_ms" in error.extra:
        headers["Retry-After"] = str(max(1, -(-int(error.extra["retry_after_ms"]) // 1000)))
    return Response(error.to_dict(), status=error.status, headers=headers)


def matrix_error_response(error: MatrixError) -> JsonResponse:
    """The same rendering for plain Django views and handlers."""
    return JsonResponse(error.to_dict(), status=error.status)
