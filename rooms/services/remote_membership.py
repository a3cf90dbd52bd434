"""Joining a room this server is not in, through a server that is (Server-Server API,
"Joining Rooms": the joining server's part of the handshake).

A room is hosted here while a local user is joined to it; a join to it is local
(rooms.services.membership). Otherwise, and for a room this server has never known,
``do_remote_join`` asks the candidate servers in turn (those the client names, those
an alias's server names, the room ID's server, the server of whoever invited the user,
and the servers the room's last known state has members of):

1. ``GET /make_join`` with every room version this server supports: a template of the
   join, which must be the user's join of that room;
2. the join is built from it (the user's profile, the reason), hashed and signed;
3. ``PUT /v2/send_join?omit_members=true``: the resident server accepts the join and
   answers with the room's state before it and its auth chain (and the join as it
   countersigned it, for a restricted room), the member events left out if it can
   (``members_omitted``, with ``servers_in_room``);
4. rooms.services.incoming.receive_joined_room checks and stores all of it, the join
   as the room's newest event here; with members omitted, the room has partial state
   until a worker has fetched the rest (rooms.services.partial_state), which is queued
   once the join is committed.

A server that cannot be reached, refuses or answers with something malformed is
passed over for the next. The client is told 403 M_FORBIDDEN when a server refused
the join, 404 M_NOT_FOUND when none could help.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import transaction

from accounts.clock import now_ms
from federation.client import FederationError, send_request
from federation.keys import server_signing_key
from protocol.errors import MatrixError, forbidden, invalid_param, not_found
from protocol.events import Event as PDUEvent
from protocol.events import EventFormatError
from protocol.hashing import generate_opaque_event_id
from protocol.identifiers import is_valid_server_name, parse_room_alias, require_room_id
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.signing import hash_and_sign_event
from rooms.models import Event, Membership, Room, RoomAlias
from rooms.partial import retrying
from rooms.services import blocking, guests, partial_state
from rooms.services.events import SendContext, check_size_and_values
from rooms.services.incoming import InvalidPDU, receive_joined_room
from rooms.services.membership import (
    INVITE,
    JOIN,
    do_update_membership,
    is_local_user,
    profile_content,
)
from rooms.services.out_of_band import is_resident
from rooms.services.remote_directory import query_remote_alias

logger = logging.getLogger(__name__)

MEMBER = "m.room.member"
V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"
# The fields of a make_join template the join keeps; the joining server sets the rest
# (origin, origin_server_ts, event_id in room versions 1 and 2, hashes, signatures).
TEMPLATE_FIELDS = ("type", "room_id", "sender", "state_key", "content", "depth")
REFERENCE_FIELDS = ("prev_events", "auth_events")
# At most this many servers are asked, in order.
MAX_CANDIDATES = 20
# A send_join answer carries the room's whole state and auth chain: a big room's is tens
# of megabytes and takes the resident a while (Synapse allows it as much).
SEND_JOIN: dict[str, Any] = {"timeout_s": 300.0, "max_bytes": 512 * 1024 * 1024}
# An error code another server may pass on to our clients.
ERRCODE = re.compile(r"M_[A-Z_]{1,64}")


# --- where the join goes ------------------------------------------------------------------


@retrying
def do_join(
    room_id_or_alias: str,
    ctx: SendContext,
    *,
    via: Sequence[str] = (),
    reason: str | None = None,
    extra_content: Mapping[str, Any] | None = None,
) -> str:
    """POST /join/{roomIdOrAlias} and /rooms/{roomId}/join: the user joins the room,
    here if it is hosted here, else through another server; the room ID.

    ``extra_content`` is what else the client put in the request body: it goes into
    the member event's content, as Synapse does (the body is the event's content).
    """
    room_id, alias_servers = _resolve(room_id_or_alias)
    blocking.check_not_blocked(room_id)
    with transaction.atomic():
        # Decided under the room lock: the last local member cannot leave in between.
        room = Room.objects.select_for_update().filter(room_id=room_id).first()
        if room is not None and is_hosted_here(room):
            do_update_membership(
                room_id, ctx, ctx.sender, JOIN, reason=reason, extra_content=extra_content
            )
            return room_id
        if ctx.guest:
            # Only what this server knows of the room can let a guest in (as Synapse).
            guests.check_guest_may_join(room)
        servers = join_candidates(room_id, ctx.sender, [*via, *alias_servers], room)
    # No lock is held while other servers are asked.
    do_remote_join(room_id, ctx, servers, reason=reason, extra_content=extra_content)
    return room_id


def _resolve(room_id_or_alias: str) -> tuple[str, list[str]]:
    """A room ID as is, or the room an alias points at and the servers its server says
    are in it (a local alias: none needed)."""
    if room_id_or_alias.startswith("!"):
        return require_room_id(room_id_or_alias), []
    if not room_id_or_alias.startswith("#"):
        raise invalid_param("Expected a room ID or a room alias")
    try:
        alias = parse_room_alias(room_id_or_alias)
    except ValueError:
        raise invalid_param("Invalid room alias") from None
    if alias.domain != settings.SERVER_NAME:
        return query_remote_alias(str(alias))
    row = RoomAlias.objects.select_related("room").filter(alias=str(alias)).first()
    if row is None:
        raise not_found("Room alias not found")
    return row.room.room_id, []


def is_hosted_here(room: Room) -> bool:
    """Whether a join to the room is made here: a local user is joined to it, or
    nobody is (a room only this server has known, whose every member left)."""
    if room.current_state_group_id is None:
        return False
    if is_resident(room):
        return True
    return not Membership.objects.filter(room=room, membership=JOIN).exists()


def join_candidates(
    room_id: str, user_id: str, named: Iterable[str], room: Room | None
) -> list[str]:
    """The servers to ask, in order: those named (the client's ``via``, the alias's
    servers), the room ID's server, the server of the user's inviter, and the servers
    with members joined in the room's last known state; never this server."""
    candidates = list(named)
    if ":" in room_id:
        candidates.append(room_id.partition(":")[2])
    if room is not None:
        invite = Membership.objects.filter(room=room, user_id=user_id, membership=INVITE).first()
        if invite is not None:
            inviter = Event.objects.filter(event_id=invite.event_id).values_list(
                "sender", flat=True
            )
            candidates += [sender.partition(":")[2] for sender in inviter]
        joined = Membership.objects.filter(room=room, membership=JOIN).values_list(
            "user_id", flat=True
        )
        candidates += [member.partition(":")[2] for member in joined]
    kept = [
        server
        for server in dict.fromkeys(candidates)
        if server != settings.SERVER_NAME and is_valid_server_name(server)
    ]
    return kept[:MAX_CANDIDATES]


# --- the handshake --------------------------------------------------------------------------


@dataclass
class _Refused(Exception):
    """A server answered with an error (or with something that is not what was asked)."""

    server: str
    status: int | None
    errcode: str
    error: str
    # The room's version, when the server says this server cannot join it.
    room_version: str | None = None


def do_remote_join(
    room_id: str,
    ctx: SendContext,
    servers: Sequence[str],
    *,
    reason: str | None = None,
    extra_content: Mapping[str, Any] | None = None,
) -> Event:
    """Join ``ctx.sender`` to a room this server is not in, through the first of
    ``servers`` that lets it (see the module's docstring); the join's row."""
    if not is_local_user(ctx.sender):
        raise forbidden("Only users of this server can join through it")
    refusals: list[_Refused] = []
    for server in servers:
        try:
            return _join_through(server, room_id, ctx.sender, reason, extra_content or {})
        except _Refused as refusal:
            logger.info(
                "joining %s through %s: %s %s", room_id, server, refusal.errcode, refusal.error
            )
            refusals.append(refusal)
    raise _client_error(room_id, refusals)


def _client_error(room_id: str, refusals: list[_Refused]) -> MatrixError:
    """What the client is told when no server let the user join: a remote server's
    errcode and status (and the room version it names), never its text."""
    for refusal in refusals:
        if refusal.errcode == "M_INCOMPATIBLE_ROOM_VERSION":
            extra = {"room_version": refusal.room_version} if refusal.room_version else {}
            return MatrixError(
                "M_INCOMPATIBLE_ROOM_VERSION",
                f"{refusal.server} says this server does not support the room's version",
                status=400,
                **extra,
            )
    for refusal in refusals:
        if refusal.status == 403 or refusal.errcode in (
            "M_FORBIDDEN",
            "M_UNABLE_TO_AUTHORISE_JOIN",
            "M_UNABLE_TO_GRANT_JOIN",
        ):
            return forbidden(f"{refusal.server} refused the join: {refusal.error}"[:500])
    for refusal in refusals:
        # Another refusal of the request (a 4xx of the server's own): its status and
        # errcode reach the client, as Synapse passes them through; the text does not.
        if (
            refusal.status is not None
            and 400 <= refusal.status < 500
            and refusal.status not in (401, 404, 408, 429)
            and ERRCODE.fullmatch(refusal.errcode)
        ):
            return MatrixError(
                refusal.errcode,
                f"{refusal.server} refused the join ({refusal.errcode})",
                status=refusal.status,
            )
    tried = ", ".join(refusal.server for refusal in refusals) or "no server"
    return not_found(f"No server could be found to join {room_id} through (tried {tried})")


def _join_through(
    server: str,
    room_id: str,
    user_id: str,
    reason: str | None,
    extra_content: Mapping[str, Any],
) -> Event:
    room_version, template = _make_join(server, room_id, user_id)
    join = _join_event(server, room_version, template, user_id, reason, extra_content)
    answer = _send_join(server, room_id, join)
    join_pdu = _join_as_countersigned(server, answer, join)
    servers_in_room = None
    try:
        if answer.get("members_omitted") is True:
            servers_in_room = partial_state.checked_servers(answer.get("servers_in_room"), server)
        row = receive_joined_room(
            join_pdu,
            answer["state"],
            answer["auth_chain"],
            origin=server,
            servers_in_room=servers_in_room,
        )
    except InvalidPDU as exc:
        raise _Refused(
            server, None, exc.errcode, f"its answer does not hold: {exc.error}"
        ) from None
    if row.outlier or row.rejected_reason is not None or row.soft_failed:
        raise _Refused(
            server,
            None,
            "M_FORBIDDEN",
            f"the state it gave refuses the join: {row.rejected_reason}",
        )
    if servers_in_room is not None:
        from rooms.tasks import process_inbound_pdus

        # The worker that takes the room's inbound queue fetches the rest of the state
        # first.
        transaction.on_commit(lambda: process_inbound_pdus.delay(room_id))
    return row


def _make_join(server: str, room_id: str, user_id: str) -> tuple[RoomVersion, dict[str, Any]]:
    """GET /make_join: the room's version and the template, checked as the spec says the
    joining server must (the user's join of this room)."""
    query = urlencode([("ver", version) for version in KNOWN_ROOM_VERSIONS])
    path = f"{V1}/make_join/{_segment(room_id)}/{_segment(user_id)}?{query}"
    answer = _call(server, "GET", path)
    if not isinstance(answer, dict) or not isinstance(answer.get("event"), dict):
        raise _malformed(server, "make_join answered without a template")
    version_id = answer.get("room_version", "1")
    room_version = KNOWN_ROOM_VERSIONS.get(version_id) if isinstance(version_id, str) else None
    if room_version is None:
        raise _malformed(server, f"make_join named an unknown room version {version_id!r}")
    known = Room.objects.filter(room_id=room_id).values_list("room_version", flat=True).first()
    if known is not None and known != room_version.identifier:
        raise _malformed(server, f"the room's version is {known}, not {version_id}")
    template = answer["event"]
    content = template.get("content")
    if (
        template.get("room_id") != room_id
        or template.get("sender") != user_id
        or template.get("state_key") != user_id
        or template.get("type") != MEMBER
        or not isinstance(content, dict)
        or content.get("membership") != JOIN
    ):
        raise _malformed(server, "the make_join template is not the user's join of the room")
    return room_version, template


def _join_event(
    server: str,
    room_version: RoomVersion,
    template: dict[str, Any],
    user_id: str,
    reason: str | None,
    extra_content: Mapping[str, Any],
) -> PDUEvent:
    """The join built from the template: the user's profile, the client's content and
    reason added, this
    server's origin, timestamp and (room versions 1 and 2) event ID, hashed and signed."""
    pdu: dict[str, Any] = {key: template[key] for key in TEMPLATE_FIELDS if key in template}
    for key in REFERENCE_FIELDS:
        pdu[key] = template.get(key)
    content = dict(template["content"])
    content.update(profile_content(user_id))
    content.update(extra_content)
    if reason is not None:
        content["reason"] = reason
    pdu["content"] = content
    pdu["origin_server_ts"] = now_ms()
    if not room_version.updated_redaction_rules:
        pdu["origin"] = settings.SERVER_NAME
    if room_version.event_format.event_id_in_pdu:
        pdu["event_id"] = generate_opaque_event_id(settings.SERVER_NAME)
    try:
        check_size_and_values(pdu, room_version)
        event = PDUEvent(
            hash_and_sign_event(pdu, settings.SERVER_NAME, server_signing_key(), room_version),
            room_version,
        )
        # Cited events and depth in the room version's format, and an event ID.
        _ = (event.prev_event_ids, event.auth_event_ids, event.depth, event.event_id)
    except (MatrixError, EventFormatError, ValueError, TypeError) as exc:
        raise _malformed(server, f"the make_join template is malformed: {exc}") from None
    return event


def _send_join(server: str, room_id: str, join: PDUEvent) -> dict[str, Any]:
    """PUT /v2/send_join (a server that only has v1 is asked there); the answer, with
    ``state`` and ``auth_chain`` lists."""
    where = f"{_segment(room_id)}/{_segment(join.event_id)}"
    try:
        answer = _call(
            server, "PUT", f"{V2}/send_join/{where}?omit_members=true", join.pdu, **SEND_JOIN
        )
    except _Refused as refusal:
        if refusal.errcode != "M_UNRECOGNIZED":
            raise
        old = _call(server, "PUT", f"{V1}/send_join/{where}", join.pdu, **SEND_JOIN)
        # v1 answers [200, {...}].
        if not isinstance(old, list) or len(old) != 2 or not isinstance(old[1], dict):
            raise _malformed(server, "send_join v1 answered with something else") from None
        answer = old[1]
    if not isinstance(answer, dict):
        raise _malformed(server, "send_join answered with something that is not an object")
    if not isinstance(answer.get("state"), list) or not isinstance(answer.get("auth_chain"), list):
        raise _malformed(server, "send_join answered without state and auth_chain")
    return answer


def _join_as_countersigned(server: str, answer: dict[str, Any], join: PDUEvent) -> dict[str, Any]:
    """The join as the resident server sent it back (signed by it too, for a restricted
    room), if it did: it must be the same event."""
    returned = answer.get("event")
    if returned is None:
        return join.pdu
    if not isinstance(returned, dict):
        raise _malformed(server, "send_join answered with an event that is not an object")
    try:
        same = PDUEvent(returned, join.room_version).event_id == join.event_id
    except EventFormatError:
        same = False
    if not same:
        raise _malformed(server, "send_join answered with another event than the join")
    return returned


def _segment(value: str) -> str:
    return quote(value, safe="")


def _call(
    server: str,
    method: str,
    path: str,
    content: Any = None,
    *,
    timeout_s: float | None = None,
    max_bytes: int | None = None,
) -> Any:
    """A signed request to ``server``; its JSON answer, or _Refused."""
    try:
        response = send_request(
            server, method, path, content=content, timeout_s=timeout_s, max_bytes=max_bytes
        )
    except FederationError as exc:
        raise _Refused(server, None, "M_UNKNOWN", f"cannot be reached: {exc}") from None
    try:
        answer = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        answer = None
    if response.status != 200:
        errcode = answer.get("errcode") if isinstance(answer, dict) else None
        error = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(errcode, str):
            # An endpoint the server does not have, behind a proxy that says so plainly.
            errcode = "M_UNRECOGNIZED" if response.status in (404, 405) else "M_UNKNOWN"
        version = answer.get("room_version") if isinstance(answer, dict) else None
        raise _Refused(
            server,
            response.status,
            errcode,
            error if isinstance(error, str) else f"answered {response.status}",
            version if isinstance(version, str) and len(version) <= 64 else None,
        )
    if answer is None:
        raise _malformed(server, "answered with something that is not JSON")
    return answer


def _malformed(server: str, why: str) -> _Refused:
    return _Refused(server, None, "M_UNKNOWN", why)
