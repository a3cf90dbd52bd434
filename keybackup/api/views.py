"""Server-side key backups: backup versions and the keys in them."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from keybackup import selectors, services
from keybackup.services import KeysCount
from protocol.identifiers import require_room_id


def keys_count(result: KeysCount) -> Response:
    return ok({"etag": result.etag, "count": result.count})


class VersionsView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/room_keys/version"""
        body = self.body(request)
        algorithm = body.req_str("algorithm")
        auth_data = body.dict("auth_data", required=True)
        assert auth_data is not None
        return ok({"version": services.do_create_version(request.user, algorithm, auth_data)})

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/room_keys/version"""
        return ok(selectors.version_info(request.user, None))


class VersionView(MatrixView):
    requires_auth = True

    def get(self, request: Request, version: str) -> Response:
        """GET /_matrix/client/v3/room_keys/version/{version}"""
        return ok(selectors.version_info(request.user, version))

    def put(self, request: Request, version: str) -> Response:
        """PUT /_matrix/client/v3/room_keys/version/{version}"""
        body = self.body(request)
        algorithm = body.req_str("algorithm")
        auth_data = body.dict("auth_data", required=True)
        assert auth_data is not None
        body_version = body.str("version")
        services.do_update_version(request.user, version, algorithm, auth_data, body_version)
        return ok()

    def delete(self, request: Request, version: str) -> Response:
        """DELETE /_matrix/client/v3/room_keys/version/{version}"""
        services.do_delete_version(request.user, version)
        return ok()


class KeysView(MatrixView):
    requires_auth = True

    def put(self, request: Request) -> Response:
        """PUT /_matrix/client/v3/room_keys/keys"""
        version = self.query_str(request, "version", required=True)
        assert version is not None
        rooms = services.check_rooms(self.body(request).dict("rooms", required=True))
        return keys_count(services.do_upload_keys(request.user, version, rooms))

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/room_keys/keys"""
        version = self.query_str(request, "version", required=True)
        assert version is not None
        return ok(selectors.room_keys(request.user, version))

    def delete(self, request: Request) -> Response:
        """DELETE /_matrix/client/v3/room_keys/keys"""
        version = self.query_str(request, "version", required=True)
        assert version is not None
        return keys_count(services.do_delete_keys(request.user, version))


class RoomKeysView(MatrixView):
    requires_auth = True

    def put(self, request: Request, room_id: str) -> Response:
        """PUT /_matrix/client/v3/room_keys/keys/{roomId}"""
        version = self.query_str(request, "version", required=True)
        assert version is not None
        sessions = services.check_sessions(
            room_id, self.body(request).dict("sessions", required=True)
        )
        return keys_count(services.do_upload_keys(request.user, version, {room_id: sessions}))

    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/client/v3/room_keys/keys/{roomId}"""
        version = self.query_str(request, "version", required=True)
        assert version is not None
        room_id = require_room_id(room_id)
        return ok(selectors.room_keys_for_room(request.user, version, room_id))

    def delete(self, request: Request, room_id: str) -> Response:
        """DELETE /_matrix/client/v3/room_keys/keys/{roomId}"""
        version = self.query_str(request, "version", required=True)
        assert version is not None
        room_id = require_room_id(room_id)
        return keys_count(services.do_delete_keys(request.user, version, room_id))


class SessionKeyView(MatrixView):
    requires_auth = True

    def put(self, request: Request, room_id: str, session_id: str) -> Response:
        """PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"""
        version = self.query_str(request, "version", required=True)
        assert version is not None
        require_room_id(room_id)
        services.check_session_id(session_id)
        key = services.check_key_data(self.body(request).data)
        return keys_count(
            services.do_upload_keys(request.user, version, {room_id: {session_id: key}})
        )

    def get(self, request: Request, room_id: str, session_id: str) -> Response:
        """GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"""
        version = self.query_str(request, "version", required=True)
        assert version is not None
        room_id = require_room_id(room_id)
        session_id = services.check_session_id(session_id)
        return ok(selectors.room_key(request.user, version, room_id, session_id))

    def delete(self, request: Request, room_id: str, session_id: str) -> Response:
        """DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"""
        version = self.query_str(request, "version", required=True)
        assert version is not None
        room_id = require_room_id(room_id)
        session_id = services.check_session_id(session_id)
        return keys_count(services.do_delete_keys(request.user, version, room_id, session_id))
