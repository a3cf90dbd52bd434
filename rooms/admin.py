"""The operator's view of rooms: rooms, their members, events, aliases and reports."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.models import User
from accounts.selectors import local_user
from config.admin import log_operator_action
from config.portal import (
    ObjectAction,
    ObjectActionsAdmin,
    ReadOnlyAdmin,
    ReadOnlyInline,
    actor,
    job_table,
    link,
    pretty_json,
    run_bulk,
    table,
)
from operators.models import AdminJob
from operators.services import report_queue, users
from operators.services import rooms as room_actions
from rooms.models import (
    BlockedRoom,
    CurrentState,
    Event,
    EventReport,
    Membership,
    PartialStateRoom,
    Receipt,
    Room,
    RoomAlias,
    RoomStateChange,
    Typing,
)
from rooms.selectors import current_state_event
from rooms.services.blocking import is_room_blocked

# Events shown before and after a reported one.
CONTEXT_EVENTS = 3


class MembershipInline(ReadOnlyInline):
    model = Membership
    fields = ("user_id", "membership", "event_id")
    readonly_fields = fields
    verbose_name_plural = "members"


def _state_content(room: Room, event_type: str) -> dict[str, Any]:
    event = current_state_event(room, event_type, "")
    content = event.pdu.get("content") if event is not None else None
    return content if isinstance(content, dict) else {}


def set_published(request: HttpRequest, room: Room, published: bool) -> str:
    room_actions.set_published(room.room_id, published, **actor(request))
    return f"{room.room_id} is {'now' if published else 'no longer'} in the room directory."


def block(request: HttpRequest, room_id: str, blocked: bool) -> str:
    room_actions.block_room(room_id, blocked, **actor(request))
    return f"{room_id} is {'now' if blocked else 'no longer'} blocked."


def _local_user_id(value: str) -> str:
    user_id = value.strip()
    if local_user(user_id) is None:
        raise forms.ValidationError("Give the user ID of a user of this server.")
    return user_id


class DeleteRoomForm(forms.Form):
    purge = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Remove the room's events and state from the database.",
    )
    force_purge = forms.BooleanField(
        required=False, help_text="Purge even if local users are still in it."
    )
    block = forms.BooleanField(
        required=False, help_text="Also block the room: nobody here may join it again."
    )
    new_room_user_id = forms.CharField(
        required=False,
        label="Kick into a new room made by",
        help_text="A user of this server: its members are moved to a new room, told why "
        "(empty: they are only kicked).",
    )
    room_name = forms.CharField(required=False, max_length=255, label="New room's name")
    message = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Notice in the new room"
    )
    confirm = forms.BooleanField(label="Yes: delete the room (this cannot be undone)")

    def clean_new_room_user_id(self) -> str:
        value = self.cleaned_data["new_room_user_id"].strip()
        return _local_user_id(value) if value else ""


class RoomAdminForm(forms.Form):
    user_id = forms.CharField(
        label="User", help_text="A user of this server, given the room's highest power level."
    )

    def clean_user_id(self) -> str:
        return _local_user_id(self.cleaned_data["user_id"])


def delete_room(request: HttpRequest, room: Room, data: dict[str, Any]) -> str:
    job = room_actions.delete_room(
        room.room_id,
        new_room_user_id=data["new_room_user_id"] or None,
        room_name=data["room_name"] or None,
        message=data["message"] or None,
        block=data["block"],
        purge=data["purge"],
        force_purge=data["force_purge"],
        **actor(request),
    )
    return f"Deleting {room.room_id} (job {job.job_id}): see its progress under Admin jobs."


def make_room_admin(request: HttpRequest, room: Room, data: dict[str, Any]) -> str:
    room_actions.make_room_admin(room.room_id, data["user_id"], **actor(request))
    return f"{data['user_id']} is now an admin of {room.room_id}."


ROOM_ACTIONS = [
    ObjectAction(
        "publish",
        "Publish in the directory…",
        lambda request, room, data: set_published(request, room, True),
        help="The room is listed in this server's public room directory.",
        shown=lambda room: not room.is_public,
    ),
    ObjectAction(
        "unpublish",
        "Remove from the directory…",
        lambda request, room, data: set_published(request, room, False),
        shown=lambda room: room.is_public,
    ),
    ObjectAction(
        "block",
        "Block…",
        lambda request, room, data: block(request, room.room_id, True),
        help="Users of this server may no longer join, be invited to or knock on the room.",
        danger=True,
        shown=lambda room: not is_room_blocked(room.room_id),
    ),
    ObjectAction(
        "unblock",
        "Unblock…",
        lambda request, room, data: block(request, room.room_id, False),
        shown=lambda room: is_room_blocked(room.room_id),
    ),
    ObjectAction(
        "make_admin",
        "Make a room admin…",
        make_room_admin,
        form=RoomAdminForm,
        help="The room's most powerful user of this server gives the user its power "
        "level (joining them first if the room is public, inviting them otherwise).",
    ),
    ObjectAction(
        "delete",
        "Delete…",
        delete_room,
        form=DeleteRoomForm,
        help="A job makes every local member leave (moving them to a new room with a "
        "notice if you name its creator), removes the aliases and the directory listing, "
        "and purges the room; its progress is shown on this page and under Admin jobs.",
        danger=True,
    ),
]


class BlockedFilter(admin.SimpleListFilter):
    title = "blocked"
    parameter_name = "blocked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Room]) -> QuerySet[Room]:
        blocked = BlockedRoom.objects.values("room_id")
        if self.value() == "yes":
            return queryset.filter(room_id__in=blocked)
        if self.value() == "no":
            return queryset.exclude(room_id__in=blocked)
        return queryset


@admin.register(Room)
class RoomAdmin(ObjectActionsAdmin):
    list_display = (
        "room_id",
        "name",
        "joined",
        "room_version",
        "creator",
        "is_public",
        "blocked",
        "created_at",
    )
    list_filter = ("is_public", BlockedFilter, "room_version")
    search_fields = ("room_id", "creator", "aliases__alias")
    fields = (
        "room_id",
        "name",
        "topic",
        "alias_list",
        "room_version",
        "creator",
        "is_public",
        "blocked",
        "created_at",
        "state_size",
        "power_levels",
        "forward_extremities",
        "current_state",
        "state_changes",
        "rejected_events",
        "media_link",
        "jobs",
        "audit_log",
    )
    inlines = [MembershipInline]
    object_actions = ROOM_ACTIONS
    ordering = ("-created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Room]:
        return (
            super()
            .get_queryset(request)
            .annotate(n_joined=Count("memberships", filter=Q(memberships__membership="join")))
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Room], search_term: str
    ) -> tuple[QuerySet[Room], bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term:
            return found, may_have_duplicates
        # And by current name: the m.room.name events that are current state.
        named = Event.objects.filter(
            event_id__in=CurrentState.objects.filter(type="m.room.name", state_key="").values(
                "event_id"
            ),
            pdu__content__name__icontains=term,
        ).values("room_id")
        return (found | queryset.filter(pk__in=named)), True

    @admin.display(description="name")
    def name(self, obj: Room) -> str:
        return str(_state_content(obj, "m.room.name").get("name") or "")

    @admin.display(description="topic")
    def topic(self, obj: Room) -> str:
        return str(_state_content(obj, "m.room.topic").get("topic") or "")

    @admin.display(description="blocked", boolean=True)
    def blocked(self, obj: Room) -> bool:
        return is_room_blocked(obj.room_id)

    @admin.display(description="joined", ordering="n_joined")
    def joined(self, obj: Room) -> int:
        return int(getattr(obj, "n_joined", 0))

    @admin.display(description="aliases")
    def alias_list(self, obj: Room) -> str:
        return ", ".join(obj.aliases.order_by("alias").values_list("alias", flat=True)) or "-"

    @admin.display(description="state size")
    def state_size(self, obj: Room) -> str:
        return f"{CurrentState.objects.filter(room=obj).count()} state event(s)"

    @admin.display(description="power levels")
    def power_levels(self, obj: Room) -> SafeString:
        return pretty_json(_state_content(obj, "m.room.power_levels"))

    @admin.display(description="forward extremities")
    def forward_extremities(self, obj: Room) -> SafeString:
        ids = list(obj.forward_extremities.values_list("event_id", flat=True))
        events = Event.objects.in_bulk(ids, field_name="event_id")
        return table(
            ["event", "type", "sender", "depth"],
            (
                (
                    link(reverse("admin:rooms_event_change", args=[e.pk]), e.event_id),
                    e.type,
                    e.sender,
                    e.depth,
                )
                if (e := events.get(event_id)) is not None
                else (event_id, "-", "-", "-")
                for event_id in sorted(ids)
            ),
        )

    @admin.display(description="current state")
    def current_state(self, obj: Room) -> SafeString:
        rows = list(CurrentState.objects.filter(room=obj).order_by("type", "state_key"))
        events = Event.objects.in_bulk([r.event_id for r in rows], field_name="event_id")
        cells = []
        for row in rows:
            event = events.get(row.event_id)
            content = event.pdu.get("content") if event is not None else {}
            cells.append(
                (
                    row.type,
                    row.state_key,
                    event.sender if event is not None else "-",
                    link(reverse("admin:rooms_event_change", args=[event.pk]), row.event_id)
                    if event is not None
                    else row.event_id,
                    json.dumps(content, sort_keys=True)[:200],
                )
            )
        return table(["type", "state key", "sender", "event", "content"], cells)

    @admin.display(description="admin jobs")
    def jobs(self, obj: Any) -> SafeString:
        return job_table(AdminJob.objects.filter(target=obj.room_id).order_by("-created_at"))

    @admin.display(description="audit log")
    def audit_log(self, obj: Any) -> SafeString:
        url = (
            reverse("admin:operators_auditentry_changelist") + "?" + urlencode({"q": obj.room_id})
        )
        return link(url, "what operators did to it")

    @admin.display(description="media")
    def media_link(self, obj: Room) -> SafeString:
        url = reverse("admin:media_localmedia_changelist") + "?" + urlencode({"room": obj.room_id})
        return link(url, "the media of this server its messages point at")

    @admin.display(description="state changes")
    def state_changes(self, obj: Room) -> str:
        url = reverse("admin:rooms_roomstatechange_changelist")
        return format_html(
            '<a href="{}?{}">the changes of its current state</a>',
            url,
            urlencode({"room__id__exact": obj.pk}),
        )

    @admin.display(description="rejected and soft-failed events")
    def rejected_events(self, obj: Room) -> str:
        url = reverse("admin:rooms_event_changelist")
        return format_html(
            '<a href="{}?{}">rejected</a>, <a href="{}?{}">soft-failed</a>',
            url,
            urlencode({"room__id__exact": obj.pk, "pipeline": "rejected"}),
            url,
            urlencode({"room__id__exact": obj.pk, "pipeline": "soft_failed"}),
        )


class PipelineFilter(admin.SimpleListFilter):
    """What the event pipeline made of an event (rooms.services.incoming)."""

    title = "pipeline result"
    parameter_name = "pipeline"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("rejected", "rejected"),
            ("soft_failed", "soft-failed"),
            ("outlier", "outlier"),
            ("accepted", "in the timeline"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        if self.value() == "rejected":
            return queryset.filter(rejected_reason__isnull=False)
        if self.value() == "soft_failed":
            return queryset.filter(soft_failed=True)
        if self.value() == "outlier":
            return queryset.filter(outlier=True)
        if self.value() == "accepted":
            return queryset.filter(rejected_reason__isnull=True, soft_failed=False, outlier=False)
        return queryset


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """Events, read-only (an event is part of the room's graph): filter by what the
    pipeline made of them (rejected, with the reason; soft-failed; outliers) to see what
    other servers sent that was refused."""

    list_display = (
        "event_id",
        "room",
        "type",
        "sender",
        "stream_ordering",
        "rejected_reason",
        "soft_failed",
        "redacted_by",
    )
    list_filter = (PipelineFilter, "type")
    search_fields = ("event_id", "sender", "room__room_id", "rejected_reason")
    readonly_fields = [f.name for f in Event._meta.fields]
    list_select_related = ("room",)


@admin.register(RoomStateChange)
class RoomStateChangeAdmin(ReadOnlyAdmin):
    """The changes of rooms' current state (per room from the room's page), read-only;
    ``resolved``: the state of forked extremities was resolved there."""

    list_display = ("room", "stream_ordering", "state_group", "resolved")
    list_filter = ("resolved",)
    search_fields = ("room__room_id",)
    ordering = ("room", "-stream_ordering")
    list_select_related = ("room",)
    readonly_fields = [f.name for f in RoomStateChange._meta.fields]


@admin.register(PartialStateRoom)
class PartialStateRoomAdmin(ReadOnlyAdmin):
    """Rooms joined through another server with partial state whose whole state is still
    being fetched (rooms.services.partial_state): normally empty within a second of a
    join; a room that stays here shows how often the fetch was tried and why it failed.
    Read-only: the worker retries it on its own."""

    list_display = ("room", "join_event_id", "servers", "joined_ts", "attempts", "last_error")
    search_fields = ("room__room_id", "join_event_id")
    ordering = ("joined_ts",)
    list_select_related = ("room",)
    readonly_fields = [f.name for f in PartialStateRoom._meta.fields]


@admin.register(RoomAlias)
class RoomAliasAdmin(ReadOnlyAdmin):
    list_display = ("alias", "room", "creator", "created_at")
    search_fields = ("alias", "room__room_id")
    readonly_fields = ("alias", "room", "creator", "created_at")


@admin.register(Typing)
class TypingAdmin(ReadOnlyAdmin):
    list_display = ("room", "user_id", "expires_at_ms", "stream_id")
    search_fields = ("room__room_id", "user_id")
    readonly_fields = [f.name for f in Typing._meta.fields]


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdmin):
    list_display = ("room", "user_id", "receipt_type", "thread_id", "event_id", "ts")
    list_filter = ("receipt_type",)
    search_fields = ("room__room_id", "user_id", "event_id")
    readonly_fields = [f.name for f in Receipt._meta.fields]


class BlockRoomForm(forms.Form):
    room_id = forms.CharField(
        label="Room ID", max_length=255, help_text="Known here or not (!opaque:server)."
    )


@admin.register(BlockedRoom)
class BlockedRoomAdmin(ObjectActionsAdmin):
    """Rooms users of this server may not join, be invited to or knock on; a room may be
    blocked before this server knows it."""

    list_display = ("room_id", "blocked_by", "created_at")
    search_fields = ("room_id", "blocked_by")
    fields = ("room_id", "blocked_by", "created_at")
    list_actions = [
        ObjectAction(
            "block",
            "Block a room ID…",
            lambda request, row, data: block(request, data["room_id"].strip(), True),
            form=BlockRoomForm,
            danger=True,
        )
    ]
    object_actions = [
        ObjectAction(
            "unblock",
            "Unblock…",
            lambda request, row, data: block(request, row.room_id, False),
        )
    ]


# --- The report queue ----------------------------------------------------------------


def resolve_report(request: HttpRequest, report: EventReport) -> str:
    who = actor(request)
    with transaction.atomic():
        room_actions.resolve_report(report.pk, **who)
        report_queue.record_resolution(report.pk, who["actor"])
        log_operator_action(request, [report], "Marked resolved.")
    return f"Report {report.pk} resolved."


def _operators() -> list[tuple[str, str]]:
    staff = User.objects.filter(is_staff=True, is_active=True).order_by("localpart")
    return [("", "(nobody)")] + [(u.user_id, u.user_id) for u in staff]


class AssignForm(forms.Form):
    assignee = forms.ChoiceField(label="Assign to", choices=_operators, required=False)


class ActForm(forms.Form):
    redact = forms.BooleanField(required=False, label="Redact the reported event")
    ban = forms.BooleanField(required=False, label="Ban its sender from the room")
    deactivate = forms.BooleanField(
        required=False, label="Deactivate its sender (a user of this server)"
    )
    reason = forms.CharField(
        required=False, max_length=750, help_text="Given with the redaction and the ban."
    )
    resolve = forms.BooleanField(required=False, initial=True, label="Resolve the report")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not any(data.get(k) for k in ("redact", "ban", "deactivate", "resolve")):
            raise forms.ValidationError("Choose at least one thing to do.")
        return data


def assign(request: HttpRequest, report: EventReport, assignee: str) -> str:
    report_queue.assign_report(report.pk, assignee, **actor(request))
    return f"Report {report.pk} assigned to {assignee}." if assignee else "Report released."


def act_on_report(request: HttpRequest, report: EventReport, data: dict[str, Any]) -> str:
    """Redact, ban, deactivate and resolve in one step; each part is its own action
    (and audit entry), done in this order, and the first failure stops the rest."""
    done = []
    reason = data.get("reason") or ""
    if data.get("redact"):
        report_queue.redact_reported_event(report.pk, reason=reason, **actor(request))
        done.append("redacted the event")
    if data.get("ban"):
        report_queue.ban_reported_sender(report.pk, reason=reason, **actor(request))
        done.append("banned its sender")
    if data.get("deactivate"):
        done.append(deactivate_sender(request, report))
    if data.get("resolve"):
        resolve_report(request, report)
        done.append("resolved the report")
    return f"Report {report.pk}: " + ", ".join(done) + "."


def deactivate_sender(request: HttpRequest, report: EventReport) -> str:
    event = Event.objects.filter(event_id=report.event_id).first()
    sender = event.sender if event is not None else report.user_id
    if not sender or local_user(sender) is None:
        raise ValueError(f"{sender or 'The sender'} is not a user of this server.")
    users.deactivate_user(sender, **actor(request))
    return f"deactivated {sender}"


REPORT_ACTIONS = [
    ObjectAction(
        "assign_me",
        "Take it",
        lambda request, report, data: assign(request, report, actor(request)["actor"]),
        help="Assign the report to yourself.",
    ),
    ObjectAction(
        "assign",
        "Assign…",
        lambda request, report, data: assign(request, report, data["assignee"]),
        form=AssignForm,
    ),
    ObjectAction(
        "act",
        "Act on it…",
        act_on_report,
        form=ActForm,
        help="Redacting and banning are done as the room's most powerful user of this "
        "server (the server has no power of its own inside a room).",
        danger=True,
    ),
    ObjectAction(
        "resolve",
        "Resolve…",
        lambda request, report, data: resolve_report(request, report),
        shown=lambda report: not report.resolved,
    ),
]


class AssignmentFilter(admin.SimpleListFilter):
    title = "assigned"
    parameter_name = "assigned"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("me", "to me"), ("nobody", "to nobody")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[EventReport]
    ) -> QuerySet[EventReport]:
        if self.value() == "me":
            return queryset.filter(assignment__assigned_to=actor(request)["actor"])
        if self.value() == "nobody":
            return queryset.filter(Q(assignment__isnull=True) | Q(assignment__assigned_to=""))
        return queryset


@admin.register(EventReport)
class EventReportAdmin(ObjectActionsAdmin):
    """The queue of reports: unresolved first, oldest first among them."""

    list_display = (
        "created_at",
        "reporter",
        "about",
        "room_id",
        "reason_short",
        "assigned_to",
        "resolved",
    )
    list_filter = ("resolved", AssignmentFilter)
    search_fields = ("reporter", "room_id", "event_id", "user_id", "reason")
    ordering = ("resolved", "created_at")
    list_select_related = ("assignment",)
    fields = (
        "reporter",
        "created_at",
        "room",
        "reported_user",
        "event_id",
        "reason",
        "score",
        "resolved",
        "assigned_to",
        "resolved_by",
        "reported_event",
        "context",
    )
    actions = ["resolve"]
    object_actions = REPORT_ACTIONS

    @admin.display(description="about")
    def about(self, obj: EventReport) -> str:
        return obj.event_id or obj.user_id or obj.room_id

    @admin.display(description="reason")
    def reason_short(self, obj: EventReport) -> str:
        return obj.reason[:80]

    @admin.display(description="assigned to")
    def assigned_to(self, obj: EventReport) -> str:
        assignment = getattr(obj, "assignment", None)
        return assignment.assigned_to if assignment is not None else ""

    @admin.display(description="resolved by")
    def resolved_by(self, obj: EventReport) -> str:
        assignment = getattr(obj, "assignment", None)
        return assignment.resolved_by if assignment is not None else ""

    @admin.display(description="room")
    def room(self, obj: EventReport) -> SafeString | str:
        room = Room.objects.filter(room_id=obj.room_id).first() if obj.room_id else None
        if room is None:
            return obj.room_id
        return link(reverse("admin:rooms_room_change", args=[room.pk]), obj.room_id)

    @admin.display(description="reported user / sender")
    def reported_user(self, obj: EventReport) -> SafeString | str:
        event = Event.objects.filter(event_id=obj.event_id).first() if obj.event_id else None
        user_id = event.sender if event is not None else obj.user_id
        user = local_user(user_id) if user_id else None
        if user is None:
            return user_id
        return link(reverse("admin:accounts_user_change", args=[user.pk]), user_id)

    @admin.display(description="reported event")
    def reported_event(self, obj: EventReport) -> SafeString | str:
        event = Event.objects.filter(event_id=obj.event_id).first() if obj.event_id else None
        if event is None:
            return "-"
        return format_html(
            "<p>{} · {}</p>{}<details><summary>The whole event</summary>{}</details>",
            event.sender,
            event.type,
            pretty_json(event.pdu.get("content")),
            pretty_json(event.pdu),
        )

    @admin.display(description="around it")
    def context(self, obj: EventReport) -> SafeString | str:
        """The few timeline events before and after the reported one."""
        event = Event.objects.filter(event_id=obj.event_id).first() if obj.event_id else None
        if event is None or event.stream_ordering is None:
            return "-"
        timeline = Event.objects.filter(
            room_id=event.room_id,
            stream_ordering__isnull=False,
            outlier=False,
            rejected_reason__isnull=True,
            soft_failed=False,
        )
        before = list(
            timeline.filter(stream_ordering__lt=event.stream_ordering).order_by(
                "-stream_ordering"
            )[:CONTEXT_EVENTS]
        )
        after = list(
            timeline.filter(stream_ordering__gt=event.stream_ordering).order_by("stream_ordering")[
                :CONTEXT_EVENTS
            ]
        )
        rows = [*reversed(before), event, *after]
        return table(
            ["", "sender", "type", "content"],
            (
                (
                    "▶" if e.pk == event.pk else "",
                    e.sender,
                    e.type,
                    json.dumps(e.pdu.get("content"), sort_keys=True)[:300],
                )
                for e in rows
            ),
        )

    @admin.action(description="Mark the selected reports as resolved")
    def resolve(self, request: HttpRequest, queryset: QuerySet[EventReport]) -> None:
        run_bulk(
            self,
            request,
            queryset.filter(resolved=False),
            lambda report: resolve_report(request, report),
            "Resolved report(s)",
        )
