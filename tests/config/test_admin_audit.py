"""The admin portal's audit log (config/admin.py): every operator action is recorded,
and the record is readable in the portal but can be neither added, changed nor deleted.

Each app's own tests check what its actions log (tests/accounts/test_admin.py,
tests/media/test_admin_audit.py, tests/rooms/test_reports.py, and the audit entries of
the operator actions in tests/operators/test_portal.py and
tests/operators/test_admin_threepids.py); the first test here makes sure
no action or custom view is added without that.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts.models import User
from config.portal import ObjectActionsAdmin

# Every custom admin action and view, per model, each writing a log entry for every
# object it acts on and tested for it. Django logs its own add, change and delete
# (the forms and the bulk "delete_selected") itself.
AUDITED = {
    "accounts.user": {
        "accounts_user_password",
        "deactivate",
        "log_out",
        "suspend",
        "unsuspend",
        "shadow_ban",
        "unshadow_ban",
        "do:deactivate",
        "do:suspended",
        "do:unsuspended",
        "do:locked",
        "do:unlocked",
        "do:shadow_banned",
        "do:unshadow_banned",
        "do:admin",
        "do:unadmin",
        "do:logout",
        "do:ratelimit",
        "do:redact",
        "do:remove_threepid",
        "do:notice",
    },
    "accounts.registrationtoken": {"act:new", "do:edit", "do:delete"},
    "rooms.room": {
        "do:publish",
        "do:unpublish",
        "do:block",
        "do:unblock",
        "do:make_admin",
        "do:delete",
    },
    "rooms.blockedroom": {"act:block", "do:unblock"},
    "rooms.eventreport": {"resolve", "do:assign_me", "do:assign", "do:act", "do:resolve"},
    "media.localmedia": {
        "quarantine",
        "unquarantine",
        "protect",
        "unprotect",
        "delete_media",
        "quarantine_uploaders_media",
        "delete_uploaders_media",
        "media_localmedia_owner",
        "do:quarantine",
        "do:unquarantine",
        "do:protect",
        "do:unprotect",
        "do:delete",
    },
    "federation.destination": {"retry_now"},
    "media.remotemedia": {"quarantine", "unquarantine", "purge"},
}
DJANGO_VIEWS = {"changelist", "add", "history", "delete", "change"}
PORTAL = {"do", "act"}

CHANGELIST = "/admin/admin/logentry/"


@pytest.fixture
def operator_user(db: None) -> User:
    return User.objects.create_superuser("operator", "operator pw")


@pytest.fixture
def operator(operator_user: User) -> Client:
    client = Client()
    client.force_login(operator_user)
    return client


def test_every_custom_action_and_view_is_audited(operator_user: User) -> None:
    request = RequestFactory().get("/admin/")
    request.user = operator_user
    found: dict[str, set[str]] = {}
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        defaults = {f"{model._meta.app_label}_{model._meta.model_name}_{v}" for v in DJANGO_VIEWS}
        actions = set(model_admin.get_actions(request)) - {"delete_selected"}
        views = {p.name for p in model_admin.get_urls() if p.name} - defaults
        if isinstance(model_admin, ObjectActionsAdmin):
            # The operator actions of config/portal.py, each its own form.
            views -= {f"{model._meta.app_label}_{model._meta.model_name}_{v}" for v in PORTAL}
            views |= {f"do:{a.name}" for a in model_admin.object_actions}
            views |= {f"act:{a.name}" for a in model_admin.list_actions}
        if actions | views:
            found[label] = actions | views

    assert found == AUDITED


def test_the_log_is_readable_in_the_portal(operator: Client, operator_user: User) -> None:
    alice = User.objects.create_user("alice", "pw")
    operator.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "deactivate", "_selected_action": [alice.pk]},
    )
    entry = LogEntry.objects.get()

    listing = operator.get(CHANGELIST)
    detail = operator.get(reverse("admin:admin_logentry_change", args=[entry.pk]))

    assert listing.status_code == 200
    html = listing.content.decode()
    assert "Deactivated the account and logged out all its devices." in html
    assert alice.user_id in html
    assert operator_user.user_id in html
    assert reverse("admin:accounts_user_change", args=[alice.pk]) in html
    assert detail.status_code == 200
    assert "Deactivated the account" in detail.content.decode()
    # Shown for reading only: no form to save.
    assert 'name="_save"' not in detail.content.decode()


def test_the_log_cannot_be_added_to_changed_or_deleted(
    operator: Client, operator_user: User
) -> None:
    alice = User.objects.create_user("alice", "pw")
    operator.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "deactivate", "_selected_action": [alice.pk]},
    )
    entry = LogEntry.objects.get()
    change = reverse("admin:admin_logentry_change", args=[entry.pk])

    added = operator.post(reverse("admin:admin_logentry_add"), {"change_message": "forged"})
    changed = operator.post(change, {"change_message": "forged", "action_flag": CHANGE})
    deleted = operator.post(reverse("admin:admin_logentry_delete", args=[entry.pk]), {"post": 1})
    bulk_deleted = operator.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )

    assert added.status_code == 403
    assert changed.status_code == 403
    assert deleted.status_code == 403
    # No such action is offered: the list comes back with an error message.
    assert bulk_deleted.status_code == 200
    assert list(LogEntry.objects.values_list("pk", "change_message")) == [
        (entry.pk, "Deactivated the account and logged out all its devices.")
    ]


def test_staff_without_the_permission_cannot_read_the_log(db: None) -> None:
    staff = User.objects.create_user("mod", "pw", is_staff=True)
    browser = Client()
    browser.force_login(staff)

    assert browser.get(CHANGELIST).status_code == 403
