"""The operator portal at /admin/: every page renders for a superuser, protocol rows are
never added, changed or deleted there, and every operator action does its work through
the operator action functions and leaves an audit entry with ``via="portal"`` and the
operator's Matrix user ID as actor."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from accounts.models import Device, User
from media.models import LocalMedia
from operators.models import AdminJob, AuditEntry, ReportAssignment
from rooms.models import Event, EventReport, Room
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, join, room_path, send, set_state


@pytest.fixture
def operator_user(db: None) -> User:
    return User.objects.create_superuser("operator", "operator pw")


@pytest.fixture
def operator(operator_user: User) -> Client:
    client = Client()
    client.force_login(operator_user)
    return client


def audit_entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("pk"))


def act(operator: Client, model: str, obj: Any, action: str, **data: Any) -> Any:
    """Post an object action's confirmation form, following the redirect."""
    app, name = model.split(".")
    url = reverse(f"admin:{app}_{name}_do", args=[obj.pk, action])
    return operator.post(url, data, follow=True)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def world(api: MatrixTestClient, alice: Persona, bob: Persona) -> dict[str, Any]:
    """A room alice made, named, with bob in it and a message of bob's reported by
    alice; an uploaded media and an admin job."""
    room_id = create_room(api, alice, name="Gardening", preset="public_chat")
    join(api, bob, room_id)
    set_state(api, alice, room_id, "m.room.topic", {"topic": "roses"})
    before = send(api, alice, room_id, "the message before")
    event_id = send(api, bob, room_id, "spam spam spam")
    after = send(api, alice, room_id, "the message after")
    api.post(room_path(room_id, "report", event_id), {"reason": "spam"}, token=alice.access_token)
    upload = api.request(
        "POST",
        "/_matrix/media/v3/upload",
        raw=b"a picture",
        content_type="image/png",
        token=bob.access_token,
    )
    assert upload.status == 200, upload.body
    AdminJob.objects.create(
        kind="room.delete",
        target=room_id,
        actor="@operator:localhost:8008",
        progress={"done": 3, "total": 4},
    )
    return {
        "room_id": room_id,
        "event_id": event_id,
        "context": (before, after),
        "report": EventReport.objects.get(),
    }


# --- Pages ---------------------------------------------------------------------------


def test_every_list_and_detail_page_renders(operator: Client, world: dict[str, Any]) -> None:
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        listing = operator.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert listing.status_code == 200, opts.label
        first = model_admin.get_queryset(listing.wsgi_request).first()
        if first is not None:
            detail = operator.get(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk])
            )
            assert detail.status_code == 200, opts.label


def test_the_portal_is_titled_with_the_server_name_and_links_to_the_landing_page(
    operator: Client, settings: Any
) -> None:
    html = operator.get("/admin/").content.decode()

    assert f"Trellis · {settings.SERVER_NAME}" in html
    assert "Django administration" not in html
    assert 'href="/"' in html
    assert "trellis/portal.css" in html


def test_someone_not_staff_is_sent_to_the_login_page(alice: Persona) -> None:
    browser = Client()
    browser.force_login(User.objects.get(localpart="alice"))

    for url in ("/admin/", "/admin/accounts/user/", "/admin/operators/auditentry/"):
        response = browser.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url


PROTOCOL_ROWS = [
    "rooms.room",
    "rooms.event",
    "rooms.roomstatechange",
    "rooms.roomalias",
    "rooms.receipt",
    "rooms.typing",
    "accounts.user",
    "accounts.device",
    "accounts.accesstoken",
    "accounts.accountdata",
    "e2ee.devicekeys",
    "e2ee.todevicemessage",
    "push.pusher",
    "presence.presence",
    "keybackup.backupversion",
    "federation.destination",
    "federation.remoteserverkey",
    "federation.inboundtransaction",
    "operators.auditentry",
    "operators.adminjob",
    # Changed only through their operator actions.
    "rooms.blockedroom",
    "rooms.eventreport",
    "accounts.registrationtoken",
    "media.localmedia",
    "media.remotemedia",
]


@pytest.mark.parametrize("label", PROTOCOL_ROWS)
def test_protocol_rows_cannot_be_added_changed_or_deleted(
    operator: Client, world: dict[str, Any], label: str
) -> None:
    app, name = label.split(".")
    assert operator.get(f"/admin/{app}/{name}/add/").status_code == 403
    model = next(m for m in admin.site._registry if m._meta.label_lower == label)
    row = model.objects.first()
    if row is None:
        return
    assert operator.get(f"/admin/{app}/{name}/{row.pk}/delete/").status_code == 403
    # A page to read: Django's form never saves the row.
    assert operator.post(f"/admin/{app}/{name}/{row.pk}/change/", {}).status_code == 403
    assert "delete_selected" not in admin.site._registry[model].get_actions(
        operator.get(f"/admin/{app}/{name}/").wsgi_request
    )


def test_the_user_page_shows_devices_sessions_rooms_and_media(
    operator: Client, world: dict[str, Any], bob: Persona
) -> None:
    user = User.objects.get(localpart="bob")

    html = operator.get(reverse("admin:accounts_user_change", args=[user.pk])).content.decode()

    assert bob.device_id in html
    assert world["room_id"] in html
    assert "1 item(s), 9\xa0bytes" in html
    for action in ("deactivate", "suspended", "shadow_banned", "logout", "redact", "notice"):
        assert reverse("admin:accounts_user_do", args=[user.pk, action]) in html
    assert reverse("admin:accounts_user_password", args=[user.pk]) in html


def test_users_are_searched_by_user_id_and_display_name(
    operator: Client, api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    api.put(
        f"profile/{alice.user_id}/displayname",
        {"displayname": "Wonderland"},
        token=alice.access_token,
    )
    listing = reverse("admin:accounts_user_changelist")

    by_id = operator.get(listing, {"q": bob.user_id}).context["cl"].result_list
    by_name = operator.get(listing, {"q": "wonder"}).context["cl"].result_list

    assert [u.localpart for u in by_id] == ["bob"]
    assert [u.localpart for u in by_name] == ["alice"]


def test_the_room_page_shows_members_state_power_levels_and_extremities(
    operator: Client, world: dict[str, Any], alice: Persona, bob: Persona
) -> None:
    room = Room.objects.get(room_id=world["room_id"])

    html = operator.get(reverse("admin:rooms_room_change", args=[room.pk])).content.decode()

    assert "Gardening" in html
    assert "roses" in html
    assert alice.user_id in html
    assert bob.user_id in html
    assert "m.room.power_levels" in html
    tip = room.forward_extremities.get().event_id
    assert tip in html
    assert "state event(s)" in html
    # Its deletion job, with the progress the worker reported.
    assert "room.delete" in html
    assert "3 / 4" in html


def test_rooms_are_searched_by_name(operator: Client, world: dict[str, Any]) -> None:
    found = operator.get(reverse("admin:rooms_room_changelist"), {"q": "garden"})

    assert [r.room_id for r in found.context["cl"].result_list] == [world["room_id"]]


def test_the_report_shows_the_event_its_context_and_the_reporter(
    operator: Client, world: dict[str, Any], alice: Persona
) -> None:
    report = world["report"]
    html = operator.get(
        reverse("admin:rooms_eventreport_change", args=[report.pk])
    ).content.decode()

    assert "spam spam spam" in html
    assert "the message before" in html
    assert "the message after" in html
    assert alice.user_id in html
    assert world["room_id"] in html


def test_the_report_queue_lists_unresolved_first(
    operator: Client, world: dict[str, Any], api: MatrixTestClient, bob: Persona
) -> None:
    api.post(room_path(world["room_id"], "report"), {"reason": "later"}, token=bob.access_token)
    first = world["report"]
    EventReport.objects.filter(pk=first.pk).update(resolved=True)

    listing = operator.get(reverse("admin:rooms_eventreport_changelist"))

    assert [r.resolved for r in listing.context["cl"].result_list] == [False, True]


def test_media_lists_storage_totals_and_by_room(
    operator: Client, world: dict[str, Any], api: MatrixTestClient, bob: Persona
) -> None:
    media = LocalMedia.objects.get()
    send(
        api,
        bob,
        world["room_id"],
        {"msgtype": "m.image", "body": "pic", "url": f"mxc://localhost:8008/{media.media_id}"},
    )
    listing = reverse("admin:media_localmedia_changelist")

    page = operator.get(listing)
    in_room = operator.get(listing, {"room": world["room_id"]})
    elsewhere = operator.get(listing, {"room": "!nothing:localhost:8008"})

    assert "1 item(s), 9\xa0bytes in all, 0 quarantined" in page.content.decode()
    assert bob.user_id in page.content.decode()
    assert list(in_room.context["cl"].result_list) == [media]
    assert list(elsewhere.context["cl"].result_list) == []


def test_the_audit_log_and_jobs_are_shown_and_filtered(
    operator: Client, world: dict[str, Any], operator_user: User
) -> None:
    user = User.objects.get(localpart="bob")
    act(operator, "accounts.user", user, "logout", confirm="on")

    log = operator.get("/admin/operators/auditentry/", {"action": "user.logout_all"})
    searched = operator.get("/admin/operators/auditentry/", {"q": "@nobody:x"})
    jobs = operator.get("/admin/operators/adminjob/")

    assert [e.target for e in log.context["cl"].result_list] == [user.user_id]
    assert list(searched.context["cl"].result_list) == []
    assert "3 / 4" in jobs.content.decode()


# --- Actions -------------------------------------------------------------------------


def test_deactivating_with_erase(
    operator: Client, operator_user: User, api: MatrixTestClient, bob: Persona
) -> None:
    user = User.objects.get(localpart="bob")

    response = act(operator, "accounts.user", user, "deactivate", erase="on", confirm="on")

    user.refresh_from_db()
    assert not user.is_active
    assert user.profile == {}
    assert api.get("account/whoami", token=bob.access_token).status == 401
    (entry,) = audit_entries("user.deactivate")
    assert (entry.actor, entry.via, entry.target) == (
        operator_user.user_id,
        "portal",
        user.user_id,
    )
    assert entry.details["erase"] is True
    assert any("Deactivated" in m for m in messages_of(response))


def test_deactivation_needs_the_confirmation(operator: Client, bob: Persona) -> None:
    user = User.objects.get(localpart="bob")

    response = act(operator, "accounts.user", user, "deactivate")

    assert response.status_code == 200
    user.refresh_from_db()
    assert user.is_active
    assert not AuditEntry.objects.exists()


def test_logging_out_everywhere(
    operator: Client, api: MatrixTestClient, bob: Persona, operator_user: User
) -> None:
    user = User.objects.get(localpart="bob")

    act(operator, "accounts.user", user, "logout", confirm="on")

    assert not Device.objects.filter(user=user).exists()
    assert api.get("account/whoami", token=bob.access_token).status == 401
    (entry,) = audit_entries("user.logout_all")
    assert (entry.actor, entry.via) == (operator_user.user_id, "portal")


def test_resetting_a_password(
    operator: Client, api: MatrixTestClient, bob: Persona, operator_user: User
) -> None:
    user = User.objects.get(localpart="bob")

    operator.post(
        reverse("admin:accounts_user_password", args=[user.pk]),
        {"new_password": "new secret", "new_password_again": "new secret"},
    )

    assert api.login("bob", "new secret").status == 200
    (entry,) = audit_entries("user.reset_password")
    assert (entry.actor, entry.via, entry.target) == (operator_user.user_id, "portal", bob.user_id)


def test_publishing_and_unpublishing_a_room(
    operator: Client, world: dict[str, Any], operator_user: User
) -> None:
    room = Room.objects.get(room_id=world["room_id"])

    act(operator, "rooms.room", room, "publish", confirm="on")
    room.refresh_from_db()
    published = room.is_public
    act(operator, "rooms.room", room, "unpublish", confirm="on")
    room.refresh_from_db()

    assert (published, room.is_public) == (True, False)
    entries = AuditEntry.objects.filter(target=room.room_id).order_by("pk")
    assert [(e.action, e.via, e.actor) for e in entries] == [
        ("room.publish", "portal", operator_user.user_id),
        ("room.unpublish", "portal", operator_user.user_id),
    ]


def test_taking_assigning_and_resolving_a_report(
    operator: Client, world: dict[str, Any], operator_user: User
) -> None:
    report = world["report"]
    other = User.objects.create_superuser("moderator", "pw")
    queue = reverse("admin:rooms_eventreport_changelist")

    def listed(**filters: str) -> list[EventReport]:
        return list(operator.get(queue, filters).context["cl"].result_list)

    unassigned = listed(assigned="nobody")
    act(operator, "rooms.eventreport", report, "assign_me", confirm="on")
    mine = ReportAssignment.objects.get(report=report).assigned_to
    for_me = listed(assigned="me")
    act(operator, "rooms.eventreport", report, "assign", assignee=other.user_id)
    theirs = ReportAssignment.objects.get(report=report).assigned_to
    act(operator, "rooms.eventreport", report, "resolve", confirm="on")

    report.refresh_from_db()
    assignment = ReportAssignment.objects.get(report=report)
    assert (unassigned, for_me, listed(assigned="me")) == ([report], [report], [])
    assert (mine, theirs) == (operator_user.user_id, other.user_id)
    assert report.resolved
    assert assignment.resolved_by == operator_user.user_id
    assert [(e.action, e.via) for e in AuditEntry.objects.order_by("pk")] == [
        ("report.assign", "portal"),
        ("report.assign", "portal"),
        ("report.resolve", "portal"),
    ]


def test_acting_on_a_report_redacts_bans_deactivates_and_resolves(
    operator: Client,
    world: dict[str, Any],
    operator_user: User,
    api: MatrixTestClient,
    bob: Persona,
    alice: Persona,
) -> None:
    report = world["report"]

    response = act(
        operator,
        "rooms.eventreport",
        report,
        "act",
        redact="on",
        ban="on",
        deactivate="on",
        resolve="on",
        reason="spam",
    )

    event = Event.objects.get(event_id=world["event_id"])
    assert event.redacted_by is not None
    state = api.get(
        room_path(world["room_id"], "state", "m.room.member", bob.user_id),
        token=alice.access_token,
    )
    assert state.body["membership"] == "ban"
    assert not User.objects.get(localpart="bob").is_active
    report.refresh_from_db()
    assert report.resolved
    actions = [e.action for e in AuditEntry.objects.order_by("pk")]
    assert actions == [
        "report.redact_event",
        "report.ban_sender",
        "user.deactivate",
        "report.resolve",
    ]
    assert {(e.via, e.actor) for e in AuditEntry.objects.all()} == {
        ("portal", operator_user.user_id)
    }
    # Done as the room's creator, its most powerful user here.
    redaction = AuditEntry.objects.get(action="report.redact_event")
    assert redaction.details["redacted_as"] == alice.user_id
    assert any("redacted the event" in m for m in messages_of(response))


def test_acting_where_no_local_user_may_is_refused_and_changes_nothing(
    operator: Client, api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    join(api, bob, room_id)
    event_id = send(api, alice, room_id, "mine")
    api.post(room_path(room_id, "report", event_id), {"reason": "x"}, token=bob.access_token)
    report = EventReport.objects.get()
    # alice, the only one who may redact, leaves.
    api.post(room_path(room_id, "leave"), {}, token=alice.access_token)

    response = act(operator, "rooms.eventreport", report, "act", redact="on", resolve="on")

    assert any("M_FORBIDDEN" in m for m in messages_of(response))
    assert Event.objects.get(event_id=event_id).redacted_by is None
    report.refresh_from_db()
    assert not report.resolved
    assert not AuditEntry.objects.exists()


def test_an_operator_without_the_permission_cannot_act(db: None, world: dict[str, Any]) -> None:
    staff = User.objects.create_user("helper", "pw", is_staff=True)
    browser = Client()
    browser.force_login(staff)
    user = User.objects.get(localpart="bob")

    response = act(browser, "accounts.user", user, "deactivate", confirm="on")

    assert response.status_code == 403
    assert User.objects.get(localpart="bob").is_active


@pytest.mark.parametrize(
    ("on", "off", "field", "audited"),
    [
        ("suspended", "unsuspended", "is_suspended", "user.suspend"),
        ("locked", "unlocked", "is_locked", "user.lock"),
        ("shadow_banned", "unshadow_banned", "is_shadow_banned", "user.shadow_ban"),
        ("admin", "unadmin", "is_staff", "user.set_admin"),
    ],
)
def test_account_flags_are_set_and_cleared(
    operator: Client,
    operator_user: User,
    bob: Persona,
    on: str,
    off: str,
    field: str,
    audited: str,
) -> None:
    user = User.objects.get(localpart="bob")

    act(operator, "accounts.user", user, on, confirm="on")
    user.refresh_from_db()
    set_ = getattr(user, field)
    page = operator.get(reverse("admin:accounts_user_change", args=[user.pk])).content.decode()
    act(operator, "accounts.user", user, off, confirm="on")
    user.refresh_from_db()

    assert (set_, getattr(user, field)) == (True, False)
    # The page offers the undoing once the flag is set.
    assert reverse("admin:accounts_user_do", args=[user.pk, off]) in page
    entries = audit_entries(audited)
    assert [(e.target, e.via, e.actor, e.details["value"]) for e in entries] == [
        (bob.user_id, "portal", operator_user.user_id, True),
        (bob.user_id, "portal", operator_user.user_id, False),
    ]


def test_a_suspended_user_cannot_send(
    operator: Client, api: MatrixTestClient, alice: Persona
) -> None:
    room_id = create_room(api, alice)
    user = User.objects.get(localpart="alice")

    act(operator, "accounts.user", user, "suspended", confirm="on")

    refused = api.put(
        room_path(room_id, "send", "m.room.message", "t1"),
        {"msgtype": "m.text", "body": "hi"},
        token=alice.access_token,
    )
    assert (refused.status, refused.errcode) == (403, "M_USER_SUSPENDED")


def test_suspending_and_shadow_banning_from_the_list(
    operator: Client, operator_user: User, alice: Persona, bob: Persona
) -> None:
    chosen = [u.pk for u in User.objects.filter(localpart__in=["alice", "bob"])]
    listing = reverse("admin:accounts_user_changelist")

    operator.post(listing, {"action": "suspend", "_selected_action": chosen})
    operator.post(listing, {"action": "shadow_ban", "_selected_action": chosen})
    filtered = operator.get(listing, {"is_suspended__exact": "1"}).context["cl"].result_list

    assert sorted(u.localpart for u in filtered) == ["alice", "bob"]
    assert User.objects.filter(is_shadow_banned=True).count() == 2
    assert AuditEntry.objects.filter(action="user.suspend", via="portal").count() == 2
    assert AuditEntry.objects.filter(action="user.shadow_ban", via="portal").count() == 2


def test_overriding_and_clearing_the_rate_limit(
    operator: Client, operator_user: User, bob: Persona
) -> None:
    user = User.objects.get(localpart="bob")

    act(operator, "accounts.user", user, "ratelimit", messages_per_second=0, burst_count=0)
    user.refresh_from_db()
    overridden = (user.ratelimit_messages_per_second, user.ratelimit_burst_count)
    act(operator, "accounts.user", user, "ratelimit", clear="on")
    user.refresh_from_db()

    assert overridden == (0, 0)
    assert user.ratelimit_messages_per_second is None
    assert [(e.action, e.via) for e in AuditEntry.objects.order_by("pk")] == [
        ("user.ratelimit_override", "portal"),
        ("user.ratelimit_override_clear", "portal"),
    ]


def test_a_rate_limit_needs_numbers_or_clearing(operator: Client, bob: Persona) -> None:
    user = User.objects.get(localpart="bob")

    response = act(operator, "accounts.user", user, "ratelimit")

    assert response.status_code == 200
    assert "Give a number" in response.content.decode()
    assert not AuditEntry.objects.exists()


def test_redacting_all_of_a_users_events_is_a_job_shown_with_its_progress(
    operator: Client,
    operator_user: User,
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    join(api, bob, room_id)
    sent = [send(api, bob, room_id, f"spam {n}") for n in range(2)]
    user = User.objects.get(localpart="bob")

    with django_capture_on_commit_callbacks(execute=True):
        act(operator, "accounts.user", user, "redact", reason="spam", confirm="on")

    job = AdminJob.objects.get(kind="user.redact_events")
    assert (job.target, job.actor, job.status) == (
        bob.user_id,
        operator_user.user_id,
        AdminJob.COMPLETE,
    )
    assert all(Event.objects.get(event_id=e).redacted_by for e in sent)
    (entry,) = audit_entries("user.redact_events")
    assert (entry.via, entry.actor) == ("portal", operator_user.user_id)
    page = operator.get(reverse("admin:accounts_user_change", args=[user.pk])).content.decode()
    assert "user.redact_events" in page
    assert "complete" in page


def test_sending_a_server_notice(
    operator: Client, operator_user: User, api: MatrixTestClient, bob: Persona
) -> None:
    user = User.objects.get(localpart="bob")

    act(operator, "accounts.user", user, "notice", body="Maintenance tonight")

    (entry,) = audit_entries("server_notice.send")
    assert (entry.target, entry.via, entry.actor) == (bob.user_id, "portal", operator_user.user_id)
    notice = Event.objects.get(event_id=entry.details["event_id"])
    assert notice.pdu["content"] == {"msgtype": "m.text", "body": "Maintenance tonight"}


def test_registration_tokens_are_made_changed_and_deleted(
    operator: Client, operator_user: User
) -> None:
    from accounts.models import RegistrationToken

    new = reverse("admin:accounts_registrationtoken_act", args=["new"])
    operator.post(new, {"token": "welcome", "uses_allowed": 3, "expiry": "2040-01-01 00:00"})
    token = RegistrationToken.objects.get()
    made = (token.token, token.uses_allowed, token.expiry_time_ms)
    act(operator, "accounts.registrationtoken", token, "edit", uses_allowed=5, expiry="")
    token.refresh_from_db()
    changed = (token.uses_allowed, token.expiry_time_ms)
    act(operator, "accounts.registrationtoken", token, "delete", confirm="on")

    assert made == ("welcome", 3, 2208988800000)
    assert changed == (5, None)
    assert not RegistrationToken.objects.exists()
    assert [(e.action, e.target, e.via) for e in AuditEntry.objects.order_by("pk")] == [
        ("registration_token.create", "welcome", "portal"),
        ("registration_token.update", "welcome", "portal"),
        ("registration_token.delete", "welcome", "portal"),
    ]


def test_a_bad_registration_token_is_refused(operator: Client) -> None:
    from accounts.models import RegistrationToken

    new = reverse("admin:accounts_registrationtoken_act", args=["new"])
    response = operator.post(new, {"token": "no spaces allowed"}, follow=True)

    assert any("M_INVALID_PARAM" in m for m in messages_of(response))
    assert not RegistrationToken.objects.exists()
    assert not AuditEntry.objects.exists()


def test_blocking_and_unblocking_a_room(
    operator: Client, operator_user: User, world: dict[str, Any], api: MatrixTestClient
) -> None:
    room = Room.objects.get(room_id=world["room_id"])
    carol = api.register("carol")

    act(operator, "rooms.room", room, "block", confirm="on")
    refused = api.post(f"join/{room.room_id}", {}, token=carol.access_token)
    listed = operator.get(reverse("admin:rooms_room_changelist"), {"blocked": "yes"})
    act(operator, "rooms.room", room, "unblock", confirm="on")
    allowed = api.post(f"join/{room.room_id}", {}, token=carol.access_token)

    assert refused.status == 403
    assert list(listed.context["cl"].result_list) == [room]
    assert allowed.status == 200
    assert [(e.action, e.via) for e in AuditEntry.objects.order_by("pk")] == [
        ("room.block", "portal"),
        ("room.unblock", "portal"),
    ]


def test_blocking_a_room_id_this_server_does_not_know(operator: Client) -> None:
    from rooms.models import BlockedRoom

    block = reverse("admin:rooms_blockedroom_act", args=["block"])
    operator.post(block, {"room_id": "!elsewhere:other.example"})
    row = BlockedRoom.objects.get()
    act(operator, "rooms.blockedroom", row, "unblock", confirm="on")

    assert row.room_id == "!elsewhere:other.example"
    assert not BlockedRoom.objects.exists()
    assert [e.action for e in AuditEntry.objects.order_by("pk")] == ["room.block", "room.unblock"]


def test_making_a_local_user_room_admin(
    operator: Client, operator_user: User, world: dict[str, Any], api: MatrixTestClient
) -> None:
    room = Room.objects.get(room_id=world["room_id"])
    carol = api.register("carol")

    act(operator, "rooms.room", room, "make_admin", user_id=carol.user_id)

    levels = room.current_state.get(type="m.room.power_levels")
    content = Event.objects.get(event_id=levels.event_id).pdu["content"]
    assert content["users"][carol.user_id] >= 100
    (entry,) = audit_entries("room.make_admin")
    assert (entry.target, entry.via, entry.details["user_id"]) == (
        room.room_id,
        "portal",
        carol.user_id,
    )


def test_a_room_admin_must_be_a_local_user(operator: Client, world: dict[str, Any]) -> None:
    room = Room.objects.get(room_id=world["room_id"])

    response = act(operator, "rooms.room", room, "make_admin", user_id="@x:other.example")

    assert "a user of this server" in response.content.decode()
    assert not AuditEntry.objects.exists()


def test_deleting_a_room_kicks_into_a_new_room_and_shows_the_job(
    operator: Client,
    operator_user: User,
    world: dict[str, Any],
    alice: Persona,
    bob: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room = Room.objects.get(room_id=world["room_id"])
    # Not the unfinished job the fixture made, which would look like a deletion under way.
    AdminJob.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        response = act(
            operator,
            "rooms.room",
            room,
            "delete",
            purge="on",
            block="on",
            new_room_user_id=alice.user_id,
            room_name="Moved",
            message="This room was closed.",
            confirm="on",
        )

    job = AdminJob.objects.get(kind="room.delete", target=world["room_id"])
    assert job.status == AdminJob.COMPLETE
    assert not Room.objects.filter(room_id=world["room_id"]).exists()
    (entry,) = audit_entries("room.delete")
    assert (entry.via, entry.actor) == ("portal", operator_user.user_id)
    moved = job.progress.get("new_room_id")
    assert moved
    assert Room.objects.get(room_id=moved).memberships.filter(user_id=bob.user_id).exists()
    # Back to the list (the room is gone), which says where to follow the job.
    assert any("Admin jobs" in m for m in messages_of(response))


def test_media_is_quarantined_protected_and_deleted_from_its_page(
    operator: Client, operator_user: User, world: dict[str, Any]
) -> None:
    media = LocalMedia.objects.get()

    act(operator, "media.localmedia", media, "quarantine", confirm="on")
    media.refresh_from_db()
    quarantined = media.quarantined_by
    act(operator, "media.localmedia", media, "unquarantine", confirm="on")
    act(operator, "media.localmedia", media, "protect", confirm="on")
    media.refresh_from_db()
    protected = media.safe_from_quarantine
    operator.post(
        reverse("admin:media_localmedia_changelist"),
        {"action": "quarantine", "_selected_action": [media.pk]},
    )
    media.refresh_from_db()
    still_served = media.quarantined_by is None
    act(operator, "media.localmedia", media, "unprotect", confirm="on")
    act(operator, "media.localmedia", media, "delete", confirm="on")

    assert quarantined == operator_user.user_id
    assert (protected, still_served) == (True, True)
    assert not LocalMedia.objects.exists()
    assert [(e.action, e.via) for e in AuditEntry.objects.order_by("pk")] == [
        ("media.quarantine", "portal"),
        ("media.unquarantine", "portal"),
        ("media.protect", "portal"),
        ("media.unprotect", "portal"),
        ("media.delete", "portal"),
    ]


def test_all_media_of_a_room_is_quarantined_at_once(
    operator: Client, world: dict[str, Any], api: MatrixTestClient, bob: Persona
) -> None:
    media = LocalMedia.objects.get()
    send(
        api,
        bob,
        world["room_id"],
        {"msgtype": "m.image", "body": "pic", "url": f"mxc://localhost:8008/{media.media_id}"},
    )

    operator.post(
        reverse("admin:media_localmedia_owner"),
        {"target": world["room_id"], "action": "quarantine"},
    )

    media.refresh_from_db()
    assert media.quarantined_by is not None
    (entry,) = audit_entries("media.quarantine_room")
    assert (entry.target, entry.via, entry.details["count"]) == (world["room_id"], "portal", 1)
