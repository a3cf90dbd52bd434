"""The operator's view of a user: never the password hash, a form that sets a new
password (ending every session, as POST /account/password with logout_devices does),
and an audit-log entry for each operator action on an account."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.test import Client
from django.urls import reverse

from accounts.models import Device, User
from tests.accounts.helpers import change_form_data, whoami
from tests.conftest import MatrixTestClient, Persona


@pytest.fixture
def operator_user(db: None) -> User:
    return User.objects.create_superuser("operator", "operator pw")


@pytest.fixture
def operator(operator_user: User) -> Client:
    client = Client()
    client.force_login(operator_user)
    return client


def change_page(user: User) -> str:
    return reverse("admin:accounts_user_change", args=[user.pk])


def password_page(user: User) -> str:
    return reverse("admin:accounts_user_password", args=[user.pk])


def hash_parts(user: User) -> list[str]:
    """The stored hash and each of its $-separated parts longer than a word (salt,
    digest, parameters): none may appear on a page."""
    return [user.password, *(part for part in user.password.split("$") if len(part) > 8)]


# --- The password hash is never shown ------------------------------------------------


@pytest.mark.parametrize("hasher", ["argon2", "md5"])
def test_the_change_page_says_a_password_is_set_but_never_shows_it(
    operator: Client, settings: Any, hasher: str
) -> None:
    if hasher == "argon2":
        settings.PASSWORD_HASHERS = ["accounts.hashers.TrellisArgon2PasswordHasher"]
    user = User.objects.create_user("alice", "correct horse")
    assert user.password.startswith(f"{hasher}$")

    page = operator.get(change_page(user))

    assert page.status_code == 200
    html = page.content.decode()
    for part in hash_parts(user):
        assert part not in html
    assert "argon2" not in html
    assert "Set" in html
    assert password_page(user) in html


def test_a_user_without_a_password_is_shown_as_such(operator: Client) -> None:
    user = User.objects.create_user("nopass")

    html = operator.get(change_page(user)).content.decode()

    assert "Not set" in html
    assert user.password not in html


def test_the_user_list_and_history_never_show_the_hash(operator: Client) -> None:
    user = User.objects.create_user("alice", "correct horse")
    operator.post(password_page(user), {"new_password": "n3w", "new_password_again": "n3w"})
    user.refresh_from_db()

    for url in (
        reverse("admin:accounts_user_changelist"),
        reverse("admin:accounts_user_history", args=[user.pk]),
        reverse("admin:admin_logentry_changelist"),
    ):
        html = operator.get(url).content.decode()
        for part in hash_parts(user):
            assert part not in html, url


def test_the_change_form_is_never_saved_so_the_password_stays(
    api: MatrixTestClient, alice: Persona, operator: Client
) -> None:
    user = User.objects.get(localpart="alice")
    before = user.password

    response = operator.post(change_page(user), change_form_data(operator.get(change_page(user))))

    # The page shows the account; it changes only through the operator actions.
    assert response.status_code == 403
    user.refresh_from_db()
    assert user.password == before
    assert api.login("alice", alice.password).status == 200


# --- Setting a new password ------------------------------------------------------------


def test_an_operator_sets_a_new_password_and_every_session_ends(
    api: MatrixTestClient, alice: Persona, bob: Persona, operator: Client, operator_user: User
) -> None:
    user = User.objects.get(localpart="alice")
    second = api.login("alice", alice.password).body["access_token"]
    assert operator.get(password_page(user)).status_code == 200

    response = operator.post(
        password_page(user), {"new_password": "new secret", "new_password_again": "new secret"}
    )

    assert response.status_code == 302
    assert response["Location"] == change_page(user)
    assert whoami(api, alice.access_token).errcode == "M_UNKNOWN_TOKEN"
    assert whoami(api, second).errcode == "M_UNKNOWN_TOKEN"
    assert not Device.objects.filter(user=user).exists()
    assert api.login("alice", alice.password).errcode == "M_FORBIDDEN"
    assert api.login("alice", "new secret").status == 200
    assert whoami(api, bob.access_token).status == 200
    (entry,) = LogEntry.objects.all()
    assert (entry.user_id, entry.object_id, entry.action_flag) == (
        operator_user.pk,
        str(user.pk),
        CHANGE,
    )
    assert entry.object_repr == alice.user_id
    assert entry.change_message == "Set a new password; logged out all 2 device(s)."
    assert "new secret" not in entry.change_message


def test_a_new_password_ends_the_users_admin_session_too(operator: Client) -> None:
    staff = User.objects.create_user("mod", "mod password", is_staff=True, is_superuser=True)
    their_browser = Client()
    their_browser.force_login(staff)
    assert their_browser.get("/admin/").status_code == 200

    operator.post(password_page(staff), {"new_password": "fresh", "new_password_again": "fresh"})

    assert their_browser.get("/admin/").status_code == 302


def test_an_operator_setting_their_own_password_stays_logged_in(
    operator: Client, operator_user: User
) -> None:
    response = operator.post(
        password_page(operator_user), {"new_password": "fresh", "new_password_again": "fresh"}
    )

    assert response.status_code == 302
    assert operator.get("/admin/").status_code == 200
    assert Client().login(username="operator", password="fresh")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"new_password": "one", "new_password_again": "two"}, "The two passwords differ."),
        ({"new_password": "", "new_password_again": ""}, "This field is required."),
        (
            {"new_password": "x" * 513, "new_password_again": "x" * 513},
            "Password is too long",
        ),
    ],
    ids=["mismatch", "empty", "too long"],
)
def test_a_bad_new_password_changes_nothing(
    api: MatrixTestClient, alice: Persona, operator: Client, data: dict[str, str], error: str
) -> None:
    user = User.objects.get(localpart="alice")

    page = operator.post(password_page(user), data)

    assert page.status_code == 200
    assert error in page.content.decode()
    assert whoami(api, alice.access_token).status == 200
    assert api.login("alice", alice.password).status == 200
    assert not LogEntry.objects.exists()


def test_a_deactivated_account_gets_no_new_password(operator: Client) -> None:
    user = User.objects.create_user("gone", "old password", is_active=False)

    response = operator.post(password_page(user), {"new_password": "x", "new_password_again": "x"})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("old password")
    assert not LogEntry.objects.exists()


def test_setting_a_password_needs_the_change_permission(alice: Persona) -> None:
    user = User.objects.get(localpart="alice")
    viewer = User.objects.create_user("viewer", "pw", is_staff=True)
    browser = Client()
    browser.force_login(viewer)

    staff_without_permission = browser.post(
        password_page(user), {"new_password": "x", "new_password_again": "x"}
    )
    anonymous = Client().get(password_page(user))

    assert staff_without_permission.status_code == 403
    assert anonymous.status_code == 302
    assert "/admin/login/" in anonymous["Location"]
    assert User.objects.get(pk=user.pk).password == user.password


# --- Deactivation is audited ----------------------------------------------------------


def test_the_deactivate_action_is_logged_per_user(
    api: MatrixTestClient, alice: Persona, bob: Persona, operator: Client, operator_user: User
) -> None:
    carol = User.objects.create_user("carol", "pw", is_active=False)
    pks = [User.objects.get(localpart=name).pk for name in ("alice", "bob")] + [carol.pk]

    response = operator.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "deactivate", "_selected_action": pks},
    )

    assert response.status_code == 302
    entries = LogEntry.objects.order_by("object_repr")
    # carol was deactivated already: nothing was done to her, nothing is logged.
    assert [e.object_repr for e in entries] == [alice.user_id, bob.user_id]
    assert {e.object_id for e in entries} == {str(pk) for pk in pks[:2]}
    for entry in entries:
        assert entry.user_id == operator_user.pk
        assert entry.action_flag == CHANGE
        assert entry.change_message == "Deactivated the account and logged out all its devices."


def test_the_change_form_changes_nothing_deactivation_is_an_action(
    api: MatrixTestClient, alice: Persona, operator: Client
) -> None:
    user = User.objects.get(localpart="alice")
    data = {"is_active": "", "is_staff": "on", "localpart": "mallory"}

    operator.post(change_page(user), data)

    user.refresh_from_db()
    assert (user.localpart, user.is_active, user.is_staff) == ("alice", True, False)
    assert not LogEntry.objects.exists()
    assert whoami(api, alice.access_token).status == 200


def test_users_cannot_be_deleted_in_the_admin_so_their_log_stays(
    operator: Client, operator_user: User
) -> None:
    # Deleting the operator's account would delete the log of what they did with it.
    other = User.objects.create_superuser("other", "pw")
    alice = User.objects.create_user("alice", "pw")
    browser = Client()
    browser.force_login(other)
    browser.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "deactivate", "_selected_action": [alice.pk]},
    )

    single = operator.post(reverse("admin:accounts_user_delete", args=[other.pk]), {"post": "yes"})
    bulk = operator.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_selected", "_selected_action": [other.pk], "post": "yes"},
    )

    assert single.status_code == 403
    # The bulk delete is not offered: the list answers "no action selected".
    assert bulk.status_code == 302
    assert User.objects.filter(pk=other.pk).exists()
    assert LogEntry.objects.filter(user=other).count() == 1
