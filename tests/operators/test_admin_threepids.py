"""An operator and users' third-party identifiers: the Synapse admin API's user object
and ``threepids`` in PUT /_synapse/admin/v2/users/{userId}, the lookup by address, and
the portal's list and "Remove" action (each change audited)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from accounts.models import User, UserThreepid
from accounts.services import threepids
from operators.models import AuditEntry
from tests.conftest import MatrixTestClient, Persona

A = "/_synapse/admin"


@pytest.fixture
def admin(api: MatrixTestClient) -> Persona:
    persona = api.register("root")
    User.objects.filter(localpart="root").update(is_staff=True, is_superuser=True)
    return persona


def give(user_id: str, medium: str, address: str) -> None:
    user = User.objects.get(localpart=user_id[1:].split(":")[0])
    threepids.do_add_threepid(user, medium, address, validated_at_ms=1000, notify=False)


def test_the_user_object_lists_the_threepids(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    give(alice.user_id, "email", "alice@example.org")

    body = api.get(f"{A}/v2/users/{quote(alice.user_id)}", token=admin.access_token).body

    [entry] = body["threepids"]
    assert entry["medium"] == "email"
    assert entry["address"] == "alice@example.org"
    assert entry["validated_at"] == 1000
    assert isinstance(entry["added_at"], int)


def test_put_threepids_replaces_them(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    give(alice.user_id, "email", "old@example.org")
    give(alice.user_id, "email", "kept@example.org")

    response = api.put(
        f"{A}/v2/users/{quote(alice.user_id)}",
        {
            "threepids": [
                {"medium": "email", "address": "Kept@example.org"},
                {"medium": "email", "address": "new@example.org"},
                {"medium": "msisdn", "address": "+16502530000"},
            ]
        },
        token=admin.access_token,
    )

    assert response.status == 200, response.body
    assert sorted((t["medium"], t["address"]) for t in response.body["threepids"]) == [
        ("email", "kept@example.org"),
        ("email", "new@example.org"),
        ("msisdn", "16502530000"),
    ]
    entry = AuditEntry.objects.get(action="user.modify", target=alice.user_id)
    assert entry.actor == admin.user_id


def test_put_creates_a_user_with_threepids(api: MatrixTestClient, admin: Persona) -> None:
    response = api.put(
        f"{A}/v2/users/{quote('@carol:' + api_server())}",
        {"password": "pw-carol", "threepids": [{"medium": "email", "address": "c@example.org"}]},
        token=admin.access_token,
    )

    assert response.status == 201, response.body
    assert UserThreepid.objects.get().user.localpart == "carol"
    login = api.post(
        "login",
        {
            "type": "m.login.password",
            "identifier": {
                "type": "m.id.thirdparty",
                "medium": "email",
                "address": "c@example.org",
            },
            "password": "pw-carol",
        },
    )
    assert login.status == 200, login.body


def api_server() -> str:
    from django.conf import settings

    return str(settings.SERVER_NAME)


@pytest.mark.parametrize(
    ("threepids_value", "errcode"),
    [
        ("alice@example.org", "M_INVALID_PARAM"),
        ([{"medium": "email"}], "M_INVALID_PARAM"),
        ([{"medium": "email", "address": "not-an-email"}], "M_INVALID_PARAM"),
        ([{"medium": "carrier-pigeon", "address": "x"}], "M_THREEPID_MEDIUM_NOT_SUPPORTED"),
    ],
)
def test_put_refuses_bad_threepids_and_changes_nothing(
    api: MatrixTestClient, admin: Persona, alice: Persona, threepids_value: Any, errcode: str
) -> None:
    give(alice.user_id, "email", "alice@example.org")

    response = api.put(
        f"{A}/v2/users/{quote(alice.user_id)}",
        {"displayname": "changed", "threepids": threepids_value},
        token=admin.access_token,
    )

    assert response.status == 400
    assert response.errcode == errcode
    assert list(UserThreepid.objects.values_list("address", flat=True)) == ["alice@example.org"]
    assert User.objects.get(localpart="alice").displayname == "alice"


def test_put_an_address_of_another_user_is_in_use(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona
) -> None:
    give(bob.user_id, "email", "bob@example.org")

    response = api.put(
        f"{A}/v2/users/{quote(alice.user_id)}",
        {"threepids": [{"medium": "email", "address": "bob@example.org"}]},
        token=admin.access_token,
    )

    assert response.status == 400
    assert response.errcode == "M_THREEPID_IN_USE"
    assert UserThreepid.objects.get().user.localpart == "bob"


def test_lookup_by_address(api: MatrixTestClient, admin: Persona, alice: Persona) -> None:
    give(alice.user_id, "email", "alice@example.org")

    found = api.get(f"{A}/v1/threepid/email/users/alice@example.org", token=admin.access_token)
    missing = api.get(f"{A}/v1/threepid/email/users/x@example.org", token=admin.access_token)
    not_admin = api.get(f"{A}/v1/threepid/email/users/alice@example.org", token=alice.access_token)

    assert found.status == 200
    assert found.body == {"user_id": alice.user_id}
    assert missing.status == 404
    assert missing.errcode == "M_NOT_FOUND"
    assert not_admin.status == 403


# --- The portal ------------------------------------------------------------------------


@pytest.fixture
def operator(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("operator", "operator pw"))
    return client


def test_the_portal_shows_and_removes_a_threepid(
    api: MatrixTestClient, alice: Persona, operator: Client
) -> None:
    give(alice.user_id, "email", "alice@example.org")
    give(alice.user_id, "msisdn", "16502530000")
    user = User.objects.get(localpart="alice")

    page = operator.get(reverse("admin:accounts_user_change", args=[user.pk]))
    assert b"alice@example.org" in page.content
    assert b"16502530000" in page.content
    action = reverse("admin:accounts_user_do", args=[user.pk, "remove_threepid"])
    form = operator.get(action)
    assert b"alice@example.org (email)" in form.content

    done = operator.post(action, {"threepid": "email:alice@example.org"})

    assert done.status_code == 302
    assert list(UserThreepid.objects.values_list("address", flat=True)) == ["16502530000"]
    entry = AuditEntry.objects.get(action="user.threepid_remove", target=alice.user_id)
    assert entry.actor == "@operator:" + api_server()
    assert LogEntry.objects.get().change_message == "Removed the email address alice@example.org."


def test_the_portal_removes_only_an_address_the_user_has(
    api: MatrixTestClient, alice: Persona, bob: Persona, operator: Client
) -> None:
    give(alice.user_id, "email", "alice@example.org")
    give(bob.user_id, "email", "bob@example.org")
    user = User.objects.get(localpart="alice")

    response = operator.post(
        reverse("admin:accounts_user_do", args=[user.pk, "remove_threepid"]),
        {"threepid": "email:bob@example.org"},
    )

    assert response.status_code == 200  # the form again, with its error
    assert UserThreepid.objects.count() == 2
    assert not AuditEntry.objects.filter(action="user.threepid_remove").exists()
