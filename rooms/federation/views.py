"""What this server serves other servers about rooms (Server-Server API), and the
inbound transaction endpoint. Every view requires an X-Matrix signature
(federation.auth); ``request.user.server_name`` is the requesting server. Each request
naming a room is checked against the room's server ACL (rooms.federation.access)."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors as accounts_selectors
from accounts.clock import now_ms
from config.matrix_api import MatrixView, ok
from federation.auth import XMatrixAuthentication
from protocol.errors import MatrixError, bad_json, missing_param, not_found
from protocol.identifiers import parse_user_id
from rooms import hierarchy
from rooms.api.directory import limit_param, query_from_body
from rooms.federation import access, membership, serving, transactions
from rooms.services import aliases, directory


def _int_param(request: Request, name: str, *, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise missing_param(name)
        return default
    try:
        return int(raw)
    except ValueError:
        raise MatrixError("M_INVALID_PARAM", f"'{name}' must be an integer") from None


def _transaction(pdus: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction from this server carrying ``pdus`` (the answer of /event, /backfill)."""
    return {"origin": settings.SERVER_NAME, "origin_server_ts": now_ms(), "pdus": pdus}


class FederationView(MatrixView):
    authentication_classes = [XMatrixAuthentication]

    def origin(self, request: Request) -> str:
        return str(request.user.server_name)


class EventView(FederationView):
    def get(self, request: Request, event_id: str) -> Response:
        """GET /_matrix/federation/v1/event/{eventId}"""
        origin = self.origin(request)
        room = access.access_room_as_member(access.room_id_of_event(event_id), origin)
        row = access.access_event(room, event_id, origin)
        return ok(_transaction(access.ServerVisibility(origin).pdus([row])))


class StateView(FederationView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/federation/v1/state/{roomId}"""
        origin = self.origin(request)
        # The parameter first: a request without it is malformed whatever the room.
        event_id = self.query_str(request, "event_id", required=True) or ""
        room = access.access_room_as_member(room_id, origin)
        state_ids, chain_ids = serving.state_ids_at(room, event_id, origin)
        return ok(
            {
                "pdus": serving.pdus_of(state_ids),
                "auth_chain": serving.pdus_in_auth_order(chain_ids),
            }
        )


class StateIdsView(FederationView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/federation/v1/state_ids/{roomId}"""
        origin = self.origin(request)
        # The parameter first: a request without it is malformed whatever the room.
        event_id = self.query_str(request, "event_id", required=True) or ""
        room = access.access_room_as_member(room_id, origin)
        state_ids, chain_ids = serving.state_ids_at(room, event_id, origin)
        return ok({"pdu_ids": state_ids, "auth_chain_ids": chain_ids})


class EventAuthView(FederationView):
    def get(self, request: Request, room_id: str, event_id: str) -> Response:
        """GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}"""
        origin = self.origin(request)
        room = access.access_room_as_member(room_id, origin)
        access.access_event(room, event_id, origin)
        chain_ids = serving.auth_chain_ids(room, event_id)
        return ok({"auth_chain": serving.pdus_in_auth_order(chain_ids)})


class BackfillView(FederationView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/federation/v1/backfill/{roomId}"""
        origin = self.origin(request)
        room = access.access_room_as_member(room_id, origin)
        start_ids = request.query_params.getlist("v")
        if not start_ids:
            raise missing_param("v")
        limit = _int_param(request, "limit")
        rows = serving.backfill(room, start_ids, limit)
        return ok(_transaction(access.ServerVisibility(origin).pdus(rows)))


class MissingEventsView(FederationView):
    def post(self, request: Request, room_id: str) -> Response:
        """POST /_matrix/federation/v1/get_missing_events/{roomId}"""
        origin = self.origin(request)
        room = access.access_room_as_member(room_id, origin)
        body = self.body(request)
        earliest = body.list("earliest_events", required=True) or []
        latest = body.list("latest_events", required=True) or []
        if not all(isinstance(e, str) for e in [*earliest, *latest]):
            raise bad_json("earliest_events and latest_events must list event IDs")
        limit = body.int("limit") or serving.DEFAULT_MISSING_EVENTS
        min_depth = body.int("min_depth") or 0
        rows = serving.missing_events(room, earliest, latest, limit, min_depth)
        return ok({"events": access.ServerVisibility(origin).pdus(rows)})


class TimestampToEventView(FederationView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/federation/v1/timestamp_to_event/{roomId}"""
        origin = self.origin(request)
        room = access.access_room_as_member(room_id, origin)
        ts = _int_param(request, "ts")
        direction = self.query_str(request, "dir", required=True)
        if direction not in ("f", "b"):
            raise MatrixError("M_INVALID_PARAM", "'dir' must be 'f' or 'b'")
        row = serving.event_at_timestamp(room, origin, ts, direction)
        return ok({"event_id": row.event_id, "origin_server_ts": row.origin_server_ts})


class VersionView(FederationView):
    def get(self, request: Request) -> Response:
        """GET /_matrix/federation/v1/version"""
        return ok({"server": {"name": "Trellis", "version": metadata.version("trellis")}})


class QueryDirectoryView(FederationView):
    def get(self, request: Request) -> Response:
        """GET /_matrix/federation/v1/query/directory"""
        value = self.query_str(request, "room_alias", required=True) or ""
        alias = aliases.parse_alias(value)
        if alias.domain != settings.SERVER_NAME:
            raise not_found("Room alias not found")
        room_id, servers = aliases.resolve_alias(value)
        return ok({"room_id": room_id, "servers": servers})


class QueryProfileView(FederationView):
    def get(self, request: Request) -> Response:
        """GET /_matrix/federation/v1/query/profile"""
        user_id = self.query_str(request, "user_id", required=True) or ""
        try:
            domain = parse_user_id(user_id).domain
        except ValueError:
            raise MatrixError("M_INVALID_PARAM", "'user_id' is not a user ID") from None
        if domain != settings.SERVER_NAME:
            raise MatrixError("M_INVALID_PARAM", "The user is not a user of this server")
        profile = accounts_selectors.get_profile(user_id)
        field = self.query_str(request, "field")
        if field is None:
            return ok(profile)
        if field not in profile:
            raise not_found("Profile field not set")
        return ok({field: profile[field]})


def _bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false")
    if raw not in ("true", "false"):
        raise MatrixError("M_INVALID_PARAM", f"'{name}' must be 'true' or 'false'")
    return raw == "true"


class PublicRoomsView(FederationView):
    def get(self, request: Request) -> Response:
        """GET /_matrix/federation/v1/publicRooms"""
        query = directory.PublicRoomsQuery(
            limit=limit_param(request),
            since=request.query_params.get("since"),
            include_all_networks=_bool_param(request, "include_all_networks"),
            third_party_instance_id=request.query_params.get("third_party_instance_id"),
            federated_only=True,
        )
        return ok(directory.public_rooms(query))

    def post(self, request: Request) -> Response:
        """POST /_matrix/federation/v1/publicRooms"""
        body = self.body(request, allow_empty=True)
        return ok(directory.public_rooms(query_from_body(body, federated_only=True)))


class HierarchyView(FederationView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/federation/v1/hierarchy/{roomId}"""
        suggested_only = _bool_param(request, "suggested_only")
        return ok(hierarchy.federation_hierarchy(room_id, self.origin(request), suggested_only))


class SendTransactionView(FederationView):
    def put(self, request: Request, txn_id: str) -> Response:
        """PUT /_matrix/federation/v1/send/{txnId}"""
        body = self.body(request)
        return ok(transactions.do_receive_transaction(self.origin(request), txn_id, body.data))


def _bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise MatrixError("M_INVALID_PARAM", f"'{name}' must be 'true' or 'false'")


class MakeJoinView(FederationView):
    def get(self, request: Request, room_id: str, user_id: str) -> Response:
        """GET /_matrix/federation/v1/make_join/{roomId}/{userId}"""
        # ``ver`` may be repeated; without it the joining server supports version 1 only.
        versions = request.query_params.getlist("ver") or ["1"]
        return ok(membership.make_join(room_id, user_id, self.origin(request), versions))


class SendJoinView(FederationView):
    # v1 (superseded, still spoken by old servers) answers [200, {...}].
    api_version = 2

    def put(self, request: Request, room_id: str, event_id: str) -> Response:
        """PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}"""
        body = self.body(request)
        omit_members = self.api_version == 2 and _bool_param(request, "omit_members")
        answer = membership.do_send_join(
            room_id, event_id, body.data, self.origin(request), omit_members=omit_members
        )
        if self.api_version == 1:
            answer.pop("members_omitted", None)
            return ok([200, answer])
        return ok(answer)


class SendJoinV1View(SendJoinView):
    """PUT /_matrix/federation/v1/send_join/{roomId}/{eventId}"""

    api_version = 1


class MakeLeaveView(FederationView):
    def get(self, request: Request, room_id: str, user_id: str) -> Response:
        """GET /_matrix/federation/v1/make_leave/{roomId}/{userId}"""
        return ok(membership.make_leave(room_id, user_id, self.origin(request)))


class SendLeaveView(FederationView):
    api_version = 2

    def put(self, request: Request, room_id: str, event_id: str) -> Response:
        """PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}"""
        body = self.body(request)
        answer = membership.do_send_leave(room_id, event_id, body.data, self.origin(request))
        return ok([200, answer] if self.api_version == 1 else answer)


class SendLeaveV1View(SendLeaveView):
    """PUT /_matrix/federation/v1/send_leave/{roomId}/{eventId}"""

    api_version = 1
