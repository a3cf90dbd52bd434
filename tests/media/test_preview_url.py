"""GET /_matrix/client/v1/media/preview_url: OpenGraph, oEmbed, caching, and the
refusal of private and local addresses (server-side request forgery)."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest

from media.models import LocalMedia, UrlPreview
from media.preview import fetch
from media.tasks import purge_expired_media_state
from tests.conftest import MatrixTestClient, Persona
from tests.media.conftest import MEDIA_V1, MEDIA_V3, image_bytes

PNG = image_bytes(64, 48, "PNG")


class Site:
    """A tiny web site on 127.0.0.1: path -> (status, headers, body); counts requests."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                status, headers, body = site.pages.get(self.path, (404, {}, b"no"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def page(self, path: str, body: bytes, content_type: str = "text/html", status: int = 200,
             **headers: str) -> None:  # fmt: skip
        self.pages[path] = (status, {"Content-Type": content_type, **headers}, body)


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site()
    thread = threading.Thread(target=site.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield site
    site.server.shutdown()
    site.server.server_close()


@pytest.fixture
def allow_loopback(settings: Any) -> None:
    settings.URL_PREVIEW_IP_ALLOWLIST = ["127.0.0.1/32"]


def preview(api: MatrixTestClient, who: Persona, url: str, prefix: str = MEDIA_V1) -> Any:
    return api.get(f"{prefix}/preview_url?url={quote(url, safe='')}", token=who.access_token)


ARTICLE = b"""<!doctype html><html><head>
<title>Ignored title</title>
<meta property="og:title" content="The Matrix Blog">
<meta property="og:description" content="Decentralised &amp; open">
<meta property="og:image" content="/logo.png">
</head><body>hello</body></html>"""


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::1]:{port}/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
)
def test_private_and_local_addresses_are_refused_by_default(
    api: MatrixTestClient, alice: Persona, site: Site, url: str
) -> None:
    site.page("/", ARTICLE)

    got = preview(api, alice, url.format(port=site.port))

    assert got.status == 403
    assert got.errcode == "M_FORBIDDEN"
    assert site.hits == []
    assert UrlPreview.objects.count() == 0


def test_a_page_is_previewed_with_its_opengraph_and_image(
    api: MatrixTestClient, alice: Persona, bob: Persona, site: Site, allow_loopback: None
) -> None:
    site.page("/article", ARTICLE)
    site.page("/logo.png", PNG, "image/png")

    got = preview(api, alice, f"{site.url}/article")

    assert got.status == 200
    assert got.body["og:title"] == "The Matrix Blog"
    assert got.body["og:description"] == "Decentralised & open"
    assert got.body["og:image"].startswith("mxc://localhost:8008/")
    assert got.body["og:image:type"] == "image/png"
    assert got.body["og:image:width"] == 64
    assert got.body["og:image:height"] == 48
    assert got.body["matrix:image:size"] == len(PNG)
    media_id = got.body["og:image"].rsplit("/", 1)[1]
    image = api.get(f"{MEDIA_V1}/download/localhost:8008/{media_id}", token=bob.access_token)
    assert image.body == PNG
    assert LocalMedia.objects.get(media_id=media_id).user_id == ""


def test_previews_are_cached(
    api: MatrixTestClient, alice: Persona, bob: Persona, site: Site, allow_loopback: None
) -> None:
    site.page("/article", ARTICLE)
    site.page("/logo.png", PNG, "image/png")
    first = preview(api, alice, f"{site.url}/article")
    hits = len(site.hits)

    second = preview(api, bob, f"{site.url}/article", prefix=MEDIA_V3)

    assert second.status == 200
    assert second.body == first.body
    assert len(site.hits) == hits


def test_expired_previews_are_fetched_again_and_purged(
    api: MatrixTestClient, alice: Persona, site: Site, allow_loopback: None
) -> None:
    site.page("/page", b"<title>One</title>")
    assert preview(api, alice, f"{site.url}/page").body == {"og:title": "One"}
    UrlPreview.objects.update(expires_ts=1)
    site.page("/page", b"<title>Two</title>")

    assert preview(api, alice, f"{site.url}/page").body == {"og:title": "Two"}
    assert purge_expired_media_state.delay().get()["url_previews"] == 1
    assert UrlPreview.objects.get().og == {"og:title": "Two"}


def test_title_and_description_fall_back_to_html(
    api: MatrixTestClient, alice: Persona, site: Site, allow_loopback: None
) -> None:
    site.page(
        "/plain",
        b'<html><head><meta charset="iso-8859-1"><title> Caf\xe9 </title>'
        b'<meta name="description" content="A page"></head></html>',
        "text/html",
    )

    got = preview(api, alice, f"{site.url}/plain")

    assert got.body == {"og:title": "Caf\u00e9", "og:description": "A page"}


def test_oembed_discovery_fills_in_what_opengraph_lacks(
    api: MatrixTestClient, alice: Persona, site: Site, allow_loopback: None
) -> None:
    site.page(
        "/video",
        b'<html><head><link rel="alternate" type="application/json+oembed" href="/oembed">'
        b"</head></html>",
    )
    site.page(
        "/oembed",
        b'{"type": "video", "title": "A talk", "provider_name": "Tube", '
        b'"thumbnail_url": "/thumb.png"}',
        "application/json",
    )
    site.page("/thumb.png", PNG, "image/png")

    got = preview(api, alice, f"{site.url}/video")

    assert got.body["og:title"] == "A talk"
    assert got.body["og:site_name"] == "Tube"
    assert got.body["og:image"].startswith("mxc://")


def test_an_image_url_is_previewed_as_an_image(
    api: MatrixTestClient, alice: Persona, site: Site, allow_loopback: None
) -> None:
    site.page("/pic.png", PNG, "image/png")

    got = preview(api, alice, f"{site.url}/pic.png")

    assert got.body["og:image:type"] == "image/png"
    assert got.body["matrix:image:size"] == len(PNG)


def test_a_redirect_to_a_refused_address_is_refused(
    api: MatrixTestClient, alice: Persona, site: Site, allow_loopback: None
) -> None:
    site.page("/go", b"", status=302, Location=f"http://127.0.0.2:{site.port}/secret")

    got = preview(api, alice, f"{site.url}/go")

    assert got.status == 403
    assert got.errcode == "M_FORBIDDEN"
    assert site.hits == ["/go"]


def test_a_redirect_to_an_allowed_address_is_followed(
    api: MatrixTestClient, alice: Persona, site: Site, allow_loopback: None
) -> None:
    site.page("/go", b"", status=301, Location="/article")
    site.page("/article", b"<title>Moved</title>")

    got = preview(api, alice, f"{site.url}/go")

    assert got.body == {"og:title": "Moved"}


def test_responses_over_the_size_limit_are_refused(
    api: MatrixTestClient, alice: Persona, site: Site, allow_loopback: None, settings: Any
) -> None:
    settings.URL_PREVIEW_MAX_BYTES = 1000
    site.page("/big", b"<title>x</title>" + b" " * 5000)

    got = preview(api, alice, f"{site.url}/big")

    assert got.status == 502
    assert UrlPreview.objects.count() == 0


def test_errors_from_the_site_are_a_bad_gateway(
    api: MatrixTestClient, alice: Persona, site: Site, allow_loopback: None
) -> None:
    got = preview(api, alice, f"{site.url}/missing")

    assert got.status == 502
    assert got.errcode == "M_UNKNOWN"


@pytest.mark.parametrize(
    "url", ["ftp://example.org/", "file:///etc/passwd", "not a url", "http://"]
)
def test_only_http_urls(api: MatrixTestClient, alice: Persona, url: str) -> None:
    got = preview(api, alice, url)

    assert got.status == 400
    assert got.errcode == "M_INVALID_PARAM"


def test_url_is_required_and_ts_must_be_a_number(api: MatrixTestClient, alice: Persona) -> None:
    missing = api.get(f"{MEDIA_V1}/preview_url", token=alice.access_token)
    bad_ts = api.get(
        f"{MEDIA_V1}/preview_url?url=http%3A%2F%2F10.0.0.1%2F&ts=yesterday",
        token=alice.access_token,
    )

    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    assert (bad_ts.status, bad_ts.errcode) == (400, "M_INVALID_PARAM")


def test_previews_need_an_access_token(api: MatrixTestClient) -> None:
    got = api.get(f"{MEDIA_V1}/preview_url?url=http%3A%2F%2Fexample.org%2F")

    assert got.status == 401


def test_previews_can_be_turned_off(api: MatrixTestClient, alice: Persona, settings: Any) -> None:
    settings.URL_PREVIEWS_ENABLED = False

    got = preview(api, alice, "http://example.org/")

    assert got.status == 404


def _policy(allow: list[str] = (), deny: list[str] = ()) -> fetch.Policy:  # type: ignore[assignment]
    return fetch.Policy(fetch.parse_networks(allow), fetch.parse_networks(deny), 1000, 1.0)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.215.14", True),
    ],
)
def test_the_default_address_policy(address: str, allowed: bool) -> None:
    assert fetch.address_allowed(ipaddress.ip_address(address), _policy()) is allowed


def test_the_deny_list_refuses_more_and_the_allow_list_lets_through() -> None:
    policy = _policy(allow=["10.9.0.0/16"], deny=["93.184.0.0/16"])

    assert fetch.address_allowed(ipaddress.ip_address("93.184.215.14"), policy) is False
    assert fetch.address_allowed(ipaddress.ip_address("10.9.8.7"), policy) is True
    assert fetch.address_allowed(ipaddress.ip_address("10.8.0.1"), policy) is False
