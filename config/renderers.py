"""JSON rendering of every API response: compact, UTF-8, non-ASCII kept as is."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.renderers import BaseRenderer


class MatrixJSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Any = None,
    ) -> bytes:
        if data is None:
            return b""
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
