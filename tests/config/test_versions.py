"""/versions lists only what Trellis serves: every advertised spec version's headline
Client-Server endpoints (the changelog's "New Endpoints" and the features clients gate
on that version) must route to a view that answers their method.

Push rules (/pushrules, every version) are not in this table yet: they come with the
push branch, which adds them here.
"""

from __future__ import annotations

import re

import pytest
from django.urls import Resolver404, resolve

from config import views
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from tests.conftest import MatrixTestClient

C3 = "/_matrix/client/v3"
C1 = "/_matrix/client/v1"
ROOM = "/rooms/!r:example.org"

# Spec version -> the endpoints it added that clients use ("METHOD path", with sample
# path parameters). From the spec's changelog (content/changelog/v1.N.md).
HEADLINE_ENDPOINTS: dict[str, list[str]] = {
    "v1.1": [
        # Key backup, cross-signing, knocking.
        f"GET {C3}/room_keys/version",
        f"PUT {C3}/room_keys/keys/!r:example.org/session",
        f"POST {C3}/keys/device_signing/upload",
        f"POST {C3}/keys/signatures/upload",
        f"POST {C3}/knock/!r:example.org",
        # The push module every server must support: clients read the rules at start-up.
        f"GET {C3}/pushrules/",
        f"PUT {C3}/pushrules/global/override/rule",
        f"GET {C3}/pushers",
        f"POST {C3}/pushers/set",
        f"GET {C3}/notifications",
    ],
    "v1.2": [
        # Spaces; token-authenticated registration.
        f"GET {C1}{ROOM}/hierarchy",
        f"GET {C1}/register/m.login.registration_token/validity",
    ],
    "v1.3": [
        # Refresh tokens; relationships and their aggregation; /messages without `from`.
        f"POST {C3}/refresh",
        f"GET {C1}{ROOM}/relations/$e",
        f"GET {C1}{ROOM}/relations/$e/m.annotation",
        f"GET {C1}{ROOM}/relations/$e/m.annotation/m.reaction",
        f"GET {C3}{ROOM}/messages",
    ],
    "v1.4": [
        # Threads, threaded and private read receipts, edits.
        f"GET {C1}{ROOM}/threads",
        f"POST {C3}{ROOM}/receipt/m.read.private/$e",
        f"POST {C3}{ROOM}/read_markers",
        f"GET {C3}/publicRooms",
    ],
    "v1.5": [f"GET {C1}{ROOM}/relations/$e/m.reference"],
    "v1.6": [f"GET {C1}{ROOM}/timestamp_to_event"],
    "v1.7": [
        # Asynchronous uploads.
        "POST /_matrix/media/v1/create",
        "PUT /_matrix/media/v3/upload/example.org/abc",
    ],
    # No new endpoints: room version 11 (checked below).
    "v1.8": [],
    # No new endpoints: the .m.rule.suppress_edits push rule (with /pushrules).
    "v1.9": [],
    # Recursive relations; server support discovery.
    "v1.10": [f"GET {C1}{ROOM}/relations/$e", "GET /.well-known/matrix/support"],
    "v1.11": [
        # Authenticated media.
        f"GET {C1}/media/config",
        f"GET {C1}/media/download/example.org/abc",
        f"GET {C1}/media/download/example.org/abc/name.png",
        f"GET {C1}/media/thumbnail/example.org/abc",
        f"GET {C1}/media/preview_url",
    ],
    # Marking rooms unread is room account data.
    "v1.12": [f"PUT {C3}/user/@a:example.org/rooms/!r:example.org/account_data/m.marked_unread"],
    "v1.13": [f"POST {C3}{ROOM}/report", f"POST {C3}{ROOM}/report/$e"],
    "v1.14": [f"POST {C3}/users/@a:example.org/report"],
    # Room previews (and GET /v1/auth_metadata, which answers 404 without OAuth: below).
    "v1.15": [f"GET {C1}/room_summary/!r:example.org", f"GET {C1}/room_summary/#a:example.org"],
    "v1.16": [
        # Custom profile fields and m.tz; a state event's whole metadata (`format`);
        # /sync's `use_state_after`; room version 12 (below).
        f"GET {C3}/profile/@a:example.org/m.tz",
        f"PUT {C3}/profile/@a:example.org/org.example.field",
        f"GET {C3}{ROOM}/state/m.room.name/",
        f"GET {C3}/sync",
    ],
    # No new endpoints: legacy mentions removed from the push rules (with /pushrules);
    # the rest concerns application services and OAuth, which Trellis does not offer.
    "v1.17": [],
    "v1.18": [
        f"GET {C1}/admin/lock/@a:example.org",
        f"PUT {C1}/admin/lock/@a:example.org",
        f"GET {C1}/admin/suspend/@a:example.org",
        f"PUT {C1}/admin/suspend/@a:example.org",
    ],
    "v1.19": [f"GET {C1}/mutual_rooms"],
}
# Room versions a spec version made the default or required.
ROOM_VERSIONS: dict[str, str] = {"v1.8": "11", "v1.16": "12"}


def _serves(endpoint: str) -> bool:
    method, path = endpoint.split(" ", 1)
    try:
        match = resolve(path)
    except Resolver404:
        return False
    if match.func is views.unrecognized:
        return False
    view_class = getattr(match.func, "view_class", None)
    if view_class is None:  # a function view (/sync)
        return True
    return callable(getattr(view_class, method.lower(), None))


@pytest.mark.parametrize("version", views.SUPPORTED_SPEC_VERSIONS)
def test_every_listed_version_s_headline_endpoints_are_served(version: str) -> None:
    assert version in HEADLINE_ENDPOINTS, f"no headline endpoints recorded for {version}"
    missing = [e for e in HEADLINE_ENDPOINTS[version] if not _serves(e)]
    assert missing == []
    room_version = ROOM_VERSIONS.get(version)
    if room_version is not None:
        assert KNOWN_ROOM_VERSIONS[room_version].is_stable


def test_the_versions_are_every_one_from_v1_1_up() -> None:
    matches = [re.fullmatch(r"v1\.(\d+)", v) for v in views.SUPPORTED_SPEC_VERSIONS]
    minors = [int(m.group(1)) for m in matches if m is not None]
    assert minors == list(range(1, len(views.SUPPORTED_SPEC_VERSIONS) + 1))


def test_the_table_catches_a_missing_endpoint() -> None:
    assert not _serves(f"GET {C1}/nowhere")
    assert not _serves(f"DELETE {C1}/media/config")


def test_versions_lists_them(api: MatrixTestClient) -> None:
    response = api.get("/_matrix/client/versions")
    assert response.status == 200
    assert response.body["versions"] == views.SUPPORTED_SPEC_VERSIONS
    assert "v1.11" in response.body["versions"]  # authenticated media
    assert response.body["unstable_features"] == {"org.matrix.msc3916.stable": True}


def test_without_oauth_auth_metadata_says_unrecognized(api: MatrixTestClient) -> None:
    """v1.15's OAuth 2.0 discovery: a server without it answers 404 M_UNRECOGNIZED."""
    response = api.get(f"{C1}/auth_metadata")
    assert (response.status, response.errcode) == (404, "M_UNRECOGNIZED")
