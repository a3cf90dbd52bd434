"""Reporting content: POST /rooms/{roomId}/report/{eventId} and POST /rooms/{roomId}/report
(Client-Server API, "Reporting Content"), and resolving reports in the admin."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.test import Client

from accounts.models import User
from rooms.models import EventReport
from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import create_room, join, leave, room_path, send, set_state


def report_event(
    api: MatrixTestClient, who: Persona, room: str, event_id: str, **body: Any
) -> Response:
    return api.post(room_path(room, "report", event_id), body, token=who.access_token)


def report_room(api: MatrixTestClient, who: Persona, room: str, **body: Any) -> Response:
    return api.post(room_path(room, "report"), body, token=who.access_token)


def test_a_member_reports_an_event(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    event_id = send(api, alice, room, "something rude")

    response = report_event(api, bob, room, event_id, reason="rude", score=-100)

    assert (response.status, response.body) == (200, {})
    report = EventReport.objects.get()
    assert (report.room_id, report.event_id, report.reporter) == (room, event_id, bob.user_id)
    assert (report.reason, report.score, report.resolved) == ("rude", -100, False)


def test_reason_and_score_are_optional_for_events(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    event_id = send(api, alice, room)

    assert report_event(api, alice, room, event_id).status == 200

    report = EventReport.objects.get()
    assert (report.reason, report.score) == ("", None)


@pytest.mark.parametrize(("score", "errcode"), [(5, "M_INVALID_PARAM"), ("bad", "M_BAD_JSON")])
def test_a_bad_score_is_refused(
    api: MatrixTestClient, alice: Persona, score: Any, errcode: str
) -> None:
    room = create_room(api, alice)
    event_id = send(api, alice, room)

    response = report_event(api, alice, room, event_id, score=score)

    assert (response.status, response.errcode) == (400, errcode)


def test_a_non_member_cannot_report_an_event(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    event_id = send(api, alice, room)

    response = report_event(api, bob, room, event_id, reason="?")

    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")
    assert not EventReport.objects.exists()


def test_a_former_member_cannot_report_an_event(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    event_id = send(api, alice, room)
    leave(api, bob, room)

    assert report_event(api, bob, room, event_id).status == 404


def test_an_event_the_reporter_cannot_see_is_not_found(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    set_state(api, alice, room, "m.room.history_visibility", {"history_visibility": "joined"})
    before = send(api, alice, room, "before bob")
    join(api, bob, room)

    response = report_event(api, bob, room, before)

    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")


def test_unknown_events_and_rooms_are_not_found(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    nowhere = f"!nowhere:{settings.SERVER_NAME}"

    assert report_event(api, alice, room, "$nosuchevent").errcode == "M_NOT_FOUND"
    assert report_event(api, alice, nowhere, "$nosuchevent").errcode == "M_NOT_FOUND"


def test_an_event_of_another_room_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    other = create_room(api, alice)
    event_id = send(api, alice, other)

    assert report_event(api, alice, room, event_id).status == 404


def test_anyone_may_report_a_room(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice)  # private: bob is not and cannot be in it

    response = report_room(api, bob, room, reason="spam invites")

    assert (response.status, response.body) == (200, {})
    report = EventReport.objects.get()
    assert (report.room_id, report.event_id, report.reason) == (room, "", "spam invites")


def test_a_room_report_needs_a_reason_and_a_known_room(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice)

    missing = report_room(api, alice, room)
    unknown = report_room(api, alice, f"!nowhere:{settings.SERVER_NAME}", reason="")

    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")


def test_reporting_needs_an_access_token(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)

    response = api.post(room_path(room, "report"), {"reason": "x"})

    assert (response.status, response.errcode) == (401, "M_MISSING_TOKEN")


def test_an_operator_resolves_reports_in_the_admin(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)
    report_room(api, bob, room, reason="one")
    report_room(api, bob, room, reason="two")
    first, second = EventReport.objects.order_by("pk")
    operator = User.objects.create_superuser("operator", "secret password")
    browser = Client()
    browser.force_login(operator)

    page = browser.get("/admin/rooms/eventreport/")
    response = browser.post(
        "/admin/rooms/eventreport/",
        {"action": "resolve", "_selected_action": [first.pk]},
        follow=True,
    )

    assert page.status_code == 200
    assert b"Mark the selected reports as resolved" in page.content
    assert response.status_code == 200
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.resolved, second.resolved) == (True, False)


def test_resolving_reports_is_logged_per_report(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)
    for reason in ("one", "two", "three"):
        report_room(api, bob, room, reason=reason)
    first, second, third = EventReport.objects.order_by("pk")
    EventReport.objects.filter(pk=third.pk).update(resolved=True)
    operator = User.objects.create_superuser("operator", "secret password")
    browser = Client()
    browser.force_login(operator)

    browser.post(
        "/admin/rooms/eventreport/",
        {"action": "resolve", "_selected_action": [first.pk, second.pk, third.pk]},
    )

    # The third was resolved before: the action did nothing to it and logs nothing.
    entries = LogEntry.objects.order_by("object_id")
    assert [e.object_id for e in entries] == [str(first.pk), str(second.pk)]
    assert all(e.user_id == operator.pk for e in entries)
    assert all(e.change_message == "Marked resolved." for e in entries)
    assert entries[0].object_repr == str(first)


def report_user(api: MatrixTestClient, who: Persona, user_id: str, **body: Any) -> Response:
    return api.post(f"users/{quote(user_id, safe='')}/report", body, token=who.access_token)


def test_anyone_may_report_a_user_of_this_server(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    # alice and bob share no room.
    response = report_user(api, alice, bob.user_id, reason="")

    assert (response.status, response.body) == (200, {})
    report = EventReport.objects.get()
    assert (report.user_id, report.reporter, report.room_id, report.reason) == (
        bob.user_id,
        alice.user_id,
        "",
        "",
    )


def test_a_user_report_needs_a_reason_and_a_known_user(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    missing = report_user(api, alice, bob.user_id)
    unknown = report_user(api, alice, f"@nobody:{settings.SERVER_NAME}", reason="x")
    remote = report_user(api, alice, "@someone:elsewhere.example", reason="x")

    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    assert (remote.status, remote.errcode) == (404, "M_NOT_FOUND")
    assert not EventReport.objects.exists()
