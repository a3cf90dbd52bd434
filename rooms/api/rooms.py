"""Room creation, membership, state, sending, redaction and history endpoints."""

from __future__ import annotations

import base64
from bisect import bisect_right
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.selectors import check_not_suspended
from accounts.services.filters import check_room_event_filter
from config.matrix_api import Body, MatrixView, ok, parse_json
from config.ratelimit import check_ratelimit
from protocol.errors import MatrixError, invalid_param, not_found
from protocol.identifiers import (
    check_bounded,
    is_valid_room_id,
    is_valid_server_name,
    is_valid_user_id,
    parse_room_alias,
)
from rooms import history, partial, relations, selectors
from rooms.api.common import (
    check_room_id,
    fake_event_id,
    resolve_room_and_servers,
    send_context,
)
from rooms.models import Room
from rooms.serialize import client_events
from rooms.services import (
    aliases,
    backfill,
    creation,
    membership,
    redaction,
    remote_invites,
    remote_membership,
    third_party_invites,
)
from rooms.services.events import content_size_ok, do_send_event

PRESET_NAMES = tuple(creation.PRESETS)


def _user_ids(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MatrixError("M_BAD_JSON", f"'{key}' must be a list of user IDs")
    for user_id in value:
        if not is_valid_user_id(user_id):
            raise MatrixError("M_INVALID_PARAM", f"Invalid user ID {user_id!r}")
    return list(value)


def parse_invite_3pid(value: Any) -> dict[str, str]:
    """One third-party invite (definitions/invite_3pid.yaml): id_server,
    id_access_token, medium and address, all strings."""
    if not isinstance(value, dict):
        raise MatrixError("M_BAD_JSON", "A third-party invite must be an object")
    body = Body(value)
    keys = ("id_server", "id_access_token", "medium", "address")
    return {key: body.req_str(key) for key in keys}


def parse_create_room(body: Body, creator: str) -> creation.RoomSpec:
    visibility = body.str("visibility", default="private")
    if visibility not in ("public", "private"):
        raise MatrixError("M_BAD_JSON", "'visibility' must be 'public' or 'private'")
    preset = body.str("preset")
    if preset is not None and preset not in PRESET_NAMES:
        raise MatrixError("M_BAD_JSON", f"'preset' must be one of {', '.join(PRESET_NAMES)}")
    alias_name = body.str("room_alias_name")
    if alias_name is not None:
        if not alias_name or ":" in alias_name or any(c.isspace() for c in alias_name):
            raise MatrixError("M_INVALID_PARAM", "Invalid room alias name")
        try:
            # The whole alias, with this server's name, must fit the 255-byte limit.
            parse_room_alias(f"#{alias_name}:{settings.SERVER_NAME}")
        except ValueError:
            raise MatrixError("M_INVALID_PARAM", "Invalid room alias name") from None
    initial_state = []
    for item in body.list("initial_state") or []:
        if not isinstance(item, dict):
            raise MatrixError("M_BAD_JSON", "'initial_state' items must be objects")
        event_type, state_key, content = (
            item.get("type"),
            item.get("state_key", ""),
            item.get("content"),
        )
        if not isinstance(event_type, str) or not isinstance(state_key, str):
            raise MatrixError("M_BAD_JSON", "'initial_state' items need a string 'type'")
        if not isinstance(content, dict):
            raise MatrixError("M_BAD_JSON", "'initial_state' items need an object 'content'")
        check_bounded(event_type, "An 'initial_state' type", errcode="M_BAD_JSON")
        check_bounded(state_key, "An 'initial_state' state_key", errcode="M_BAD_JSON")
        membership.check_member_event(event_type, state_key, content)
        initial_state.append((event_type, state_key, content))
    invite = _user_ids(body.data.get("invite"), "invite")
    return creation.RoomSpec(
        creator=creator,
        room_version=creation.parse_room_version(body.data.get("room_version")),
        visibility=visibility or "private",
        preset=preset,
        room_alias_name=alias_name,
        name=body.str("name"),
        topic=body.str("topic"),
        invite=[u for u in invite if u != creator],
        is_direct=body.bool("is_direct"),
        creation_content=body.dict("creation_content") or {},
        initial_state=initial_state,
        power_level_content_override=body.dict("power_level_content_override"),
    )


class CreateRoomView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/createRoom"""
        check_not_suspended(request.user)
        body = self.body(request)
        spec = parse_create_room(body, request.user.user_id)
        invite_3pid = [parse_invite_3pid(item) for item in body.list("invite_3pid") or []]
        aliases.check_initial_canonical_alias(spec.initial_state, spec.room_alias_name)
        if request.user.is_shadow_banned:
            # As Synapse: the room is created, its invites silently go nowhere.
            spec.invite, invite_3pid = [], []
        room = creation.do_create_room(spec)
        # As Synapse: once the room exists, each third-party invite in turn; a failure
        # reaches the client (the room stays).
        for invite in invite_3pid:
            third_party_invites.do_invite_by_threepid(
                room.room_id, send_context(request), **invite
            )
        return ok({"room_id": room.room_id})


def _reason(body: Body) -> str | None:
    return body.str("reason")


# Keys of a join body that are not member event content: the request's own fields, and
# those the server decides.
_NOT_JOIN_CONTENT = frozenset(
    {"third_party_signed", "reason", "membership", "join_authorised_via_users_server"}
)


def _join_content(body: Body) -> dict[str, Any]:
    """The rest of a /join body, kept in the member event's content: the spec defines
    ``reason`` (added by the service) and ``third_party_signed``; Synapse makes the whole
    body the event's content (sytest "can join a room with custom content")."""
    return {key: value for key, value in body.data.items() if key not in _NOT_JOIN_CONTENT}


def _servers_named(request: Request) -> list[str]:
    """The servers a client names to join through: ``via`` (Matrix 1.12) and the
    deprecated ``server_name``, each possibly repeated."""
    servers = request.query_params.getlist("via") + request.query_params.getlist("server_name")
    for server in servers:
        if not is_valid_server_name(server):
            raise MatrixError("M_INVALID_PARAM", f"Invalid server name {server!r}")
    return servers


class JoinView(MatrixView):
    requires_auth = True
    # The guest access module lists POST /rooms/{roomId}/join; /join/{roomIdOrAlias} is
    # the same join by another path (Synapse lets guests use both, and clients do).
    guest_methods = frozenset({"POST"})

    def post(self, request: Request, room_id_or_alias: str) -> Response:
        """POST /_matrix/client/v3/join/{roomIdOrAlias} (and /rooms/{roomId}/join)"""
        check_not_suspended(request.user)
        body = self.body(request, allow_empty=True)
        if body.data.get("third_party_signed") is not None:
            # Redeeming a third-party invite: the invite is made first (join API).
            signed = third_party_invites.check_third_party_signed(
                request.user.user_id, body.data["third_party_signed"]
            )
            room_id, _ = resolve_room_and_servers(room_id_or_alias)
            third_party_invites.do_exchange_third_party_invite(
                room_id, signed["sender"], request.user.user_id, signed
            )
        room_id = remote_membership.do_join(
            room_id_or_alias,
            send_context(request),
            via=_servers_named(request),
            reason=_reason(body),
            extra_content=_join_content(body),
        )
        return ok({"room_id": room_id})


class RoomJoinView(JoinView):
    def post(self, request: Request, room_id: str) -> Response:  # type: ignore[override]
        """POST /_matrix/client/v3/rooms/{roomId}/join"""
        return super().post(request, check_room_id(room_id))


class KnockView(MatrixView):
    requires_auth = True

    def post(self, request: Request, room_id_or_alias: str) -> Response:
        """POST /_matrix/client/v3/knock/{roomIdOrAlias}"""
        check_not_suspended(request.user)
        body = self.body(request, allow_empty=True)
        room_id, servers = resolve_room_and_servers(room_id_or_alias)
        servers = [*_servers_named(request), *servers]
        membership.do_knock(room_id, send_context(request), servers=servers, reason=_reason(body))
        return ok({"room_id": room_id})


class LeaveView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"POST"})

    def post(self, request: Request, room_id: str) -> Response:
        """POST /_matrix/client/v3/rooms/{roomId}/leave"""
        body = self.body(request, allow_empty=True)
        check_room_id(room_id)
        user_id = request.user.user_id
        selectors.get_room(room_id)
        membership.do_update_membership(
            room_id, send_context(request), user_id, membership.LEAVE, reason=_reason(body)
        )
        return ok()


class ForgetView(MatrixView):
    requires_auth = True

    def post(self, request: Request, room_id: str) -> Response:
        """POST /_matrix/client/v3/rooms/{roomId}/forget"""
        check_room_id(room_id)
        membership.do_forget_room(room_id, request.user.user_id)
        return ok()


class TargetedMembershipView(MatrixView):
    """invite, kick, ban and unban: a membership change of another user."""

    requires_auth = True
    membership_value = ""
    operation = ""

    def post(self, request: Request, room_id: str) -> Response:
        """POST /_matrix/client/v3/rooms/{roomId}/{invite,kick,ban,unban}"""
        body = self.body(request)
        check_room_id(room_id)
        if self.operation == "invite" and "user_id" not in body and "medium" in body:
            return self.invite_by_threepid(request, room_id, body)
        target = body.req_str("user_id")
        if not is_valid_user_id(target):
            raise MatrixError("M_INVALID_PARAM", "Invalid user ID")
        room = selectors.get_room(room_id)
        if self.operation == "unban":
            row = selectors.membership_row(room, target)
            if row is None or row.membership != "ban":
                raise MatrixError("M_FORBIDDEN", "The user is not banned")
        if self.operation == "kick":
            row = selectors.membership_row(room, target)
            if row is None or row.membership not in ("join", "invite", "knock"):
                raise MatrixError("M_FORBIDDEN", "The user is not in the room")
        if self.operation == "invite":
            check_not_suspended(request.user)
            if request.user.is_shadow_banned:
                return ok()  # looks sent; nobody is invited (as Synapse)
        membership.do_update_membership(
            room_id, send_context(request), target, self.membership_value, reason=_reason(body)
        )
        return ok()

    def invite_by_threepid(self, request: Request, room_id: str, body: Body) -> Response:
        """POST /_matrix/client/v3/rooms/{roomId}/invite (third_party_membership.yaml)"""
        invite = parse_invite_3pid(body.data)
        selectors.get_room(room_id)
        check_not_suspended(request.user)
        if request.user.is_shadow_banned:
            return ok()  # looks sent; nobody is invited (as Synapse)
        third_party_invites.do_invite_by_threepid(room_id, send_context(request), **invite)
        return ok()


class InviteView(TargetedMembershipView):
    membership_value, operation = membership.INVITE, "invite"


class KickView(TargetedMembershipView):
    membership_value, operation = membership.LEAVE, "kick"


class BanView(TargetedMembershipView):
    membership_value, operation = membership.BAN, "ban"


class UnbanView(TargetedMembershipView):
    membership_value, operation = membership.LEAVE, "unban"


class SendView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"PUT"})

    def put(self, request: Request, room_id: str, event_type: str, txn_id: str) -> Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"""
        body = self.body(request)
        check_room_id(room_id)
        content_size_ok(body.data)
        # A suspended account may still redact its own events (RedactView checks whose).
        if event_type != "m.room.redaction":
            check_not_suspended(request.user)
        check_ratelimit("message", request.user.user_id, override=request.user.message_ratelimit)
        relations.check_relation(room_id, send_context(request, txn_id), event_type, body.data)
        if request.user.is_shadow_banned:
            return ok({"event_id": fake_event_id()})  # looks sent; reaches nobody
        event = do_send_event(room_id, send_context(request, txn_id), event_type, body.data)
        return ok({"event_id": event.event_id})


class StateView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"GET", "PUT"})

    def get(
        self, request: Request, room_id: str, event_type: str, state_key: str = ""
    ) -> Response:
        """GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
        check_room_id(room_id)
        room = selectors.get_room(room_id)
        user_id = request.user.user_id
        group = selectors.check_can_read_state(room, user_id)
        events = selectors.as_served(
            selectors.state_events(group, [(event_type, state_key)]), user_id
        )
        if not events:
            raise not_found("State event not found")
        if request.query_params.get("format") == "event":
            return ok(client_events(events, viewer=user_id)[0])
        return ok(client_events(events, viewer=user_id)[0]["content"])

    def put(
        self, request: Request, room_id: str, event_type: str, state_key: str = ""
    ) -> Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
        body = self.body(request)
        check_room_id(room_id)
        content_size_ok(body.data)
        if not membership.is_own_leave(request.user.user_id, event_type, state_key, body.data):
            check_not_suspended(request.user)  # leaving stays allowed
        aliases.check_canonical_alias_event(room_id, event_type, state_key, body.data)
        membership.check_member_event(event_type, state_key, body.data)
        if membership.is_remote_invite(event_type, state_key, body.data):
            event = remote_invites.do_invite_remote_user(
                room_id, send_context(request), state_key, body.data
            )
        else:
            event = do_send_event(room_id, send_context(request), event_type, body.data, state_key)
        return ok({"event_id": event.event_id})


class FullStateView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"GET"})

    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/client/v3/rooms/{roomId}/state"""
        check_room_id(room_id)
        room = selectors.get_room(room_id)
        user_id = request.user.user_id
        group = selectors.check_can_read_state(room, user_id)
        events = selectors.as_served(selectors.state_events(group), user_id)
        return ok(client_events(events, viewer=user_id))


def _with_full_state(room: Room) -> Room:
    """The room, once its whole state is here: a room joined with partial state moments
    ago has its member list still being fetched (rooms.services.partial_state), and a
    member list without them would be wrong, so it waits (as Synapse's does)."""
    if not room.partial_state:
        return room
    partial.wait_for_full_state(room.room_id)
    return selectors.get_room(room.room_id)


class MembersView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"GET"})

    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/client/v3/rooms/{roomId}/members"""
        check_room_id(room_id)
        wanted, unwanted = (
            request.query_params.get(name) for name in ("membership", "not_membership")
        )
        if any(
            value is not None and value not in membership.MEMBERSHIPS
            for value in (wanted, unwanted)
        ):
            raise invalid_param("'membership' and 'not_membership' must be a membership")
        room = _with_full_state(selectors.get_room(room_id))
        group = selectors.check_can_read_state(room, request.user.user_id)
        at = request.query_params.get("at")
        if at:
            row = selectors.state_group_at(room, request.user.user_id, history.stream_position(at))
            group = row if row is not None else group
        rows = selectors.members(room, group, membership=wanted, not_membership=unwanted)
        rows = selectors.as_served(rows, request.user.user_id)
        return ok({"chunk": client_events(rows, viewer=request.user.user_id)})


class JoinedMembersView(MatrixView):
    requires_auth = True

    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/client/v3/rooms/{roomId}/joined_members"""
        check_room_id(room_id)
        room = _with_full_state(selectors.get_room(room_id))
        row = selectors.membership_row(room, request.user.user_id)
        # "The current user must be in the room for it to work" (joined_members), even
        # in a world-readable room.
        if row is None or row.membership != "join":
            raise MatrixError("M_FORBIDDEN", "You are not in this room")
        return ok({"joined": selectors.joined_members(room)})


class JoinedRoomsView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/joined_rooms"""
        return ok({"joined_rooms": selectors.joined_room_ids(request.user.user_id)})


# GET /mutual_rooms has no limit parameter: the server picks the batch size.
MUTUAL_ROOMS_BATCH = 100


def _mutual_rooms_token(room_id: str) -> str:
    """``next_batch``: the last room ID of the batch, as an opaque identifier (the spec's
    grammar has no ``!`` or ``:``)."""
    return base64.urlsafe_b64encode(room_id.encode()).decode().rstrip("=")


def _mutual_rooms_after(token: str) -> str:
    try:
        room_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        room_id = ""
    if not is_valid_room_id(room_id):
        raise MatrixError("M_INVALID_PARAM", "Invalid or expired 'from' token")
    return room_id


class MutualRoomsView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v1/mutual_rooms"""
        other = self.query_str(request, "user_id", required=True)
        assert other is not None
        if not is_valid_user_id(other):
            raise MatrixError("M_INVALID_PARAM", "The user ID provided was invalid")
        if other == request.user.user_id:
            raise MatrixError("M_INVALID_PARAM", "Cannot ask for rooms shared with yourself")
        token = self.query_str(request, "from")
        after = _mutual_rooms_after(token) if token is not None else None
        room_ids = selectors.mutual_room_ids(request.user.user_id, other)
        start = bisect_right(room_ids, after) if after is not None else 0
        batch = room_ids[start : start + MUTUAL_ROOMS_BATCH]
        response: dict[str, object] = {"joined": batch, "count": len(room_ids)}
        if start + MUTUAL_ROOMS_BATCH < len(room_ids):
            response["next_batch"] = _mutual_rooms_token(batch[-1])
        return ok(response)


class RedactView(MatrixView):
    requires_auth = True

    def put(self, request: Request, room_id: str, event_id: str, txn_id: str) -> Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}"""
        body = self.body(request, allow_empty=True)
        check_room_id(room_id)
        if request.user.is_suspended and redaction.sender_of(room_id, event_id) not in (
            None,
            request.user.user_id,
        ):
            check_not_suspended(request.user)  # only their own events
        event = redaction.do_redact(
            room_id, send_context(request, txn_id), event_id, body.str("reason")
        )
        return ok({"event_id": event.event_id})


class EventView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"GET"})

    def get(self, request: Request, room_id: str, event_id: str) -> Response:
        """GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}"""
        check_room_id(room_id)
        room = selectors.get_room(room_id)
        row = selectors.get_event_for_user(room, event_id, request.user.user_id)
        viewer = (request.user.user_id, request.auth.device.device_id)
        bundles = relations.bundled_aggregations([row], viewer[0], viewer_device=viewer)
        return ok(client_events([row], viewer_device=viewer, bundles=bundles)[0])


class LegacyEventView(MatrixView):
    requires_auth = True

    def get(self, request: Request, event_id: str) -> Response:
        """GET /_matrix/client/v3/events/{eventId} (deprecated): 404 for an event the user
        may not see, as for an unknown one."""
        row = selectors.get_event_for_user(None, event_id, request.user.user_id)
        viewer = (request.user.user_id, request.auth.device.device_id)
        return ok(client_events([row], viewer_device=viewer)[0])


def parse_filter_param(request: Request) -> dict[str, Any] | None:
    raw = request.query_params.get("filter")
    if not raw:
        return None
    value = parse_json(raw.encode())
    if not isinstance(value, dict):
        raise MatrixError("M_INVALID_PARAM", "'filter' must be a JSON object")
    try:
        # The same RoomEventFilter rules as stored filters (a negative limit, for one,
        # would otherwise reach a queryset slice).
        check_room_event_filter(value)
    except MatrixError as error:
        raise MatrixError("M_INVALID_PARAM", error.error) from None
    return value


def parse_limit(request: Request, default: int, maximum: int = 1000) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MatrixError("M_INVALID_PARAM", "'limit' must be an integer") from None
    if value < 0:
        raise MatrixError("M_INVALID_PARAM", "'limit' must not be negative")
    return min(value, maximum)


class MessagesView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"GET"})

    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/client/v3/rooms/{roomId}/messages"""
        check_room_id(room_id)
        direction = request.query_params.get("dir", "b")
        if direction not in ("b", "f"):
            raise MatrixError("M_INVALID_PARAM", "'dir' must be 'b' or 'f'")
        reader = history.reader(room_id, request.user)
        room_filter = parse_filter_param(request)
        limit = parse_limit(request, 10)
        if room_filter and isinstance(room_filter.get("limit"), int):
            limit = min(limit, room_filter["limit"])
        page = backfill.paginate(
            reader,
            from_token=request.query_params.get("from"),
            to_token=request.query_params.get("to"),
            direction=direction,
            limit=limit,
            room_filter=room_filter,
        )
        viewer = (request.user.user_id, request.auth.device.device_id)
        bundles = relations.bundled_aggregations(
            page.chunk, viewer[0], viewer_device=viewer, ignored=page.ignored
        )
        response: dict[str, Any] = {
            "chunk": client_events(page.chunk, viewer_device=viewer, bundles=bundles),
            "start": page.start,
        }
        if page.end is not None:
            response["end"] = page.end
        if page.state:
            response["state"] = client_events(page.state, viewer=viewer[0])
        return ok(response)
