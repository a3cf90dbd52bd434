"""The write path of send-to-device messaging."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import Device
from e2ee.models import ToDeviceMessage, ToDeviceTransaction
from protocol.errors import bad_json, invalid_param
from protocol.identifiers import parse_user_id
from streams import notifier
from streams import positions as streams

MAX_TYPE_LENGTH = 255
ALL_DEVICES = "*"


def check_messages(messages: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """``messages``: user ID -> device ID (or ``*``) -> content object."""
    if not isinstance(messages, dict):
        raise bad_json("'messages' must be an object")
    for user_id, by_device in messages.items():
        try:
            parse_user_id(user_id)
        except ValueError:
            raise invalid_param(f"Invalid user ID {user_id!r} in 'messages'") from None
        if not isinstance(by_device, dict):
            raise bad_json(f"'messages.{user_id}' must be an object")
        for device_id, content in by_device.items():
            if not device_id:
                raise bad_json(f"Empty device ID in 'messages.{user_id}'")
            if not isinstance(content, dict):
                raise bad_json(f"'messages.{user_id}.{device_id}' must be an object")
    return messages


def _recipients(
    messages: dict[str, dict[str, dict[str, Any]]],
) -> list[tuple[Device, str, dict[str, Any]]]:
    """(device, user ID, content) for each local device addressed, ``*`` expanded.

    A device named explicitly wins over ``*`` for the same user, so each device gets
    at most one message per request (Client-Server API: "Only one message can be sent
    to each device per transaction"). Unknown users and devices are skipped silently.
    """
    local: dict[str, str] = {}
    for user_id in messages:
        ident = parse_user_id(user_id)
        if ident.domain == settings.SERVER_NAME:
            local[ident.localpart] = user_id
    if not local:
        return []
    devices: dict[str, dict[str, Device]] = {}
    for device in Device.objects.select_related("user").filter(user__localpart__in=list(local)):
        devices.setdefault(local[device.user.localpart], {})[device.device_id] = device
    out: list[tuple[Device, str, dict[str, Any]]] = []
    for user_id, by_device in messages.items():
        known = devices.get(user_id, {})
        chosen: dict[str, dict[str, Any]] = {}
        if ALL_DEVICES in by_device:
            chosen = dict.fromkeys(known, by_device[ALL_DEVICES])
        chosen.update({d: c for d, c in by_device.items() if d != ALL_DEVICES and d in known})
        out.extend((known[d], user_id, content) for d, content in chosen.items())
    return out


def do_send_to_device(
    sender: Device, event_type: str, txn_id: str, messages: dict[str, dict[str, dict[str, Any]]]
) -> None:
    """PUT /sendToDevice/{eventType}/{txnId}: queue one message per addressed device.

    Idempotent per (sending device, event type, transaction ID): the transaction row is
    inserted in the same database transaction as the messages, so a concurrent retry
    waits on the unique index and then finds it. Messages for remote users are dropped
    until federation carries EDUs.
    """
    if not event_type or len(event_type) > MAX_TYPE_LENGTH:
        raise invalid_param("Invalid event type")
    check_messages(messages)
    sender_id = sender.user.user_id
    with transaction.atomic():
        _, created = ToDeviceTransaction.objects.get_or_create(
            device=sender, event_type=event_type, txn_id=txn_id
        )
        if not created:
            return
        recipients = _recipients(messages)
        if not recipients:
            return
        position = streams.next_position(streams.TO_DEVICE)
        ToDeviceMessage.objects.bulk_create(
            ToDeviceMessage(
                recipient=device,
                user_id=user_id,
                device_id=device.device_id,
                sender=sender_id,
                type=event_type,
                content=content,
                stream_id=position,
                message_id=secrets.token_urlsafe(16),
            )
            for device, user_id, content in recipients
        )
        woken = sorted({user_id for _, user_id, _ in recipients})
        transaction.on_commit(
            lambda: notifier.notify_stream_moved(streams.TO_DEVICE, position, user_ids=woken)
        )


def do_acknowledge(user_id: str, device_id: str, upto: int) -> None:
    """Delete a device's messages up to ``upto``: a /sync token at that position shows
    the client received the response that carried them (Client-Server API,
    "Send-to-Device messaging", Server behaviour)."""
    acknowledged = ToDeviceMessage.objects.filter(
        user_id=user_id, device_id=device_id, stream_id__lte=upto
    )
    # Most syncs have nothing to acknowledge: an indexed read, not a write (on SQLite a
    # DELETE takes the database's write lock even when it matches nothing).
    if acknowledged.exists():
        acknowledged.delete()
