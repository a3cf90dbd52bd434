"""Device management (Client-Server API, "Device management")."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors
from accounts.models import Device, User
from accounts.services import sessions, uia
from config.matrix_api import MatrixView, ok
from protocol.errors import MatrixError


def device_json(device: Device) -> dict[str, Any]:
    """A device as the spec's Device schema has it: unknown fields are absent, not null."""
    fields = {
        "device_id": device.device_id,
        "display_name": device.display_name,
        "last_seen_ip": device.last_seen_ip,
        "last_seen_ts": device.last_seen_ts,
    }
    return {key: value for key, value in fields.items() if value is not None}


def reauth_flows(user: User) -> list[list[str]]:
    """Sensitive account operations re-check the password, if the account has one."""
    return [[uia.PASSWORD]] if user.has_usable_password() else [[uia.DUMMY]]


class DevicesView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"GET"})

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/devices"""
        return ok({"devices": [device_json(d) for d in selectors.list_devices(request.user)]})


class DeviceView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"GET", "PUT"})

    def get(self, request: Request, device_id: str) -> Response:
        """GET /_matrix/client/v3/devices/{deviceId}"""
        return ok(device_json(selectors.get_device(request.user, device_id)))

    def put(self, request: Request, device_id: str) -> Response:
        """PUT /_matrix/client/v3/devices/{deviceId}"""
        body = self.body(request)
        display_name = body.str("display_name")
        if display_name is None:
            selectors.get_device(request.user, device_id)
            return ok()
        sessions.do_rename_device(request.user, device_id, display_name)
        return ok()

    def delete(self, request: Request, device_id: str) -> Response:
        """DELETE /_matrix/client/v3/devices/{deviceId}"""
        body = self.body(request, allow_empty=True)
        # No 404 here: the spec answers 200 for a device that "had been removed
        # previously", and an unknown ID must not reveal other users' devices.
        session = uia.check_uia(
            body.data.get("auth"),
            uri=f"delete_device:{device_id}",
            flows=reauth_flows(request.user),
            user=request.user,
        )
        sessions.do_delete_devices(request.user, [device_id])
        uia.finish_uia(session)
        return ok()


class DeleteDevicesView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/delete_devices"""
        body = self.body(request)
        device_ids = body.list("devices", required=True)
        assert device_ids is not None
        if not all(isinstance(d, str) for d in device_ids):
            raise MatrixError("M_BAD_JSON", "'devices' must be a list of strings")
        session = uia.check_uia(
            body.data.get("auth"),
            uri="delete_devices",
            flows=reauth_flows(request.user),
            user=request.user,
        )
        sessions.do_delete_devices(request.user, device_ids)
        uia.finish_uia(session)
        return ok()
