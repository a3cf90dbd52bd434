"""Other servers' media: fetched over federation (the authenticated endpoints, their
multipart answers, redirects followed safely, the deprecated endpoints for servers
without them), cached once, and refused by the same rules as local media.

carol.example is faked (tests/federation/helpers.py): its media repository answers as a
server does, and everything above the wire (discovery, signing, parsing, storing) runs
for real."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client
from PIL import Image

from federation import transport
from federation.transport import HttpResponse
from media.federation import multipart_response
from media.models import RemoteMedia, RemoteThumbnail
from media.services import remote_media
from media.tasks import purge_expired_media_state
from operators.models import AuditEntry
from protocol.media_multipart import disposition_filename, media_answer
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import CAROL, FakeNetwork, FakeServer, carol, json_response, network
from tests.media.conftest import MEDIA_V1, MEDIA_V3, image_bytes, image_size, stored_files
from tests.media.test_moderation import operator
from tests.media.test_preview_url import Site, site

__all__ = ["carol", "network", "operator", "site"]

PNG = image_bytes(400, 300)
REMOTE_CHANGELIST = "/admin/media/remotemedia/"


def error(status: int, errcode: str) -> HttpResponse:
    return json_response({"errcode": errcode, "error": errcode}, status)


def multipart(data: bytes, content_type: str, disposition: str = "inline") -> HttpResponse:
    response = multipart_response(data, content_type, disposition)
    return HttpResponse(200, {"content-type": response["Content-Type"]}, response.content)


def location(url: str) -> HttpResponse:
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n"
        f"--{boundary}\r\nLocation: {url}\r\n\r\n\r\n--{boundary}--\r\n"
    ).encode()
    return HttpResponse(200, {"content-type": f"multipart/mixed; boundary={boundary}"}, body)


class Repository:
    """carol's media repository: what it holds, how it answers, what it was asked."""

    def __init__(self, server: FakeServer) -> None:
        self.media: dict[str, tuple[bytes, str, str]] = {}
        self.thumbnails: dict[str, bytes] = {}
        # An older server: no /_matrix/federation/v1/media (404 M_UNRECOGNIZED).
        self.legacy_only = False
        # Overrides for a path (without its query).
        self.answers: dict[str, HttpResponse] = {}
        self.asked: list[str] = []
        self.delay_s = 0.0
        server.handler = self.answer

    def add(
        self, media_id: str, data: bytes, content_type: str = "image/png", name: str = "cat.png"
    ) -> str:
        self.media[media_id] = (data, content_type, f'inline; filename="{name}"')
        return media_id

    def downloads(self) -> list[str]:
        return [p for p in self.asked if "/download/" in p]

    def answer(self, method: str, path: str, body: Any) -> HttpResponse | None:
        if path.startswith("/_matrix/key/"):
            return None
        self.asked.append(path)
        time.sleep(self.delay_s)
        route = urlsplit(path).path
        if route in self.answers:
            return self.answers[route]
        parts = route.split("/")
        media_id = parts[-1]
        federation = route.startswith("/_matrix/federation/v1/media/")
        if federation and self.legacy_only:
            return error(404, "M_UNRECOGNIZED")
        if "/thumbnail/" in route:
            if media_id not in self.thumbnails:
                return error(400, "M_UNKNOWN")
            data = self.thumbnails[media_id]
            if federation:
                return multipart(data, "image/jpeg")
            return HttpResponse(200, {"content-type": "image/jpeg"}, data)
        if media_id not in self.media:
            return error(404, "M_NOT_FOUND")
        data, content_type, disposition = self.media[media_id]
        if federation:
            return multipart(data, content_type, disposition)
        headers = {"content-type": content_type, "content-disposition": disposition}
        return HttpResponse(200, headers, data)


@pytest.fixture
def repo(carol: FakeServer) -> Repository:
    return Repository(carol)


def download(api: MatrixTestClient, who: Persona, media_id: str, suffix: str = "") -> Any:
    return api.get(f"{MEDIA_V1}/download/{CAROL}/{media_id}{suffix}", token=who.access_token)


def thumbnail(api: MatrixTestClient, who: Persona, media_id: str, query: str) -> Any:
    return api.get(f"{MEDIA_V1}/thumbnail/{CAROL}/{media_id}?{query}", token=who.access_token)


# --- Downloading --------------------------------------------------------------------------


def test_remote_media_is_fetched_over_federation_signed_and_cached(
    api: MatrixTestClient, alice: Persona, bob: Persona, repo: Repository, network: FakeNetwork
) -> None:
    repo.add("abcDEF123", PNG)

    first = download(api, alice, "abcDEF123")
    again = download(api, bob, "abcDEF123")

    assert first.status == 200
    assert first.body == PNG
    assert first.headers["Content-Type"] == "image/png"
    assert first.headers["Content-Disposition"] == 'inline; filename="cat.png"'
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    assert again.body == PNG
    assert repo.downloads() == ["/_matrix/federation/v1/media/download/abcDEF123?timeout_ms=20000"]
    sent = next(r for r in network.sent if "/media/download/" in r.path)
    assert sent.headers["Authorization"].startswith('X-Matrix origin="localhost:8008"')
    assert f'destination="{CAROL}"' in sent.headers["Authorization"]
    media = RemoteMedia.objects.get()
    assert (media.origin, media.media_id, media.size) == (CAROL, "abcDEF123", len(PNG))
    assert (media.width, media.height, media.upload_name) == (400, 300, "cat.png")


def test_the_file_name_in_the_path_and_the_clients_timeout(
    api: MatrixTestClient, alice: Persona, repo: Repository
) -> None:
    repo.add("abc", b"\x00binary", "application/octet-stream", "orig.bin")

    got = download(api, alice, "abc", "/mine.bin?timeout_ms=1500")

    assert got.status == 200
    assert got.headers["Content-Disposition"] == 'attachment; filename="mine.bin"'
    assert repo.downloads() == ["/_matrix/federation/v1/media/download/abc?timeout_ms=1500"]


def test_an_older_server_is_asked_at_the_deprecated_endpoint_without_remote_fetching(
    api: MatrixTestClient, alice: Persona, repo: Repository
) -> None:
    repo.legacy_only = True
    repo.add("old", PNG)

    got = download(api, alice, "old")

    assert got.status == 200
    assert got.body == PNG
    assert got.headers["Content-Disposition"] == 'inline; filename="cat.png"'
    legacy = urlsplit(repo.downloads()[1])
    assert legacy.path == f"/_matrix/media/v3/download/{CAROL}/old"
    assert parse_qs(legacy.query)["allow_remote"] == ["false"]


def test_media_missing_at_its_server_is_not_found_and_not_asked_again_at_once(
    api: MatrixTestClient, alice: Persona, repo: Repository
) -> None:
    first = download(api, alice, "missing")
    second = download(api, alice, "missing")

    assert (first.status, first.errcode) == (404, "M_NOT_FOUND")
    assert (second.status, second.errcode) == (404, "M_NOT_FOUND")
    # No fallback on a plain 404, and the answer is remembered for a moment.
    assert len(repo.downloads()) == 1


def test_an_unreachable_server_is_a_bad_gateway_until_it_is_back(
    api: MatrixTestClient,
    alice: Persona,
    repo: Repository,
    carol: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo.add("abc", PNG)
    carol.reachable = False

    got = download(api, alice, "abc")

    assert (got.status, got.errcode) == (502, "M_UNKNOWN")
    carol.reachable = True
    assert download(api, alice, "abc").status == 502  # Remembered briefly...
    later = int(time.time() * 1000) + remote_media.FAILURE_TTL_MS + 1
    monkeypatch.setattr(remote_media, "now_ms", lambda: later)
    assert download(api, alice, "abc").body == PNG  # ...then asked again.


@pytest.mark.parametrize(
    ("answer", "status", "errcode"),
    [
        pytest.param(error(500, "M_UNKNOWN"), 502, "M_UNKNOWN", id="server error"),
        pytest.param(error(429, "M_LIMIT_EXCEEDED"), 502, "M_UNKNOWN", id="rate limited"),
        pytest.param(error(403, "M_FORBIDDEN"), 502, "M_UNKNOWN", id="forbidden"),
        pytest.param(error(502, "M_TOO_LARGE"), 502, "M_TOO_LARGE", id="too large there"),
        pytest.param(error(504, "M_NOT_YET_UPLOADED"), 504, "M_NOT_YET_UPLOADED", id="pending"),
        pytest.param(
            HttpResponse(200, {"content-type": "image/png"}, PNG), 502, "M_UNKNOWN", id="no parts"
        ),
        pytest.param(
            HttpResponse(200, {"content-type": "multipart/mixed; boundary=x"}, b"--x\r\nbroken"),
            502,
            "M_UNKNOWN",
            id="broken multipart",
        ),
    ],
)
def test_errors_of_the_other_server_are_ours_to_tell(
    api: MatrixTestClient,
    alice: Persona,
    repo: Repository,
    answer: HttpResponse,
    status: int,
    errcode: str,
) -> None:
    repo.answers["/_matrix/federation/v1/media/download/abc"] = answer

    got = download(api, alice, "abc")

    assert (got.status, got.errcode) == (status, errcode)
    assert not RemoteMedia.objects.filter(fetched_ts__isnull=False).exists()


def test_media_still_being_uploaded_there_is_asked_for_again_at_once(
    api: MatrixTestClient, alice: Persona, repo: Repository
) -> None:
    path = "/_matrix/federation/v1/media/download/abc"
    repo.answers[path] = error(504, "M_NOT_YET_UPLOADED")
    assert download(api, alice, "abc").status == 504

    del repo.answers[path]
    repo.add("abc", PNG)

    assert download(api, alice, "abc").body == PNG


def test_content_over_the_size_limit_is_refused(
    api: MatrixTestClient, alice: Persona, repo: Repository, settings: Any, media_root: Path
) -> None:
    settings.MAX_UPLOAD_SIZE = 1000
    repo.add("big", b"x" * 1001, "application/octet-stream")
    repo.add("fits", b"x" * 1000, "application/octet-stream")

    got = download(api, alice, "big")

    assert (got.status, got.errcode) == (502, "M_TOO_LARGE")
    assert download(api, alice, "fits").status == 200
    assert len(stored_files(media_root)) == 1


def test_an_answer_longer_than_the_transport_allows_is_too_large(
    api: MatrixTestClient, alice: Persona, repo: Repository, carol: FakeServer
) -> None:
    def endless(method: str, path: str, body: Any) -> HttpResponse | None:
        if "/media/" in path:
            raise transport.ResponseTooLarge("response too large")
        return None

    carol.handler = endless

    got = download(api, alice, "abc")

    assert (got.status, got.errcode) == (502, "M_TOO_LARGE")


def test_a_bad_media_id_or_server_name_is_not_asked_for(
    api: MatrixTestClient, alice: Persona, network: FakeNetwork
) -> None:
    bad_id = api.get(f"{MEDIA_V1}/download/{CAROL}/not.an.id", token=alice.access_token)
    bad_server = api.get(f"{MEDIA_V1}/download/bad_server!/abc", token=alice.access_token)

    assert (bad_id.status, bad_id.errcode) == (404, "M_NOT_FOUND")
    assert (bad_server.status, bad_server.errcode) == (404, "M_NOT_FOUND")
    assert network.sent == []


# --- Location: the media is elsewhere ------------------------------------------------------


@pytest.fixture
def allow_loopback(settings: Any) -> None:
    settings.FEDERATION_IP_ALLOWLIST = ["127.0.0.1/32"]


def test_a_location_answer_is_followed_through_redirects(
    api: MatrixTestClient, alice: Persona, repo: Repository, site: Site, allow_loopback: None
) -> None:
    site.page("/start", b"", status=302, Location="/media")
    site.page("/media", PNG, "image/png", **{"Content-Disposition": 'inline; filename="c.png"'})
    repo.answers["/_matrix/federation/v1/media/download/abc"] = location(f"{site.url}/start")

    got = download(api, alice, "abc")

    assert got.status == 200
    assert got.body == PNG
    assert got.headers["Content-Disposition"] == 'inline; filename="c.png"'
    assert site.hits == ["/start", "/media"]


def test_a_location_at_a_private_address_is_refused(
    api: MatrixTestClient, alice: Persona, repo: Repository, site: Site
) -> None:
    site.page("/media", PNG, "image/png")
    repo.answers["/_matrix/federation/v1/media/download/abc"] = location(f"{site.url}/media")

    got = download(api, alice, "abc")

    assert (got.status, got.errcode) == (502, "M_UNKNOWN")
    assert site.hits == []


def test_redirect_loops_and_oversized_redirected_content_are_refused(
    api: MatrixTestClient,
    alice: Persona,
    repo: Repository,
    site: Site,
    allow_loopback: None,
    settings: Any,
) -> None:
    site.page("/a", b"", status=302, Location="/b")
    site.page("/b", b"", status=302, Location="/a")
    site.page("/big", b"x" * 2000, "application/octet-stream")
    repo.answers["/_matrix/federation/v1/media/download/loop"] = location(f"{site.url}/a")
    repo.answers["/_matrix/federation/v1/media/download/big"] = location(f"{site.url}/big")
    settings.MAX_UPLOAD_SIZE = 1000

    loop = download(api, alice, "loop")
    big = download(api, alice, "big")

    assert (loop.status, loop.errcode) == (502, "M_UNKNOWN")
    assert site.hits[:2] == ["/a", "/b"]
    assert (big.status, big.errcode) == (502, "M_TOO_LARGE")


# --- Thumbnails ---------------------------------------------------------------------------


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, "JPEG")
    return out.getvalue()


def test_the_other_servers_thumbnail_is_served_and_kept(
    api: MatrixTestClient, alice: Persona, repo: Repository
) -> None:
    repo.add("abc", PNG)
    theirs = jpeg(96, 96)
    repo.thumbnails["abc"] = theirs

    got = thumbnail(api, alice, "abc", "width=96&height=96&method=crop")
    again = thumbnail(api, alice, "abc", "width=96&height=96&method=crop")

    assert got.status == 200
    assert got.body == theirs
    assert got.headers["Content-Type"] == "image/jpeg"
    assert again.body == theirs
    asked = [p for p in repo.asked if "/thumbnail/" in p]
    assert len(asked) == 1
    assert parse_qs(urlsplit(asked[0]).query) == {
        "width": ["96"],
        "height": ["96"],
        "method": ["crop"],
        "animated": ["false"],
        "timeout_ms": ["20000"],
    }
    assert RemoteThumbnail.objects.get().size == len(theirs)


def test_a_thumbnail_is_made_here_when_the_other_server_has_none(
    api: MatrixTestClient, alice: Persona, repo: Repository
) -> None:
    repo.add("abc", PNG)

    got = thumbnail(api, alice, "abc", "width=32&height=32&method=crop")

    assert got.status == 200
    assert image_size(got.body) == (32, 32)
    assert RemoteThumbnail.objects.count() == 1


def test_a_thumbnail_that_is_not_an_image_is_not_passed_on(
    api: MatrixTestClient, alice: Persona, repo: Repository
) -> None:
    repo.add("abc", PNG)
    repo.answers["/_matrix/federation/v1/media/thumbnail/abc"] = multipart(
        b"<script>alert(1)</script>", "image/png"
    )

    got = thumbnail(api, alice, "abc", "width=32&height=32&method=crop")

    assert got.status == 200
    assert image_size(got.body) == (32, 32)


def test_thumbnails_from_an_older_server(
    api: MatrixTestClient, alice: Persona, repo: Repository
) -> None:
    repo.legacy_only = True
    repo.add("abc", PNG)
    repo.thumbnails["abc"] = jpeg(40, 30)

    got = thumbnail(api, alice, "abc", "width=40&height=30&method=scale")

    assert got.body == repo.thumbnails["abc"]
    legacy = urlsplit([p for p in repo.asked if "/thumbnail/" in p][-1])
    assert legacy.path == f"/_matrix/media/v3/thumbnail/{CAROL}/abc"
    assert parse_qs(legacy.query)["allow_remote"] == ["false"]


def test_a_thumbnail_of_media_missing_at_its_server_is_not_found(
    api: MatrixTestClient, alice: Persona, repo: Repository
) -> None:
    got = thumbnail(api, alice, "nothing", "width=32&height=32")

    assert (got.status, got.errcode) == (404, "M_NOT_FOUND")


# --- The deprecated unauthenticated endpoints ----------------------------------------------


def test_the_deprecated_endpoints_fetch_nothing_while_frozen(
    api: MatrixTestClient, repo: Repository
) -> None:
    repo.add("abc", PNG)

    got = api.get(f"{MEDIA_V3}/download/{CAROL}/abc")

    assert (got.status, got.errcode) == (404, "M_NOT_FOUND")
    assert repo.asked == []


def test_the_deprecated_endpoints_serve_remote_media_when_not_frozen(
    api: MatrixTestClient, alice: Persona, repo: Repository, settings: Any
) -> None:
    settings.MEDIA_LEGACY_UNAUTHENTICATED = True
    repo.add("abc", PNG)
    repo.add("def", PNG)

    cached_only = api.get(f"{MEDIA_V3}/download/{CAROL}/abc?allow_remote=false")
    got = api.get(f"{MEDIA_V3}/download/{CAROL}/abc")
    thumb = api.get(f"{MEDIA_V3}/thumbnail/{CAROL}/abc?width=32&height=32&method=crop")

    assert (cached_only.status, cached_only.errcode) == (404, "M_NOT_FOUND")
    assert got.body == PNG
    assert thumb.status == 200
    # Fetched while not frozen: still served by them once frozen; fetched while frozen: not.
    settings.MEDIA_LEGACY_UNAUTHENTICATED = False
    assert download(api, alice, "def").status == 200
    assert api.get(f"{MEDIA_V3}/download/{CAROL}/abc").body == PNG
    assert api.get(f"{MEDIA_V3}/download/{CAROL}/def").status == 404


# --- Fetched once -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_for_the_same_media_fetch_it_once(
    repo: Repository, media_root: Path
) -> None:
    repo.add("abc", PNG)
    repo.delay_s = 0.5
    results: list[Any] = []

    def get() -> None:
        try:
            results.append(remote_media.do_get_remote_media(CAROL, "abc", timeout_ms=0))
        except Exception as exc:  # pragma: no cover - reported below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=get) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [type(r) for r in results] == [RemoteMedia] * 3
    assert {r.pk for r in results} == {RemoteMedia.objects.get().pk}
    assert len(repo.downloads()) == 1


def test_a_fetch_in_progress_is_waited_for(
    db: None, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.add("abc", PNG)
    started = remote_media.now_ms()
    pending = RemoteMedia.objects.create(
        origin=CAROL, media_id="abc", file_id="f1", created_ts=started, claimed_ts=started
    )
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        # The other fetcher finishes while this request waits.
        waits.append(seconds)
        RemoteMedia.objects.filter(pk=pending.pk).update(
            fetched_ts=started, storage_name="elsewhere", size=3
        )

    monkeypatch.setattr(remote_media, "_sleep", sleep)

    got = remote_media.do_get_remote_media(CAROL, "abc")

    assert got.storage_name == "elsewhere"
    assert len(waits) == 1
    assert repo.asked == []


def test_a_fetch_abandoned_long_ago_is_taken_over_and_failures_are_forgotten(
    db: None, repo: Repository
) -> None:
    repo.add("abc", PNG)
    long_ago = remote_media.now_ms() - remote_media.CLAIM_STALE_MS - 1
    RemoteMedia.objects.create(
        origin=CAROL, media_id="abc", file_id="f1", created_ts=long_ago, claimed_ts=long_ago
    )
    RemoteMedia.objects.create(
        origin=CAROL,
        media_id="gone",
        file_id="f2",
        created_ts=long_ago,
        claimed_ts=long_ago,
        failed_ts=long_ago,
        failure="not_found",
    )

    media = remote_media.do_get_remote_media(CAROL, "abc")

    assert media.is_cached
    assert purge_expired_media_state.delay().get()["failed_remote_fetches"] == 1
    assert list(RemoteMedia.objects.values_list("media_id", flat=True)) == ["abc"]


# --- Operators: quarantine, purge, the cache's size ----------------------------------------


def select(operator: Client, action: str, *media_ids: str) -> None:
    pks = RemoteMedia.objects.filter(media_id__in=media_ids).values_list("pk", flat=True)
    response = operator.post(
        REMOTE_CHANGELIST, {"action": action, "_selected_action": [str(pk) for pk in pks]}
    )
    assert response.status_code == 302, response.content


def test_the_admin_lists_the_cache_with_origin_size_and_total(
    api: MatrixTestClient, alice: Persona, repo: Repository, operator: Client
) -> None:
    repo.add("abc", PNG)
    repo.add("txt", b"12345", "text/plain", "five.txt")
    download(api, alice, "abc")
    download(api, alice, "txt")

    page = operator.get(REMOTE_CHANGELIST)

    html = page.content.decode()
    assert page.status_code == 200
    assert CAROL in html
    assert "five.txt" in html
    assert "2 item(s) cached" in html
    assert operator.get(f"{REMOTE_CHANGELIST}?state=quarantined").status_code == 200


def test_quarantined_remote_media_is_refused_and_not_fetched_again(
    api: MatrixTestClient,
    alice: Persona,
    repo: Repository,
    operator: Client,
    media_root: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    repo.add("abc", PNG)
    download(api, alice, "abc")
    thumbnail(api, alice, "abc", "width=32&height=32&method=crop")
    select(operator, "quarantine", "abc")

    assert download(api, alice, "abc").status == 404
    assert thumbnail(api, alice, "abc", "width=32&height=32").status == 404

    with django_capture_on_commit_callbacks(execute=True):
        select(operator, "purge", "abc")

    assert stored_files(media_root) == []
    assert download(api, alice, "abc").status == 404
    assert len(repo.downloads()) == 1
    assert RemoteMedia.objects.get().quarantined_by == "@operator:localhost:8008"

    select(operator, "unquarantine", "abc")
    assert download(api, alice, "abc").body == PNG
    assert len(repo.downloads()) == 2
    # Each action is in the operators' audit log.
    messages = [entry.change_message for entry in LogEntry.objects.order_by("pk")]
    assert [m.split(" ")[0] for m in messages] == ["Quarantined", "Purged", "Released"]
    audited = AuditEntry.objects.order_by("pk").values_list("action", "target", "via")
    assert list(audited) == [
        (action, f"mxc://{CAROL}/abc", "portal")
        for action in ("media.quarantine", "media.purge_remote", "media.unquarantine")
    ]


def test_purged_media_is_fetched_again_when_asked_for(
    api: MatrixTestClient,
    alice: Persona,
    repo: Repository,
    operator: Client,
    media_root: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    repo.add("abc", PNG)
    download(api, alice, "abc")
    thumbnail(api, alice, "abc", "width=32&height=32&method=crop")
    assert len(stored_files(media_root)) == 2

    with django_capture_on_commit_callbacks(execute=True):
        select(operator, "purge", "abc")

    assert stored_files(media_root) == []
    assert not RemoteMedia.objects.exists()
    assert download(api, alice, "abc").body == PNG
    assert len(repo.downloads()) == 2


def test_trellis_reads_its_own_federation_answer() -> None:
    response = multipart_response(b"hello", "text/plain", 'attachment; filename="h.txt"')

    got = media_answer(response["Content-Type"], response.content)

    assert (got.data, got.content_type) == (b"hello", "text/plain")
    assert disposition_filename(got.content_disposition) == "h.txt"
