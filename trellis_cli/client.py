"""Matrix over HTTP with urllib: one request at a time, errors as :class:`MatrixHTTPError`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

CLIENT_V3 = "/_matrix/client/v3"
MEDIA_V3 = "/_matrix/media/v3"
# Seconds to wait for an answer, beyond the long-poll time of a /sync.
REQUEST_TIMEOUT_S = 60.0


class MatrixHTTPError(Exception):
    """An error answer from the homeserver."""

    def __init__(self, errcode: str, error: str, status: int = 0, body: Any = None) -> None:
        super().__init__(f"{errcode}: {error}")
        self.errcode = errcode
        self.error = error
        self.status = status
        self.body = body


class Unreachable(Exception):
    """No answer from the homeserver: refused, timed out, no such host."""


def path_param(value: str) -> str:
    """A path parameter, every reserved character percent-encoded."""
    return quote(value, safe="")


def normalise_homeserver(url: str) -> str:
    """``example.org`` or ``https://example.org/`` as a base URL without a trailing slash."""
    url = url.strip()
    if "://" not in url:
        url = f"https://{url}"
    return url.rstrip("/")


class MatrixClient:
    def __init__(self, homeserver: str, access_token: str | None = None) -> None:
        self.homeserver = normalise_homeserver(homeserver)
        self.access_token = access_token

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> Any:
        """Send a request to ``path`` (under /_matrix/client/v3 unless it starts with /);
        return the parsed JSON answer or raise :class:`MatrixHTTPError`."""
        if not path.startswith("/"):
            path = f"{CLIENT_V3}/{path}"
        url = self.homeserver + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        data: bytes | None = None
        if raw is not None:
            data = raw
            headers["Content-Type"] = content_type
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return _parse(response.read())
        except urllib.error.HTTPError as error:
            with error:
                answer = _parse(error.read())
            if isinstance(answer, dict) and "errcode" in answer:
                raise MatrixHTTPError(
                    str(answer["errcode"]), str(answer.get("error", "")), error.code, answer
                ) from None
            raise MatrixHTTPError(
                "M_UNKNOWN", f"HTTP {error.code} from {url}", error.code, answer
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise Unreachable(f"cannot reach {self.homeserver}: {reason}") from None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, {} if body is None else body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("PUT", path, {} if body is None else body, **kwargs)


def _parse(content: bytes) -> Any:
    if not content:
        return {}
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")
