"""The user admin API (/_synapse/admin/...): each endpoint's success, 403 for an
ordinary user, 404 for an unknown user, 400 for bad input; and that every change is
an operator action with its audit entry."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from accounts.models import User
from operators.models import AdminJob, AuditEntry
from operators.selectors import USER_ORDER
from tests.conftest import MatrixTestClient, Persona, user_id
from tests.rooms.helpers import create_room, invite, join, send

A = "/_synapse/admin"


def q(uid: str) -> str:
    return quote(uid, safe="@:")


@pytest.fixture
def admin(api: MatrixTestClient) -> Persona:
    persona = api.register("root")
    User.objects.filter(localpart="root").update(is_staff=True, is_superuser=True)
    return persona


def call(api: MatrixTestClient, who: Persona, method: str, path: str, body: Any = None) -> Any:
    return api.request(method, path, body, token=who.access_token)


def audited(action: str, target: str) -> AuditEntry:
    entry = AuditEntry.objects.filter(action=action, target=target).first()
    assert entry is not None, f"no audit entry {action} {target}"
    return entry


# Every endpoint, with a request an ordinary user must be refused (403 M_FORBIDDEN).
ADMIN_ONLY = [
    ("GET", "/v2/users", None),
    ("GET", "/v3/users", None),
    ("GET", "/v2/users/{bob}", None),
    ("PUT", "/v2/users/{bob}", {"displayname": "x"}),
    ("GET", "/v1/users/{bob}/admin", None),
    ("PUT", "/v1/users/{bob}/admin", {"admin": True}),
    ("POST", "/v1/deactivate/{bob}", {}),
    ("POST", "/v1/reset_password/{bob}", {"new_password": "a new long password"}),
    ("GET", "/v1/whois/{bob}", None),
    ("GET", "/v1/users/{bob}/joined_rooms", None),
    ("GET", "/v1/users/{bob}/media", None),
    ("DELETE", "/v1/users/{bob}/media", None),
    ("PUT", "/v1/suspend/{bob}", {"suspend": True}),
    ("POST", "/v1/users/{bob}/shadow_ban", {}),
    ("DELETE", "/v1/users/{bob}/shadow_ban", None),
    ("GET", "/v1/users/{bob}/override_ratelimit", None),
    ("POST", "/v1/users/{bob}/override_ratelimit", {}),
    ("DELETE", "/v1/users/{bob}/override_ratelimit", None),
    ("POST", "/v1/users/{bob}/login", {}),
    ("GET", "/v2/users/{bob}/devices", None),
    ("POST", "/v2/users/{bob}/devices", {"device_id": "X"}),
    ("GET", "/v2/users/{bob}/devices/X", None),
    ("PUT", "/v2/users/{bob}/devices/X", {}),
    ("DELETE", "/v2/users/{bob}/devices/X", None),
    ("POST", "/v2/users/{bob}/delete_devices", {"devices": []}),
    ("POST", "/v1/user/{bob}/redact", {"rooms": []}),
    ("GET", "/v1/user/redact_status/abc", None),
    ("GET", "/v1/registration_tokens", None),
    ("POST", "/v1/registration_tokens/new", {}),
    ("GET", "/v1/registration_tokens/abc", None),
    ("PUT", "/v1/registration_tokens/abc", {}),
    ("DELETE", "/v1/registration_tokens/abc", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY)
def test_an_ordinary_user_is_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona, method: str, path: str, body: Any
) -> None:
    response = call(api, alice, method, A + path.format(bob=q(bob.user_id)), body)
    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert not AuditEntry.objects.exists()
    assert not User.objects.get(localpart="bob").is_suspended


# The endpoints about one local user; PUT /v2/users/{userId} creates one that is unknown,
# and a user's events are redacted whether the account exists here or not.
USER_PATHS = [
    p
    for p in ADMIN_ONLY
    if "{bob}" in p[1] and p[:2] != ("PUT", "/v2/users/{bob}") and "redact" not in p[1]
]


@pytest.mark.parametrize(("method", "path", "body"), USER_PATHS)
def test_an_unknown_user_is_404(
    api: MatrixTestClient, admin: Persona, method: str, path: str, body: Any
) -> None:
    response = call(api, admin, method, A + path.format(bob=q(user_id("nobody"))), body)
    assert (response.status, response.errcode) == (404, "M_NOT_FOUND"), response.body


def test_a_remote_user_is_400(api: MatrixTestClient, admin: Persona) -> None:
    response = call(api, admin, "GET", f"{A}/v2/users/@carol:elsewhere.example")
    assert response.status == 400
    response = call(api, admin, "PUT", f"{A}/v2/users/@carol:elsewhere.example", {})
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_list_users_pages_and_filters(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona
) -> None:
    page = call(api, admin, "GET", f"{A}/v2/users?limit=2").body
    assert [u["name"] for u in page["users"]] == [alice.user_id, bob.user_id]
    assert page["total"] == 3
    assert page["next_token"] == "2"
    rest = call(api, admin, "GET", f"{A}/v2/users?from=2").body
    assert [u["name"] for u in rest["users"]] == [admin.user_id]
    assert "next_token" not in rest
    admins = call(api, admin, "GET", f"{A}/v2/users?admins=true").body
    assert [u["name"] for u in admins["users"]] == [admin.user_id]
    assert admins["users"][0]["admin"] is True
    by_name = call(api, admin, "GET", f"{A}/v2/users?name=ali").body
    assert [u["name"] for u in by_name["users"]] == [alice.user_id]
    backwards = call(api, admin, "GET", f"{A}/v2/users?order_by=name&dir=b").body
    assert backwards["users"][0]["name"] == admin.user_id


def test_list_users_deactivated_v2_and_v3(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona
) -> None:
    assert call(api, admin, "POST", f"{A}/v1/deactivate/{q(bob.user_id)}").status == 200
    v2 = call(api, admin, "GET", f"{A}/v2/users").body
    assert bob.user_id not in [u["name"] for u in v2["users"]]
    v2_all = call(api, admin, "GET", f"{A}/v2/users?deactivated=true").body
    assert bob.user_id in [u["name"] for u in v2_all["users"]]
    v3_only = call(api, admin, "GET", f"{A}/v3/users?deactivated=true").body
    assert [u["name"] for u in v3_only["users"]] == [bob.user_id]
    v3_all = call(api, admin, "GET", f"{A}/v3/users").body
    assert v3_all["total"] == 3


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=x", "from=-1", "from=x", "order_by=bogus", "dir=x", "deactivated=maybe"],
)
def test_list_users_bad_query_is_400(api: MatrixTestClient, admin: Persona, query: str) -> None:
    response = call(api, admin, "GET", f"{A}/v2/users?{query}")
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_get_user(api: MatrixTestClient, admin: Persona, alice: Persona) -> None:
    body = call(api, admin, "GET", f"{A}/v2/users/{q(alice.user_id)}").body
    assert body["name"] == alice.user_id
    assert body["displayname"] == "alice"
    assert body["admin"] is False
    assert body["deactivated"] is False
    assert body["suspended"] is False
    assert body["locked"] is False
    assert body["threepids"] == []


def test_put_creates_then_modifies_a_user(api: MatrixTestClient, admin: Persona) -> None:
    carol = user_id("carol")
    created = call(
        api,
        admin,
        "PUT",
        f"{A}/v2/users/{q(carol)}",
        {"password": "carols long password", "displayname": "Carol", "admin": True},
    )
    assert created.status == 201, created.body
    assert created.body["displayname"] == "Carol"
    assert created.body["admin"] is True
    assert api.login("carol", "carols long password").status == 200
    audited("user.create", carol)
    modified = call(
        api, admin, "PUT", f"{A}/v2/users/{q(carol)}", {"admin": False, "locked": True}
    )
    assert modified.status == 200
    assert modified.body["admin"] is False
    assert modified.body["locked"] is True
    entry = audited("user.modify", carol)
    assert entry.details == {"admin": False, "locked": True}
    assert entry.actor == admin.user_id


@pytest.mark.parametrize(
    "body",
    [{"admin": "yes"}, {"displayname": 5}, {"user_type": "wizard"}, {"deactivated": 1}],
)
def test_put_user_bad_input_changes_nothing(
    api: MatrixTestClient, admin: Persona, alice: Persona, body: dict[str, Any]
) -> None:
    response = call(api, admin, "PUT", f"{A}/v2/users/{q(alice.user_id)}", body)
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")
    assert not AuditEntry.objects.exists()


def test_put_user_deactivates_and_reactivates(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    path = f"{A}/v2/users/{q(alice.user_id)}"
    assert call(api, admin, "PUT", path, {"deactivated": True}).body["deactivated"] is True
    assert api.get("account/whoami", token=alice.access_token).status == 401
    back = call(api, admin, "PUT", path, {"deactivated": False, "password": "a fresh password"})
    assert back.body["deactivated"] is False
    assert api.login("alice", "a fresh password").status == 200


def test_admin_flag(api: MatrixTestClient, admin: Persona, alice: Persona) -> None:
    path = f"{A}/v1/users/{q(alice.user_id)}/admin"
    assert call(api, admin, "GET", path).body == {"admin": False}
    assert call(api, admin, "PUT", path, {"admin": True}).status == 200
    assert call(api, admin, "GET", path).body == {"admin": True}
    audited("user.set_admin", alice.user_id)
    # Alice is an admin now: she may use the admin API.
    assert call(api, alice, "GET", f"{A}/v2/users").status == 200
    assert call(api, admin, "PUT", path, {"admin": "no"}).status == 400
    own = call(api, admin, "PUT", f"{A}/v1/users/{q(admin.user_id)}/admin", {"admin": False})
    assert own.status == 400


def test_deactivate_with_erase(api: MatrixTestClient, admin: Persona, alice: Persona) -> None:
    response = call(api, admin, "POST", f"{A}/v1/deactivate/{q(alice.user_id)}", {"erase": True})
    assert response.status == 200
    assert response.body == {"id_server_unbind_result": "success"}
    details = call(api, admin, "GET", f"{A}/v2/users/{q(alice.user_id)}").body
    assert details["deactivated"] is True
    assert details["erased"] is True
    assert details["displayname"] is None
    assert audited("user.deactivate", alice.user_id).details == {"erase": True}
    bad = call(api, admin, "POST", f"{A}/v1/deactivate/{q(admin.user_id)}", {"erase": "yes"})
    assert bad.status == 400


def test_reset_password(api: MatrixTestClient, admin: Persona, alice: Persona) -> None:
    path = f"{A}/v1/reset_password/{q(alice.user_id)}"
    assert call(api, admin, "POST", path, {"new_password": "the new secret pw"}).status == 200
    assert api.login("alice", "the new secret pw").status == 200
    # logout_devices defaults to true: alice's old session is gone.
    assert api.get("account/whoami", token=alice.access_token).status == 401
    assert audited("user.reset_password", alice.user_id).details == {"logout_devices": True}
    assert call(api, admin, "POST", path, {}).errcode == "M_MISSING_PARAM"


def test_whois_admin_api_and_client_api(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona
) -> None:
    body = call(api, admin, "GET", f"{A}/v1/whois/{q(alice.user_id)}").body
    assert body["user_id"] == alice.user_id
    assert list(body["devices"]) == [alice.device_id]
    connections = body["devices"][alice.device_id]["sessions"][0]["connections"]
    assert connections[0]["last_seen"] > 0
    client_path = f"/_matrix/client/v3/admin/whois/{q(alice.user_id)}"
    assert call(api, alice, "GET", client_path).body["user_id"] == alice.user_id
    assert call(api, admin, "GET", client_path).status == 200
    refused = call(api, bob, "GET", client_path)
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")


def test_joined_rooms(api: MatrixTestClient, admin: Persona, alice: Persona) -> None:
    room = create_room(api, alice)
    body = call(api, admin, "GET", f"{A}/v1/users/{q(alice.user_id)}/joined_rooms").body
    assert body == {"joined_rooms": [room], "total": 1}


def test_user_media_list_and_delete(api: MatrixTestClient, admin: Persona, alice: Persona) -> None:
    uploads = [
        api.request(
            "POST",
            "/_matrix/media/v3/upload?filename=a.txt",
            raw=f"file {n}".encode(),
            content_type="text/plain",
            token=alice.access_token,
        )
        for n in range(3)
    ]
    assert all(u.status == 200 for u in uploads), uploads[0].body
    path = f"{A}/v1/users/{q(alice.user_id)}/media"
    page = call(api, admin, "GET", f"{path}?limit=2").body
    assert page["total"] == 3
    assert len(page["media"]) == 2
    assert page["next_token"] == 2
    assert page["media"][0]["media_type"] == "text/plain"
    assert page["media"][0]["user_id"] == alice.user_id
    deleted = call(api, admin, "DELETE", f"{path}?limit=2").body
    assert deleted["total"] == 2
    assert call(api, admin, "GET", path).body["total"] == 1
    assert (
        audited("media.delete_user_media", alice.user_id).details["media"]
        == deleted["deleted_media"]
    )
    assert call(api, admin, "GET", f"{path}?order_by=nope").status == 400


def test_suspension_blocks_sending_and_joining_but_not_leaving(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    own = send(api, bob, room, "before")
    path = f"{A}/v1/suspend/{q(bob.user_id)}"
    answer = call(api, admin, "PUT", path, {"suspend": True})
    assert answer.body == {f"user_{bob.user_id}_suspended": True}
    audited("user.suspend", bob.user_id)
    refused = api.put(
        f"rooms/{room}/send/m.room.message/t1", {"msgtype": "m.text", "body": "x"},
        token=bob.access_token,
    )  # fmt: skip
    assert (refused.status, refused.errcode) == (403, "M_USER_SUSPENDED")
    other = create_room(api, alice, preset="public_chat")
    assert join(api, bob, other, expect=403).body["errcode"] == "M_USER_SUSPENDED"
    profile = api.put(
        f"profile/{q(bob.user_id)}/displayname", {"displayname": "B"}, token=bob.access_token
    )
    assert profile.errcode == "M_USER_SUSPENDED"
    # Still allowed: reading, redacting their own events, leaving.
    assert api.get("sync", token=bob.access_token).status == 200
    redacted = api.put(f"rooms/{room}/redact/{quote(own)}/r1", {}, token=bob.access_token)
    assert redacted.status == 200
    assert api.post(f"rooms/{room}/leave", token=bob.access_token).status == 200
    assert call(api, admin, "PUT", path, {"suspend": False}).status == 200
    join(api, bob, room)
    assert call(api, admin, "PUT", path, {}).errcode == "M_MISSING_PARAM"
    assert call(api, admin, "PUT", path, {"suspend": "yes"}).status == 400


def test_locked_account_gets_user_locked_except_logout(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    call(api, admin, "PUT", f"{A}/v2/users/{q(alice.user_id)}", {"locked": True})
    whoami = api.get("account/whoami", token=alice.access_token)
    assert (whoami.status, whoami.errcode) == (401, "M_USER_LOCKED")
    assert whoami.body["soft_logout"] is True
    assert api.get("sync", token=alice.access_token).errcode == "M_USER_LOCKED"
    assert api.login("alice", "correct horse").errcode == "M_USER_LOCKED"
    assert api.post("logout", token=alice.access_token).status == 200


def test_shadow_banned_sends_reach_nobody(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    path = f"{A}/v1/users/{q(bob.user_id)}/shadow_ban"
    assert call(api, admin, "POST", path).body == {}
    assert call(api, admin, "GET", f"{A}/v2/users/{q(bob.user_id)}").body["shadow_banned"]
    fake = send(api, bob, room, "nobody sees this")
    assert fake.startswith("$")
    assert api.get(f"rooms/{room}/event/{quote(fake)}", token=alice.access_token).status == 404
    carol = api.register("carol")
    invite(api, bob, room, carol)
    assert (
        api.get(f"rooms/{room}/state/m.room.member/{q(carol.user_id)}", token=alice.access_token)
    ).status == 404
    dm = api.post("createRoom", {"invite": [carol.user_id]}, token=bob.access_token)
    assert dm.status == 200
    assert carol.user_id not in str(
        api.get(f"rooms/{dm.body['room_id']}/state", token=bob.access_token).body
    )
    assert call(api, admin, "DELETE", path).status == 200
    real = send(api, bob, room, "seen")
    assert api.get(f"rooms/{room}/event/{quote(real)}", token=alice.access_token).status == 200


def test_ratelimit_override(
    api: MatrixTestClient, admin: Persona, alice: Persona, settings: Any
) -> None:
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMITS = {**settings.RATELIMITS, "message": (0.0001, 2)}
    room = create_room(api, alice)
    send(api, alice, room, "1")
    send(api, alice, room, "2")
    limited = send(api, alice, room, "3", expect=429)
    assert limited == ""
    path = f"{A}/v1/users/{q(alice.user_id)}/override_ratelimit"
    assert call(api, admin, "GET", path).body == {}
    set_ = call(api, admin, "POST", path, {"messages_per_second": 0, "burst_count": 0})
    assert set_.body == {"messages_per_second": 0, "burst_count": 0}
    for n in range(5):
        send(api, alice, room, f"unlimited {n}")
    audited("user.ratelimit_override", alice.user_id)
    assert call(api, admin, "POST", path, {"messages_per_second": -1}).status == 400
    assert call(api, admin, "DELETE", path).status == 200
    assert call(api, admin, "GET", path).body == {}
    send(api, alice, room, "limited again", expect=429)


def test_login_as_user(api: MatrixTestClient, admin: Persona, alice: Persona) -> None:
    path = f"{A}/v1/users/{q(alice.user_id)}/login"
    token = call(api, admin, "POST", path, {}).body["access_token"]
    assert api.get("account/whoami", token=token).body["user_id"] == alice.user_id
    expired = call(api, admin, "POST", path, {"valid_until_ms": 1}).body["access_token"]
    assert api.get("account/whoami", token=expired).status == 401
    assert call(api, admin, "POST", path, {"valid_until_ms": "x"}).status == 400
    assert audited("user.login_as", alice.user_id)


def test_devices(api: MatrixTestClient, admin: Persona, alice: Persona) -> None:
    base = f"{A}/v2/users/{q(alice.user_id)}/devices"
    listed = call(api, admin, "GET", base).body
    assert listed["total"] == 1
    assert listed["devices"][0]["device_id"] == alice.device_id
    assert call(api, admin, "POST", base, {"device_id": "NEWONE"}).status == 201
    assert call(api, admin, "PUT", f"{base}/NEWONE", {"display_name": "Kiosk"}).status == 200
    one = call(api, admin, "GET", f"{base}/NEWONE").body
    assert one["display_name"] == "Kiosk"
    assert one["user_id"] == alice.user_id
    assert call(api, admin, "DELETE", f"{base}/NEWONE").status == 200
    assert call(api, admin, "GET", f"{base}/NEWONE").status == 404
    assert call(api, admin, "POST", base, {}).errcode == "M_MISSING_PARAM"
    delete_path = f"{A}/v2/users/{q(alice.user_id)}/delete_devices"
    assert call(api, admin, "POST", delete_path, {"devices": [alice.device_id]}).status == 200
    assert api.get("account/whoami", token=alice.access_token).status == 401
    assert call(api, admin, "POST", delete_path, {"devices": [5]}).status == 400
    for action in ("device.create", "device.rename", "device.delete"):
        audited(action, alice.user_id)


def test_redact_all_of_a_users_events(
    api: MatrixTestClient,
    admin: Persona,
    alice: Persona,
    bob: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    sent = [send(api, bob, room, f"spam {n}") for n in range(3)]
    kept = send(api, alice, room, "not bob's")
    with django_capture_on_commit_callbacks(execute=True):
        answer = call(api, admin, "POST", f"{A}/v1/user/{q(bob.user_id)}/redact", {"rooms": []})
    assert answer.status == 200
    redact_id = answer.body["redact_id"]
    # Celery runs eagerly in tests: the job ran when its row was committed.
    status = call(api, admin, "GET", f"{A}/v1/user/redact_status/{redact_id}").body
    assert status == {"status": "complete", "failed_redactions": {}}
    for event_id in sent:
        event = api.get(f"rooms/{room}/event/{quote(event_id)}", token=alice.access_token)
        assert event.body["content"] == {}
    still = api.get(f"rooms/{room}/event/{quote(kept)}", token=alice.access_token)
    assert still.body["content"]["body"] == "not bob's"
    job = AdminJob.objects.get(job_id=redact_id)
    assert job.progress["redacted"] == 3
    audited("user.redact_events", bob.user_id)
    missing = call(api, admin, "GET", f"{A}/v1/user/redact_status/nope")
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    bad = call(api, admin, "POST", f"{A}/v1/user/{q(bob.user_id)}/redact", {"rooms": "all"})
    assert bad.status == 400


def test_registration_tokens(api: MatrixTestClient, admin: Persona) -> None:
    base = f"{A}/v1/registration_tokens"
    assert call(api, admin, "GET", base).body == {"registration_tokens": []}
    made = call(api, admin, "POST", f"{base}/new", {"token": "abc", "uses_allowed": 2}).body
    assert made == {
        "token": "abc",
        "uses_allowed": 2,
        "pending": 0,
        "completed": 0,
        "expiry_time": None,
    }
    generated = call(api, admin, "POST", f"{base}/new", {"length": 10}).body
    assert len(generated["token"]) == 10
    assert call(api, admin, "POST", f"{base}/new", {"token": "abc"}).status == 400
    assert call(api, admin, "POST", f"{base}/new", {"token": "b a d"}).status == 400
    assert call(api, admin, "POST", f"{base}/new", {"uses_allowed": -1}).status == 400
    assert call(api, admin, "POST", f"{base}/new", {"expiry_time": 1}).status == 400
    updated = call(api, admin, "PUT", f"{base}/abc", {"uses_allowed": 0}).body
    assert updated["uses_allowed"] == 0
    valid = call(api, admin, "GET", f"{base}?valid=true").body["registration_tokens"]
    assert [t["token"] for t in valid] == [generated["token"]]
    invalid = call(api, admin, "GET", f"{base}?valid=false").body["registration_tokens"]
    assert [t["token"] for t in invalid] == ["abc"]
    assert call(api, admin, "GET", f"{base}/abc").body["token"] == "abc"
    assert call(api, admin, "DELETE", f"{base}/abc").status == 200
    gone = call(api, admin, "GET", f"{base}/abc")
    assert (gone.status, gone.errcode) == (404, "M_NOT_FOUND")
    assert call(api, admin, "DELETE", f"{base}/abc").status == 404
    assert call(api, admin, "GET", f"{base}?valid=maybe").status == 400
    for action in ("create", "update", "delete"):
        audited(f"registration_token.{action}", "abc")


def test_server_version(api: MatrixTestClient) -> None:
    body = api.get(f"{A}/v1/server_version").body
    assert isinstance(body["server_version"], str)
    assert body["server_version"]


@pytest.mark.parametrize(("kind", "field"), [("suspend", "suspended"), ("lock", "locked")])
def test_client_api_account_moderation(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona, kind: str, field: str
) -> None:
    """Client-Server API v1.18, GET/PUT /_matrix/client/v1/admin/{suspend,lock}/{userId}."""
    path = f"/_matrix/client/v1/admin/{kind}/{q(bob.user_id)}"
    assert call(api, admin, "GET", path).body == {field: False}
    assert call(api, admin, "PUT", path, {field: True}).body == {field: True}
    assert call(api, admin, "GET", path).body == {field: True}
    assert getattr(User.objects.get(localpart="bob"), f"is_{field}")
    audited(f"user.{kind}", bob.user_id)
    refused = call(api, alice, "GET", path)
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
    own = call(
        api, admin, "PUT", f"/_matrix/client/v1/admin/{kind}/{q(admin.user_id)}", {field: True}
    )
    assert (own.status, own.errcode) == (403, "M_FORBIDDEN")
    remote = call(api, admin, "GET", f"/_matrix/client/v1/admin/{kind}/@x:elsewhere.example")
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")
    unknown = call(api, admin, "GET", f"/_matrix/client/v1/admin/{kind}/{q(user_id('nobody'))}")
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    assert call(api, admin, "PUT", path, {}).errcode == "M_MISSING_PARAM"
    assert call(api, admin, "PUT", path, {field: "yes"}).status == 400


@pytest.mark.parametrize("order_by", sorted(USER_ORDER))
@pytest.mark.parametrize("direction", ["f", "b"])
def test_list_users_sorts_by_every_column(
    api: MatrixTestClient, admin: Persona, alice: Persona, order_by: str, direction: str
) -> None:
    response = call(api, admin, "GET", f"{A}/v3/users?order_by={order_by}&dir={direction}")
    assert response.status == 200
    assert {u["name"] for u in response.body["users"]} == {admin.user_id, alice.user_id}
