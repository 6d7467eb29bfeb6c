import pickle

import pytest

from aep_io import errors


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        (b'{"error_code": "401013", "message": "Oauth token is not valid"}', "401013",
         "Oauth token is not valid"),
        (b'{"type": "http://ns.adobe.com/aep/errors/DAS-1000-404", "title": "Not found", '
         b'"status": 404, "detail": "batch X not found"}', "DAS-1000-404",
         "Not found: batch X not found"),
        (b'{"message": "UPS-ACC-1000004: IMS Org is not provisioned.", "cause": "c", '
         b'"statusCode": "403"}', "UPS-ACC-1000004", "IMS Org is not provisioned. (c)"),
        (b'[{"message": "Too many requests", "retryAfterMs": "500", "statusCode": "429"}]', None,
         "Too many requests"),
        (b'{"error": "invalid_client", "error_description": "invalid client_id parameter"}',
         "invalid_client", "invalid client_id parameter"),
        (b'{"errorMessage": "flow failed"}', None, "flow failed"),
        (b"<html>Bad gateway</html>", None, "<html>Bad gateway</html>"),
    ],
)
def test_every_error_shape_is_read(body: bytes, code: str | None, text: str) -> None:
    detail = errors.parse_error_body(body)
    assert detail is not None
    assert detail.code == code
    assert text in detail.message


def test_retry_after_ms_from_body() -> None:
    detail = errors.parse_error_body(b'[{"message": "x", "retryAfterMs": "500"}]')
    assert detail is not None and detail.retry_after_ms == 500.0


@pytest.mark.parametrize(
    ("status", "body", "cls", "builtin"),
    [
        (404, b"", errors.NotFoundError, FileNotFoundError),
        (401, b"", errors.AuthenticationError, PermissionError),
        (403, b'{"error_code": "403010", "message": "Oauth token is missing."}',
         errors.AuthenticationError, PermissionError),
        (403, b'{"error_code": "403025", "message": "Profile is not valid"}',
         errors.ForbiddenError, PermissionError),
        (400, b"", errors.BadRequestError, ValueError),
        (422, b"", errors.ConflictError, errors.HTTPStatusError),
        (416, b"", errors.RangeNotSatisfiableError, errors.HTTPStatusError),
        (429, b"", errors.RateLimitError, errors.HTTPStatusError),
        (503, b"", errors.ServerError, errors.HTTPStatusError),
    ],
)
def test_status_maps_to_typed_error(status: int, body: bytes, cls: type, builtin: type) -> None:
    err = errors.error_for_status("GET", "http://h/x", status, body)
    assert type(err) is cls
    assert isinstance(err, builtin)
    assert isinstance(err, errors.AEPError)
    assert str(err).startswith(f"GET http://h/x failed with HTTP {status}")


def test_errors_pickle_with_their_message() -> None:
    err = errors.error_for_status("GET", "http://h/x", 404, b'{"title": "Not found"}')
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is errors.NotFoundError and str(clone) == str(err)
