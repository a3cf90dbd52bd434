"""Room aliases and the published room directory."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import Body, MatrixView, ok
from protocol.errors import bad_json, invalid_param
from rooms.api.common import check_room_id
from rooms.federation import remote
from rooms.services import aliases, directory, remote_directory


def is_server_admin(user: Any) -> bool:
    return bool(user.is_staff or user.is_superuser)


class RoomAliasView(MatrixView):
    # GET needs no access token (directory.yaml); PUT and DELETE do.
    auth_methods = frozenset({"PUT", "DELETE"})

    def get(self, request: Request, room_alias: str) -> Response:
        """GET /_matrix/client/v3/directory/room/{roomAlias}"""
        if aliases.parse_alias(room_alias).domain != settings.SERVER_NAME:
            room_id, servers = remote_directory.query_remote_alias(room_alias)
        else:
            room_id, servers = aliases.resolve_alias(room_alias)
        return ok({"room_id": room_id, "servers": servers})

    def put(self, request: Request, room_alias: str) -> Response:
        """PUT /_matrix/client/v3/directory/room/{roomAlias}"""
        body = self.body(request)
        aliases.do_create_alias(
            room_alias,
            body.req_str("room_id"),
            request.user.user_id,
            is_admin=is_server_admin(request.user),
        )
        return ok()

    def delete(self, request: Request, room_alias: str) -> Response:
        """DELETE /_matrix/client/v3/directory/room/{roomAlias}"""
        aliases.do_delete_alias(
            room_alias,
            request.user.user_id,
            request.auth.device.device_id,
            is_admin=is_server_admin(request.user),
        )
        return ok()


class RoomAliasesView(MatrixView):
    requires_auth = True

    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/client/v3/rooms/{roomId}/aliases"""
        check_room_id(room_id)
        local = aliases.local_aliases(
            room_id, request.user.user_id, is_admin=is_server_admin(request.user)
        )
        return ok({"aliases": local})


class RoomVisibilityView(MatrixView):
    auth_methods = frozenset({"PUT"})

    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/client/v3/directory/list/room/{roomId}"""
        check_room_id(room_id)
        return ok({"visibility": directory.get_visibility(room_id)})

    def put(self, request: Request, room_id: str) -> Response:
        """PUT /_matrix/client/v3/directory/list/room/{roomId}"""
        body = self.body(request, allow_empty=True)
        check_room_id(room_id)
        visibility = body.str("visibility", default=directory.PUBLIC)
        if visibility not in (directory.PUBLIC, directory.PRIVATE):
            raise invalid_param("'visibility' must be 'public' or 'private'")
        directory.do_set_visibility(
            room_id, request.user.user_id, visibility, is_admin=is_server_admin(request.user)
        )
        return ok()


def _room_types(value: Any) -> list[str | None] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(v is None or isinstance(v, str) for v in value):
        raise bad_json("'filter.room_types' must be a list of strings or nulls")
    return value


def _check_limit(limit: int | None) -> int | None:
    if limit is not None and limit < 0:
        raise invalid_param("'limit' must not be negative")
    return limit


def limit_param(request: Request) -> int | None:
    """The ``limit`` query parameter of GET /publicRooms (either API)."""
    raw_limit = request.query_params.get("limit")
    if raw_limit is None:
        return None
    if not re.fullmatch(r"-?[0-9]{1,18}", raw_limit):
        raise invalid_param("'limit' must be an integer")
    return _check_limit(int(raw_limit))


def query_from_body(body: Body, **extra: Any) -> directory.PublicRoomsQuery:
    """The query of a POST /publicRooms body (either API)."""
    search_filter = Body(body.dict("filter") or {})
    return directory.PublicRoomsQuery(
        limit=_check_limit(body.int("limit")),
        since=body.str("since"),
        generic_search_term=search_filter.str("generic_search_term"),
        room_types=_room_types(search_filter.data.get("room_types")),
        include_all_networks=body.bool("include_all_networks"),
        third_party_instance_id=body.str("third_party_instance_id"),
        **extra,
    )


def _public_rooms(query: directory.PublicRoomsQuery) -> Response:
    directory.check_server(query.server)
    if query.is_remote:
        return ok(remote.public_rooms(query))
    return ok(directory.public_rooms(query))


class PublicRoomsView(MatrixView):
    # GET needs no access token; POST does.
    auth_methods = frozenset({"POST"})

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/publicRooms"""
        query = directory.PublicRoomsQuery(
            limit=limit_param(request),
            since=request.query_params.get("since"),
            server=request.query_params.get("server"),
        )
        return _public_rooms(query)

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/publicRooms"""
        body = self.body(request, allow_empty=True)
        return _public_rooms(query_from_body(body, server=request.query_params.get("server")))
