"""GET /media/preview_url: the OpenGraph description of a URL, fetched safely, cached.

The page (or image) is fetched through media.preview.fetch, which refuses private and
local addresses unless the operator allows them. A page's og:image is fetched the same
way and stored as local media, so clients get an mxc:// URI and never contact the site.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from accounts.clock import now_ms
from media import ids
from media.models import UrlPreview
from media.preview import fetch, parse
from media.services import uploads
from protocol.errors import MatrixError

logger = logging.getLogger(__name__)

CACHE_MS = 60 * 60 * 1000
MAX_URL_CHARS = 2048
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _policy() -> fetch.Policy:
    return fetch.Policy(
        allow=fetch.parse_networks(settings.URL_PREVIEW_IP_ALLOWLIST),
        deny=fetch.parse_networks(settings.URL_PREVIEW_IP_DENYLIST),
        max_bytes=min(settings.URL_PREVIEW_MAX_BYTES, settings.MAX_UPLOAD_SIZE),
        timeout_s=settings.URL_PREVIEW_TIMEOUT_S,
    )


def _base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _image_og(fetched: fetch.Fetched) -> dict[str, Any]:
    """Store a fetched image as local media; describe it in OpenGraph terms."""
    content_type = _base_type(fetched.content_type)
    if content_type not in _IMAGE_TYPES:
        return {}
    media = uploads.do_store_fetched(fetched.body, content_type)
    og: dict[str, Any] = {
        "og:image": ids.mxc_uri(media.media_id),
        "og:image:type": content_type,
        "matrix:image:size": media.size,
    }
    if media.width is not None:
        og["og:image:width"] = media.width
        og["og:image:height"] = media.height
    return og


def _fetch_image(url: str, policy: fetch.Policy) -> dict[str, Any]:
    try:
        return _image_og(fetch.fetch(url, policy, accept="image/*"))
    except (fetch.FetchRefused, fetch.FetchFailed) as exc:
        logger.info("Preview image %s not fetched: %s", url, exc)
        return {}


def _page_og(fetched: fetch.Fetched, policy: fetch.Policy) -> dict[str, Any]:
    page = parse.parse_html(parse.decode_html(fetched.body, fetched.content_type))
    og: dict[str, Any] = dict(page.og)
    if page.oembed_url:
        try:
            oembed = fetch.fetch(
                urljoin(fetched.url, page.oembed_url), policy, accept="application/json"
            )
            for key, value in parse.og_from_oembed(json.loads(oembed.body)).items():
                og.setdefault(key, value)
        except (fetch.FetchRefused, fetch.FetchFailed, ValueError) as exc:
            logger.info("oEmbed for %s not used: %s", fetched.url, exc)
    if "og:title" not in og and page.title:
        og["og:title"] = page.title
    if "og:description" not in og and page.description:
        og["og:description"] = page.description
    image = og.pop("og:image", None)
    for key in [k for k in og if k.startswith("og:image:")]:
        del og[key]
    if isinstance(image, str) and image:
        og.update(_fetch_image(urljoin(fetched.url, image), policy))
    return og


def _check_url(url: str) -> None:
    if len(url) > MAX_URL_CHARS:
        raise MatrixError("M_INVALID_PARAM", "url is too long")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MatrixError("M_INVALID_PARAM", "url must be an http or https URL")


def do_preview_url(url: str) -> dict[str, Any]:
    """The preview of ``url``: from the cache while fresh, else fetched and cached."""
    if not settings.URL_PREVIEWS_ENABLED:
        raise MatrixError("M_UNRECOGNIZED", "URL previews are disabled on this server", status=404)
    _check_url(url)
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()
    now = now_ms()
    cached = UrlPreview.objects.filter(url_sha256=key, url=url, expires_ts__gt=now).first()
    if cached is not None:
        return dict(cached.og)
    policy = _policy()
    try:
        fetched = fetch.fetch(url, policy, accept="text/html,image/*;q=0.9,*/*;q=0.5")
    except fetch.FetchRefused as exc:
        raise MatrixError("M_FORBIDDEN", f"This URL cannot be previewed: {exc}") from None
    except fetch.FetchFailed as exc:
        raise MatrixError("M_UNKNOWN", f"Could not fetch the URL: {exc}", status=502) from None
    content_type = _base_type(fetched.content_type)
    if content_type in ("text/html", "application/xhtml+xml"):
        og = _page_og(fetched, policy)
    else:
        og = _image_og(fetched)
    UrlPreview.objects.create(
        url=url, url_sha256=key, fetched_ts=now, expires_ts=now + CACHE_MS, og=og
    )
    return og


def do_purge_expired_previews() -> int:
    """Delete cached previews past their lifetime (their images stay: clients may still
    show a preview they fetched earlier)."""
    count, _ = UrlPreview.objects.filter(expires_ts__lte=now_ms()).delete()
    return count
