"""Every media moderation in the admin is audited: one log entry per item it changed,
naming the operator, the item and what was done (config/admin.py's log)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from accounts.models import User
from media.models import LocalMedia
from tests.conftest import MatrixTestClient, Persona
from tests.media.conftest import media_id_of, upload

SERVER = "localhost:8008"
CHANGELIST = "/admin/media/localmedia/"


@dataclass(frozen=True)
class Case:
    """An operator's act on the media alice0, alice1 (sent in alice's room) and bob0."""

    # An admin action and the items ticked, or the "all media of" form and its target.
    action: str
    selected: tuple[str, ...] = ()
    owner_target: str = ""
    quarantined_before: tuple[str, ...] = ()
    logged: tuple[str, ...] = ()
    flag: int = CHANGE
    message: str = ""


CASES = {
    "quarantine selected": Case(
        "quarantine", ("alice0", "bob0"), logged=("alice0", "bob0"), message="Quarantined"
    ),
    "quarantine skips what already is": Case(
        "quarantine",
        ("alice0", "bob0"),
        quarantined_before=("bob0",),
        logged=("alice0",),
        message="Quarantined",
    ),
    "release selected": Case(
        "unquarantine",
        ("alice0", "bob0"),
        quarantined_before=("alice0", "alice1"),
        logged=("alice0",),
        message="Released",
    ),
    "delete selected": Case(
        "delete_media", ("bob0",), logged=("bob0",), flag=DELETION, message="Deleted"
    ),
    "quarantine all of the uploader": Case(
        "quarantine_uploaders_media",
        ("alice0",),
        logged=("alice0", "alice1"),
        message="Quarantined (all media of @alice",
    ),
    "delete all of the uploader": Case(
        "delete_uploaders_media",
        ("alice0",),
        logged=("alice0", "alice1"),
        flag=DELETION,
        message="Deleted with its files (all media of @alice",
    ),
    "form: quarantine a user's": Case(
        "quarantine", owner_target="alice", logged=("alice0", "alice1"), message="Quarantined"
    ),
    "form: release a user's": Case(
        "unquarantine",
        owner_target="alice",
        quarantined_before=("alice0", "alice1", "bob0"),
        logged=("alice0", "alice1"),
        message="Released",
    ),
    "form: delete a room's": Case(
        "delete", owner_target="room", logged=("alice1",), flag=DELETION, message="Deleted"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_media_moderation_is_logged_per_item(
    api: MatrixTestClient, alice: Persona, bob: Persona, case: Case
) -> None:
    media = {
        "alice0": media_id_of(upload(api, alice, b"a0", "text/plain")),
        "alice1": media_id_of(upload(api, alice, b"a1", "text/plain")),
        "bob0": media_id_of(upload(api, bob, b"b0", "text/plain")),
    }
    room = api.post("createRoom", {}, token=alice.access_token).body["room_id"]
    sent = api.put(
        f"rooms/{room}/send/m.room.message/t1",
        {"msgtype": "m.file", "body": "a1", "url": f"mxc://{SERVER}/{media['alice1']}"},
        token=alice.access_token,
    )
    assert sent.status == 200, sent.body
    pks = dict(LocalMedia.objects.values_list("media_id", "pk"))
    LocalMedia.objects.filter(
        media_id__in=[media[name] for name in case.quarantined_before]
    ).update(quarantined_by="earlier")
    operator = User.objects.create_superuser("operator", "secret-password")
    browser = Client()
    browser.force_login(operator)

    if case.owner_target:
        target = {"alice": alice.user_id, "room": room}[case.owner_target]
        response = browser.post(
            reverse("admin:media_localmedia_owner"), {"target": target, "action": case.action}
        )
    else:
        selected = [str(pks[media[name]]) for name in case.selected]
        response = browser.post(CHANGELIST, {"action": case.action, "_selected_action": selected})

    assert response.status_code == 302
    entries = LogEntry.objects.all()
    assert sorted(entry.object_repr for entry in entries) == sorted(
        media[name] for name in case.logged
    )
    media_type = ContentType.objects.get_for_model(LocalMedia)
    for entry in entries:
        assert entry.user_id == operator.pk
        assert entry.content_type_id == media_type.pk
        assert entry.object_id == str(pks[entry.object_repr])
        assert entry.action_flag == case.flag
        assert entry.change_message.startswith(case.message)
