"""Reading a page's preview: OpenGraph tags, with <title>/<meta name=description> and
an oEmbed discovery link as fall-backs (https://ogp.me, https://oembed.com section 4)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

MAX_VALUE_CHARS = 1000
MAX_TAGS = 50
# Only the start of a page is read: the tags previews need live in <head>.
MAX_PARSE_CHARS = 1024 * 1024
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


@dataclass
class PageInfo:
    og: dict[str, str] = field(default_factory=dict)
    title: str | None = None
    description: str | None = None
    oembed_url: str | None = None


class _HeadParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.info = PageInfo()
        self._in_title = False
        self._title: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            key = a.get("property") or a.get("name") or ""
            content = a.get("content", "").strip()[:MAX_VALUE_CHARS]
            if key.startswith("og:") and content and len(self.info.og) < MAX_TAGS:
                self.info.og.setdefault(key, content)
            elif key.lower() == "description" and content:
                self.info.description = self.info.description or content
        elif tag == "link":
            if (
                "alternate" in a.get("rel", "").lower().split()
                and a.get("type", "").lower() == "application/json+oembed"
                and a.get("href")
            ):
                self.info.oembed_url = self.info.oembed_url or a["href"]
        elif tag == "title" and self.info.title is None:
            self._in_title = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.info.title = "".join(self._title).strip()[:MAX_VALUE_CHARS] or None


def decode_html(body: bytes, content_type: str) -> str:
    charset = None
    match = re.search(r"charset=([A-Za-z0-9_.:-]+)", content_type, re.IGNORECASE)
    if match:
        charset = match.group(1)
    else:
        meta = _CHARSET.search(body[:4096])
        if meta:
            charset = meta.group(1).decode("ascii")
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def parse_html(text: str) -> PageInfo:
    parser = _HeadParser()
    parser.feed(text[:MAX_PARSE_CHARS])
    parser.close()
    return parser.info


def og_from_oembed(data: Any) -> dict[str, str]:
    """The OpenGraph equivalents of an oEmbed response's fields."""
    if not isinstance(data, dict):
        return {}
    og: dict[str, str] = {}
    for oembed_key, og_key in (
        ("title", "og:title"),
        ("provider_name", "og:site_name"),
        ("author_name", "og:description"),
        ("thumbnail_url", "og:image"),
    ):
        value = data.get(oembed_key)
        if isinstance(value, str) and value.strip():
            og[og_key] = value.strip()[:MAX_VALUE_CHARS]
    if data.get("type") == "photo" and isinstance(data.get("url"), str):
        og["og:image"] = data["url"]
    return og
