"""Out-of-band memberships: a local user's membership in a room this server is not in.

An invite received over federation (PUT /invite), the user's rejection of it, a knock sent
through another server (make_knock/send_knock) and its rescinding all concern a room whose
graph and state this server does not have. Such an event is stored as Synapse stores it:
an outlier (no state, never in the timeline) in a ``Room`` row made for the room with its
version, with a stream position all the same (rooms.storage, "out-of-band memberships"),
and the user's ``Membership`` row points at it, so /sync lists the room under ``invite``,
``knock`` or ``leave``. What the other server said of the room (its stripped state, the
servers to ask) is kept beside it (rooms.models.OutOfBandMembership). Once the server
joins the room (rooms.services.incoming.receive_joined_room) the room's state is here and
the normal paths take over.

Leaving such a room (rejecting the invite, rescinding the knock) goes through a server in
the room: GET /make_leave, then PUT /send_leave (v2, else v1), asking the inviter's server,
the servers the knock went through and the room ID's server in turn. When none of them
can be had, the invite is rejected here alone, as Synapse does, with a leave made and
signed here, so the user is not left with an invite they cannot get rid of.

Knocking on a room this server is not in (``do_remote_knock``) is the same handshake with
/make_knock and /send_knock; the answer's ``knock_room_state`` is the stripped state kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import transaction

from accounts.clock import now_ms
from federation.client import FederationError, send_request
from federation.keys import server_signing_key
from protocol.errors import MatrixError
from protocol.events import Event as PDUEvent
from protocol.events import EventFormatError
from protocol.hashing import generate_opaque_event_id
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.signing import hash_and_sign_event
from rooms import event_cache, hooks
from rooms.models import Event, Membership, OutOfBandMembership, Room
from rooms.serialize import STRIPPED_STATE_TYPES
from rooms.services.events import build_event, check_size_and_values, insert_row
from rooms.services.incoming import InvalidPDU, checked_event
from rooms.state import load_state
from rooms.storage import is_out_of_band
from streams import notifier
from streams import positions as streams

logger = logging.getLogger(__name__)

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"
MEMBER = "m.room.member"
CREATE = "m.room.create"
# The stripped state entries kept of what another server sends (a room's worth).
MAX_STRIPPED_STATE = 50


def server_of(identifier: str) -> str | None:
    """The server name of a user ID (or of a room ID that has one; room version 12's do
    not)."""
    _, sep, server_name = identifier.partition(":")
    return server_name if sep and server_name else None


def is_resident(room: Room | None) -> bool:
    """This server takes part in the room: one of its users is joined to it."""
    if room is None:
        return False
    return Membership.objects.filter(
        room=room, membership="join", user_id__endswith=":" + settings.SERVER_NAME
    ).exists()


# --- stripped state -------------------------------------------------------------------------


def stripped(pdu: Mapping[str, Any]) -> dict[str, Any]:
    """A state event pruned to the stripped state schema (Client-Server API, "Stripped
    state": only ``type``, ``state_key``, ``sender`` and ``content``); servers must not
    pass on what they receive over federation as it is."""
    return {key: pdu[key] for key in ("type", "state_key", "sender", "content") if key in pdu}


def _is_stripped_shape(entry: Any) -> bool:
    return (
        isinstance(entry, Mapping)
        and isinstance(entry.get("type"), str)
        and isinstance(entry.get("state_key"), str)
        and isinstance(entry.get("sender"), str)
        and isinstance(entry.get("content"), dict)
    )


def checked_room_state(
    entries: Any,
    room_version: RoomVersion,
    room_id: str,
    *,
    strict: bool,
    keep_unchecked: bool,
    what: str,
) -> list[dict[str, Any]]:
    """The stripped state of ``invite_room_state`` or ``knock_room_state`` as another server
    sent it: since Matrix 1.16 full PDUs of the room's version, signed, of this room, the
    ``m.room.create`` event among them. ``strict``: one that fails refuses the whole
    (400 M_INVALID_PARAM). Otherwise an entry that fails is dropped, or, with
    ``keep_unchecked``, kept in its stripped form when it has that shape (servers older
    than 1.16 sent stripped events: for invites to rooms of versions 1 to 11 "servers
    SHOULD warn ... rather than error")."""
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise MatrixError("M_INVALID_PARAM", f"'{what}' must be an array")
    kept: list[dict[str, Any]] = []
    has_create = False
    for entry in entries[:MAX_STRIPPED_STATE]:
        try:
            event = checked_event(entry, room_version)
            if event.room_id != room_id:
                raise InvalidPDU(f"an event of {event.room_id}")
            if not event.is_state():
                raise InvalidPDU("not a state event")
        except (InvalidPDU, EventFormatError) as exc:
            if strict:
                raise MatrixError("M_INVALID_PARAM", f"'{what}': {exc}") from None
            logger.warning("%s of %s: an entry fails validation: %s", what, room_id, exc)
            if keep_unchecked and _is_stripped_shape(entry):
                kept.append(stripped(entry))
            continue
        has_create = has_create or event.type == CREATE
        kept.append(stripped(event.pdu))
    if strict and not has_create:
        raise MatrixError("M_INVALID_PARAM", f"'{what}' lacks the m.room.create event")
    return kept


def room_state_pdus(
    state_group: int | None, extra_keys: Iterable[tuple[str, str]] = ()
) -> list[dict[str, Any]]:
    """The PDUs of the stripped state types (and of ``extra_keys``) in a state group: what
    this server sends as ``invite_room_state`` and ``knock_room_state`` (full PDUs, as
    Matrix 1.16 asks, the create event among them)."""
    state = load_state(state_group)
    keys = [(t, "") for t in STRIPPED_STATE_TYPES] + list(extra_keys)
    wanted = [state[key] for key in dict.fromkeys(keys) if key in state]
    events = event_cache.get_events(wanted)
    return [events[event_id].pdu for event_id in wanted if event_id in events]


# --- storing --------------------------------------------------------------------------------


def _room_for(event: PDUEvent, stripped_state: Sequence[Mapping[str, Any]]) -> Room:
    """The room's row, made (with no state) if the room is new here."""
    room = Room.objects.select_for_update().filter(room_id=event.room_id).first()
    if room is not None:
        if room.room_version != event.room_version.identifier:
            raise MatrixError(
                "M_INCOMPATIBLE_ROOM_VERSION",
                f"{event.room_id} is a room of version {room.room_version} here",
                room_version=room.room_version,
            )
        return room
    creator = next(
        (entry.get("sender") for entry in stripped_state if entry.get("type") == CREATE), None
    )
    room, _ = Room.objects.get_or_create(
        room_id=event.room_id,
        defaults={
            "room_version": event.room_version.identifier,
            "creator": creator if isinstance(creator, str) else "",
        },
    )
    return Room.objects.select_for_update().get(pk=room.pk)


def do_store_out_of_band_membership(
    event: PDUEvent,
    *,
    stripped_state: Sequence[Mapping[str, Any]] = (),
    servers: Iterable[str] = (),
) -> Event:
    """Store a local user's membership event in a room this server is not in, and make it
    the user's membership (see the module's docstring). Takes the room lock. Idempotent:
    an event stored already is returned as it is.

    An invite runs the event-persisting hooks (push rules: ``.m.rule.invite_for_me``) as
    an event of a room with no members here.
    """
    user_id = event.state_key
    if event.type != MEMBER or user_id is None or event.membership is None:
        raise InvalidPDU("an out-of-band membership must be an m.room.member event")
    with transaction.atomic():
        room = _room_for(event, stripped_state)
        stored = Event.objects.filter(event_id=event.event_id).first()
        if stored is not None:
            return stored
        finishes = []
        if event.membership == "invite":
            finishes = hooks.event_persisting(hooks.PersistingEvent(room, event, None, None, None))
        position = streams.next_position(streams.EVENTS)
        row = insert_row(room, event, stream_ordering=position, outlier=True)
        OutOfBandMembership.objects.create(
            room=room,
            event_id=event.event_id,
            user_id=user_id,
            stripped_state=list(stripped_state),
            servers=list(dict.fromkeys(s for s in servers if s != settings.SERVER_NAME)),
        )
        Membership.objects.bulk_create(
            [
                Membership(
                    room=room,
                    user_id=user_id,
                    membership=event.membership,
                    event_id=event.event_id,
                    stream_ordering=position,
                    forgotten=False,
                )
            ],
            update_conflicts=True,
            unique_fields=["room", "user_id"],
            update_fields=["membership", "event_id", "stream_ordering", "forgotten"],
        )
        for finish in finishes:
            finish(position)
        transaction.on_commit(
            lambda: notifier.notify_stream_moved(streams.EVENTS, position, None, [user_id])
        )
        return row


def current_out_of_band(room_id: str, user_id: str) -> tuple[Event, OutOfBandMembership] | None:
    """The user's membership of the room, if it is out of band (their Membership row
    points at an out-of-band event): the event's row and what is kept beside it."""
    membership = (
        Membership.objects.filter(room__room_id=room_id, user_id=user_id)
        .values_list("event_id", flat=True)
        .first()
    )
    if membership is None:
        return None
    row = Event.objects.filter(event_id=membership).first()
    kept = OutOfBandMembership.objects.filter(event_id=membership).first()
    if row is None or kept is None or not is_out_of_band(row):
        return None
    return row, kept


# --- the make_*/send_* handshakes ----------------------------------------------------------


def _segment(value: str) -> str:
    return quote(value, safe="")


def _answer(server: str, method: str, path: str, content: Any = None) -> tuple[int, Any]:
    """Ask ``server``; its status and parsed JSON answer (None when it is not JSON).
    FederationError when it cannot be reached."""
    response = send_request(server, method, path, content=content)
    try:
        body = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        body = None
    return response.status, body


class Refusal(Exception):
    """A server answered a membership handshake with an error, or with nonsense."""

    def __init__(self, server: str, status: int | None, body: Any, message: str) -> None:
        super().__init__(f"{server}: {message}")
        self.server = server
        self.status = status
        self.errcode = body.get("errcode") if isinstance(body, dict) else None
        self.room_version = body.get("room_version") if isinstance(body, dict) else None


def _json_answer(server: str, method: str, path: str, content: Any = None) -> Any:
    status, body = _answer(server, method, path, content)
    if status != 200:
        raise Refusal(server, status, body, f"{method} {path.split('?')[0]} answered {status}")
    return body


def client_error(failures: Sequence[Exception], action: str) -> MatrixError:
    """The client's error when no server let a handshake through (a remote server's error
    is wrapped, never passed through): a refusal is 403 M_FORBIDDEN, a room version this
    server cannot take 400 M_INCOMPATIBLE_ROOM_VERSION, a room no server knows 404
    M_NOT_FOUND; servers that could not be reached, 502."""
    refusals = [f for f in failures if isinstance(f, Refusal)]
    for refusal in refusals:
        if refusal.errcode == "M_INCOMPATIBLE_ROOM_VERSION":
            extra = {"room_version": refusal.room_version} if refusal.room_version else {}
            return MatrixError(
                "M_INCOMPATIBLE_ROOM_VERSION",
                f"{refusal.server} says the room's version is not supported here",
                **extra,
            )
    if any(r.status == 403 for r in refusals):
        server = next(r.server for r in refusals if r.status == 403)
        return MatrixError("M_FORBIDDEN", f"{server} refused to let you {action}")
    if any(r.status == 404 for r in refusals):
        return MatrixError("M_NOT_FOUND", "No server in the room knows it")
    if not failures:
        return MatrixError("M_NOT_FOUND", "No server in the room is known")
    return MatrixError("M_UNKNOWN", f"Could not {action} through any server", status=502)


def checked_template(
    answer: Any, room_id: str, user_id: str, membership: str, room_version: RoomVersion | None
) -> tuple[RoomVersion, dict[str, Any]]:
    """A make_leave / make_knock answer's room version and event template, if the
    template is what the spec says the asking server must check it is: an m.room.member
    of ``membership`` for the user, sent by the user, in the room."""
    if not isinstance(answer, dict) or not isinstance(answer.get("event"), dict):
        raise ValueError("the answer has no event template")
    version_id = answer.get("room_version", "1")
    version = KNOWN_ROOM_VERSIONS.get(version_id) if isinstance(version_id, str) else None
    if version is None:
        raise ValueError(f"room version {version_id!r} is not supported here")
    if room_version is not None and version != room_version:
        raise ValueError(f"room version {version_id} is not the room's")
    template = answer["event"]
    content = template.get("content")
    if (
        template.get("type") != MEMBER
        or template.get("room_id") != room_id
        or template.get("sender") != user_id
        or template.get("state_key") != user_id
        or not isinstance(content, dict)
        or content.get("membership") != membership
    ):
        raise ValueError(f"the template is not a {membership} of {user_id} in {room_id}")
    return version, template


def signed_from_template(
    template: Mapping[str, Any], room_version: RoomVersion, extra_content: Mapping[str, Any]
) -> PDUEvent:
    """Our event from another server's template: its fields as given (room, sender,
    prev_events, auth_events, depth), our timestamp, hashed and signed here."""
    pdu = {
        key: value
        for key, value in template.items()
        if key not in ("signatures", "hashes", "unsigned", "event_id", "origin")
    }
    pdu["content"] = {**template["content"], **extra_content}
    pdu["origin_server_ts"] = now_ms()
    if not room_version.updated_redaction_rules:
        pdu["origin"] = settings.SERVER_NAME
    if room_version.event_format.event_id_in_pdu:
        pdu["event_id"] = generate_opaque_event_id(settings.SERVER_NAME)
    check_size_and_values(pdu, room_version)
    signed = hash_and_sign_event(pdu, settings.SERVER_NAME, server_signing_key(), room_version)
    try:
        event = PDUEvent(signed, room_version)
        event.event_id  # noqa: B018 (a template that cannot make an event fails here)
    except EventFormatError as exc:
        raise ValueError(f"the template makes no event: {exc}") from None
    return event


def _send_membership(server: str, kind: str, event: PDUEvent, *, v2: bool) -> Any:
    """PUT /send_leave or /send_knock of ``event``; the answer's body."""
    prefix = V2 if v2 else V1
    path = f"{prefix}/send_{kind}/{_segment(event.room_id)}/{_segment(event.event_id)}"
    return _json_answer(server, "PUT", path, event.pdu)


def candidate_servers(room_id: str, first: Iterable[str]) -> list[str]:
    """The servers to ask, in order: ``first``, then the room ID's server (if it names
    one), never this server."""
    room_server = server_of(room_id)
    servers = [*first, *([room_server] if room_server else [])]
    return [s for s in dict.fromkeys(servers) if s and s != settings.SERVER_NAME]


# --- leaving: rejecting an invite, rescinding a knock ---------------------------------------


def do_remote_leave(room_id: str, user_id: str, *, reason: str | None = None) -> Event:
    """Reject a remote invite or rescind a knock made through another server: the user's
    membership of the room is out of band. Through the first server that lets the leave
    through; failing every one, a leave made here (see the module's docstring)."""
    current = current_out_of_band(room_id, user_id)
    if current is None:
        raise MatrixError("M_FORBIDDEN", "You are not invited to this room and have not knocked")
    row, kept = current
    room_version = KNOWN_ROOM_VERSIONS[row.room.room_version]
    extra = {"reason": reason} if reason is not None else {}
    servers = candidate_servers(room_id, kept.servers)
    failures: list[Exception] = []
    for server in servers:
        try:
            event = _leave_through(server, room_id, user_id, room_version, extra)
        except (FederationError, Refusal, ValueError, MatrixError) as exc:
            logger.info("leave of %s through %s: %s", room_id, server, exc)
            failures.append(exc)
            continue
        return do_store_out_of_band_membership(event, servers=servers)
    logger.warning("leave of %s: no server could be had (%s); left here only", room_id, failures)
    return do_store_out_of_band_membership(
        _local_leave(row, room_version, extra), servers=kept.servers
    )


def _leave_through(
    server: str,
    room_id: str,
    user_id: str,
    room_version: RoomVersion,
    extra_content: Mapping[str, Any],
) -> PDUEvent:
    path = f"{V1}/make_leave/{_segment(room_id)}/{_segment(user_id)}"
    answer = _json_answer(server, "GET", path)
    version, template = checked_template(answer, room_id, user_id, "leave", room_version)
    event = signed_from_template(template, version, extra_content)
    try:
        _send_membership(server, "leave", event, v2=True)
    except Refusal as exc:
        # Servers without v2 (spec: fall back to v1 on a 400 or 404).
        if exc.status not in (400, 404) or exc.errcode not in (None, "M_UNRECOGNIZED"):
            raise
        _send_membership(server, "leave", event, v2=False)
    return event


def _local_leave(
    previous: Event, room_version: RoomVersion, extra_content: Mapping[str, Any]
) -> PDUEvent:
    """A leave made and signed here, on the user's out-of-band membership (Synapse's
    "locally reject"): it follows the invite or knock and cites it as its auth event.
    No other server hears of it."""
    before = PDUEvent(previous.pdu, room_version, event_id=previous.event_id)
    user_id = previous.state_key or ""
    return build_event(
        room_version,
        room_id=previous.room.room_id,
        sender=user_id,
        event_type=MEMBER,
        content={"membership": "leave", **extra_content},
        state_key=user_id,
        prev_events=[before],
        auth_events=[before],
        depth=before.depth + 1,
    )


# --- knocking through another server --------------------------------------------------------


def knock_versions() -> list[str]:
    """The room versions this server can knock in (knocking came with version 7)."""
    return [v.identifier for v in KNOWN_ROOM_VERSIONS.values() if v.knock_join_rule]


def do_remote_knock(
    room_id: str, user_id: str, servers: Sequence[str], *, reason: str | None = None
) -> Event:
    """Knock on a room this server is not in, through the first of ``servers`` (then the
    room ID's server) that lets the knock through: make_knock, sign, send_knock; the knock
    is stored out of band with the ``knock_room_state`` the server answered."""
    extra = {"reason": reason} if reason is not None else {}
    candidates = candidate_servers(room_id, servers)
    failures: list[Exception] = []
    for server in candidates:
        try:
            event, state = _knock_through(server, room_id, user_id, extra)
        except (FederationError, Refusal, ValueError, MatrixError) as exc:
            logger.info("knock on %s through %s: %s", room_id, server, exc)
            failures.append(exc)
            continue
        others = [s for s in candidates if s != server]
        return do_store_out_of_band_membership(
            event, stripped_state=state, servers=[server, *others]
        )
    raise client_error(failures, "knock")


def _knock_through(
    server: str, room_id: str, user_id: str, extra_content: Mapping[str, Any]
) -> tuple[PDUEvent, list[dict[str, Any]]]:
    query = urlencode([("ver", v) for v in knock_versions()])
    path = f"{V1}/make_knock/{_segment(room_id)}/{_segment(user_id)}?{query}"
    answer = _json_answer(server, "GET", path)
    known = Room.objects.filter(room_id=room_id).values_list("room_version", flat=True).first()
    version, template = checked_template(
        answer, room_id, user_id, "knock", KNOWN_ROOM_VERSIONS[known] if known else None
    )
    if not version.knock_join_rule:
        raise ValueError(f"room version {version.identifier} has no knocking")
    event = signed_from_template(template, version, extra_content)
    answer = _send_membership(server, "knock", event, v2=False)
    if not isinstance(answer, dict):
        raise ValueError("the send_knock answer is not an object")
    # "Entries which are improperly signed or formatted SHOULD be removed".
    state = checked_room_state(
        answer.get("knock_room_state"),
        version,
        room_id,
        strict=False,
        keep_unchecked=False,
        what="knock_room_state",
    )
    return event, state
