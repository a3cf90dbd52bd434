"""Matrix errors: one errcode-to-status table, raisers may override the status."""

from protocol.errors import ERRCODE_STATUS, MatrixError, limit_exceeded, unrecognized


def test_status_comes_from_the_errcode() -> None:
    assert MatrixError("M_FORBIDDEN", "no").status == 403
    assert MatrixError("M_UNKNOWN_TOKEN", "who?").status == 401
    assert MatrixError("M_NOT_FOUND", "gone").status == 404
    assert MatrixError("M_TOO_LARGE", "big").status == 413
    assert MatrixError("M_LIMIT_EXCEEDED", "slow down").status == 429


def test_unknown_errcodes_are_client_errors() -> None:
    assert MatrixError("M_SOMETHING_NEW", "?").status == 400


def test_the_raiser_may_set_the_status() -> None:
    assert unrecognized(status=405).status == 405
    assert unrecognized().status == 404


def test_extra_fields_are_rendered_beside_errcode_and_error() -> None:
    error = limit_exceeded(1500)
    assert error.to_dict() == {
        "errcode": "M_LIMIT_EXCEEDED",
        "error": "Too many requests",
        "retry_after_ms": 1500,
    }
    token = MatrixError("M_UNKNOWN_TOKEN", "expired", soft_logout=True)
    assert token.to_dict()["soft_logout"] is True


def test_every_errcode_maps_to_a_4xx_or_5xx_status() -> None:
    assert all(400 <= status < 600 for status in ERRCODE_STATUS.values())
    assert all(code.startswith("M_") for code in ERRCODE_STATUS)
