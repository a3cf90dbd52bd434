"""The operator's view of end-to-end encryption: pending send-to-device messages
(read-only: they are the devices' business; deleting one only means it is never
delivered), the public keys devices and users published (device keys, counts of
one-time keys, fallback keys, cross-signing keys, signatures), read-only, and the cached
device lists of other servers' users (their devices' public keys and display names, and
whether the list is current). The server holds no private key or secret to show.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Count, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.html import format_html

from config.portal import ReadOnlyAdmin
from e2ee.models import (
    CrossSigningKey,
    DeviceKeys,
    FallbackKey,
    KeySignature,
    OneTimeKey,
    RemoteDevice,
    RemoteDeviceList,
    ToDeviceMessage,
)


@admin.register(ToDeviceMessage)
class ToDeviceMessageAdmin(ReadOnlyAdmin):
    list_display = ("type", "sender", "user_id", "device_id", "stream_id")
    list_filter = ("type",)
    search_fields = ("user_id", "sender", "device_id")
    # Encrypted payloads or key material: the content is not shown.
    fields = ("type", "sender", "user_id", "device_id", "stream_id", "message_id")
    readonly_fields = fields


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


def _signature_lines(key_json: dict[str, Any], extra: list[tuple[str, str]]) -> str:
    lines = [
        f"{signer} {key_id}"
        for signer, by_key in sorted((key_json.get("signatures") or {}).items())
        for key_id in sorted(by_key)
    ]
    lines += [f"{signer} {key_id} (uploaded later)" for signer, key_id in extra]
    return format_html("<pre>{}</pre>", "\n".join(lines) or "-")


@admin.register(DeviceKeys)
class DeviceKeysAdmin(ReadOnlyAdmin):
    list_display = (
        "user_id",
        "device_id",
        "ed25519_key",
        "algorithm_list",
        "one_time_keys",
        "fallback_keys",
    )
    search_fields = ("user_id", "device_id", "ed25519_key")
    fields = (
        "user_id",
        "device_id",
        "algorithm_list",
        "public_keys",
        "signatures",
        "one_time_keys",
        "fallback_keys",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeviceKeys]:
        unclaimed = (
            OneTimeKey.objects.filter(owner=OuterRef("owner"))
            .order_by()
            .values("owner")
            .annotate(n=Count("id"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(unclaimed=Coalesce(Subquery(unclaimed), Value(0)))
        )

    @admin.display(description="algorithms")
    def algorithm_list(self, obj: DeviceKeys) -> str:
        return ", ".join(obj.key_json.get("algorithms") or [])

    @admin.display(description="public keys (key ID: key)")
    def public_keys(self, obj: DeviceKeys) -> str:
        keys = obj.key_json.get("keys") or {}
        return format_html(
            "<pre>{}</pre>", "\n".join(f"{key_id}: {key}" for key_id, key in sorted(keys.items()))
        )

    @admin.display(description="signatures (signer, key ID)")
    def signatures(self, obj: DeviceKeys) -> str:
        extra = list(
            KeySignature.objects.filter(
                target_user_id=obj.user_id, target_key_id=obj.device_id
            ).values_list("signer_user_id", "signer_key_id")
        )
        return _signature_lines(obj.key_json, extra)

    @admin.display(description="unclaimed one-time keys", ordering="unclaimed")
    def one_time_keys(self, obj: DeviceKeys) -> int:
        return int(getattr(obj, "unclaimed", 0))

    @admin.display(description="fallback keys")
    def fallback_keys(self, obj: DeviceKeys) -> str:
        rows = FallbackKey.objects.filter(owner_id=obj.owner_id).values_list(
            "algorithm", "key_id", "used"
        )
        return (
            ", ".join(
                f"{algorithm}:{key_id} ({'used' if used else 'unused'})"
                for algorithm, key_id, used in rows
            )
            or "-"
        )


@admin.register(CrossSigningKey)
class CrossSigningKeyAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "usage", "public_key")
    list_filter = ("usage",)
    search_fields = ("user_id", "public_key")
    fields = ("user_id", "usage", "public_key", "signatures", "key")
    readonly_fields = fields

    @admin.display(description="signatures (signer, key ID)")
    def signatures(self, obj: CrossSigningKey) -> str:
        extra = list(
            KeySignature.objects.filter(
                target_user_id=obj.user_id, target_key_id=obj.public_key
            ).values_list("signer_user_id", "signer_key_id")
        )
        return _signature_lines(obj.key_json, extra)

    @admin.display(description="key as uploaded")
    def key(self, obj: CrossSigningKey) -> str:
        return _pretty(obj.key_json)


@admin.register(KeySignature)
class KeySignatureAdmin(ReadOnlyAdmin):
    """Signatures uploaded with /keys/signatures/upload, of devices and master keys."""

    list_display = ("target_user_id", "target_key_id", "signer_user_id", "signer_key_id")
    search_fields = ("target_user_id", "signer_user_id", "target_key_id")
    fields = list_display
    readonly_fields = fields


class RemoteDeviceInline(admin.TabularInline):
    model = RemoteDevice
    fields = ("device_id", "display_name", "ed25519", "curve25519", "algorithm_list")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _key(self, obj: RemoteDevice, algorithm: str) -> str:
        keys = (obj.key_json or {}).get("keys") or {}
        return str(keys.get(f"{algorithm}:{obj.device_id}", "-"))

    @admin.display(description="ed25519 key (fingerprint)")
    def ed25519(self, obj: RemoteDevice) -> str:
        return self._key(obj, "ed25519")

    @admin.display(description="curve25519 key")
    def curve25519(self, obj: RemoteDevice) -> str:
        return self._key(obj, "curve25519")

    @admin.display(description="algorithms")
    def algorithm_list(self, obj: RemoteDevice) -> str:
        return ", ".join((obj.key_json or {}).get("algorithms") or []) or "-"


@admin.register(RemoteDeviceList)
class RemoteDeviceListAdmin(ReadOnlyAdmin):
    """Other servers' users' devices, as their servers described them (cached while
    they share a room with a local user). Stale: an update was missed or the user no
    longer shares a room; the list is fetched again before it is used."""

    list_display = ("user_id", "server_name", "device_count", "stream_id", "stale")
    list_filter = ("stale",)
    search_fields = ("user_id", "server_name")
    fields = ("user_id", "server_name", "stream_id", "stale", "cross_signing")
    readonly_fields = fields
    inlines = [RemoteDeviceInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RemoteDeviceList]:
        return super().get_queryset(request).annotate(n_devices=Count("devices"))

    @admin.display(description="devices", ordering="n_devices")
    def device_count(self, obj: RemoteDeviceList) -> int:
        return int(getattr(obj, "n_devices", 0))

    @admin.display(description="cross-signing keys (usage: public key)")
    def cross_signing(self, obj: RemoteDeviceList) -> str:
        lines = [
            f"{usage}: {key}"
            for usage, value in (
                ("master", obj.master_key),
                ("self-signing", obj.self_signing_key),
            )
            if value
            for key in (value.get("keys") or {}).values()
        ]
        return format_html("<pre>{}</pre>", "\n".join(lines) or "-")
