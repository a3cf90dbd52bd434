"""GET /initialSync and GET /rooms/{roomId}/initialSync (deprecated, Client-Server API,
old_sync.yaml and room_initial_sync.yaml): snapshots built by sync.legacy."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from sync import legacy, providers
from sync.builder import SyncRequest


class InitialSyncView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/initialSync"""
        limit = legacy.parse_limit(request.query_params.get("limit"))
        archived = legacy.parse_bool(request.query_params.get("archived"), "archived")
        device_id = request.auth.device.device_id
        # A sync, legacy or not, is activity: the user is online (as /sync's default
        # set_presence), and sees it in the snapshot.
        providers.record_activity(SyncRequest(user=request.user, device_id=device_id, since=None))
        return ok(legacy.initial_sync(request.user, device_id, limit=limit, archived=archived))


class RoomInitialSyncView(MatrixView):
    requires_auth = True
    # The guest access module lists GET /rooms/{roomId}/initialSync.
    guest_methods = frozenset({"GET"})

    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/client/v3/rooms/{roomId}/initialSync"""
        limit = legacy.parse_limit(request.query_params.get("limit"))
        device_id = request.auth.device.device_id
        return ok(legacy.room_initial_sync(request.user, device_id, room_id, limit=limit))
