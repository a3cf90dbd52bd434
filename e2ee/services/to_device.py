"""The write path of send-to-device messaging (Client-Server API, "Send-to-Device
messaging"), here and across servers (Server-Server API, "Send-to-device messaging").

A message for a local device goes to its inbox (ToDeviceMessage), which /sync reads.
Messages for users of other servers go as m.direct_to_device EDUs, one per destination
server for each request (split when it would outgrow MAX_EDU_BYTES), through the durable
outbound queue (federation.outbound), queued in the transaction that records the request:
a request answered 200 has its EDUs stored, and the queue delivers them or says why not.

Inbound, an m.direct_to_device EDU (federation.edus calls :func:`receive_direct_to_device`)
is taken only when its ``sender`` is a user of the sending server; its ``message_id``
(unique per sending server) is remembered, so an EDU sent again is delivered once; its
messages for local users reach their inboxes (``*``: every device) and wake /sync, and
those for anyone else are dropped.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.clock import now_ms
from accounts.models import Device
from e2ee.models import FederatedToDeviceMessage, ToDeviceMessage, ToDeviceTransaction
from federation.outbound import enqueue_edu
from protocol.canonical_json import (
    CanonicalJSONError,
    check_canonical_json_values,
    encode_canonical_json,
)
from protocol.errors import MatrixError, bad_json, invalid_param
from protocol.identifiers import is_valid_user_id, parse_user_id
from streams import notifier
from streams import positions as streams

logger = logging.getLogger(__name__)

MAX_TYPE_LENGTH = 255
ALL_DEVICES = "*"
DIRECT_TO_DEVICE = "m.direct_to_device"
# An EDU's content stays within this many bytes (Synapse's MAX_EDU_SIZE, which it also
# enforces on what it receives): larger batches are split over several EDUs, and a
# single message that cannot fit is refused with 413.
MAX_EDU_BYTES = 65536
# How long an inbound EDU's message_id is remembered (a sender retries a transaction
# for a while, not for a week).
FEDERATED_TO_DEVICE_RETENTION_MS = 7 * 24 * 3600 * 1000
MAX_MESSAGE_ID_LENGTH = 255

Messages = dict[str, dict[str, dict[str, Any]]]


def check_messages(messages: Any) -> Messages:
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


def _recipients(messages: Mapping[str, Mapping[str, Any]]) -> list[tuple[Device, str, Any]]:
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
    out: list[tuple[Device, str, Any]] = []
    for user_id, by_device in messages.items():
        known = devices.get(user_id, {})
        chosen: dict[str, Any] = {}
        if ALL_DEVICES in by_device:
            chosen = dict.fromkeys(known, by_device[ALL_DEVICES])
        chosen.update({d: c for d, c in by_device.items() if d != ALL_DEVICES and d in known})
        out.extend((known[d], user_id, content) for d, content in chosen.items())
    return out


def _deliver(sender_id: str, event_type: str, messages: Mapping[str, Mapping[str, Any]]) -> int:
    """Put the messages for local devices in their inboxes at one new position of the
    to_device stream, and wake their users' /sync once committed; how many."""
    recipients = _recipients(messages)
    if not recipients:
        return 0
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
    return len(recipients)


# --- Sending -----------------------------------------------------------------------------


def _by_server(messages: Messages) -> dict[str, Messages]:
    """The messages for users of other servers, by server."""
    remote: dict[str, Messages] = {}
    for user_id, by_device in messages.items():
        server = parse_user_id(user_id).domain
        if server != settings.SERVER_NAME and by_device:
            remote.setdefault(server, {})[user_id] = by_device
    return remote


def _size(obj: Any) -> int:
    return len(encode_canonical_json(obj))


def _split(sender_id: str, event_type: str, messages: Messages) -> list[Messages]:
    """``messages`` (for one server) in batches whose EDUs each stay within
    MAX_EDU_BYTES: whole users where they fit, a user's devices apart where not."""
    envelope = {
        "sender": sender_id,
        "type": event_type,
        "message_id": secrets.token_urlsafe(16),
        "messages": {},
    }
    budget = MAX_EDU_BYTES - _size({"edu_type": DIRECT_TO_DEVICE, "content": envelope})
    pieces: list[tuple[str, dict[str, Any], int]] = []
    for user_id, by_device in messages.items():
        size = _size({user_id: by_device})
        if size <= budget:
            pieces.append((user_id, by_device, size))
            continue
        for device_id, content in by_device.items():
            size = _size({user_id: {device_id: content}})
            if size > budget:
                raise MatrixError(
                    "M_TOO_LARGE",
                    f"The message for {user_id} ({device_id}) is too large to send",
                )
            pieces.append((user_id, {device_id: content}, size))
    batches: list[Messages] = []
    current: Messages = {}
    used = 0
    for user_id, by_device, size in pieces:
        # Each piece adds its own bytes, less the braces, plus a comma.
        cost = size - 1
        if current and used + cost > budget:
            batches.append(current)
            current, used = {}, 0
        current.setdefault(user_id, {}).update(by_device)
        used += cost
    if current:
        batches.append(current)
    return batches


def _federation_edus(
    sender_id: str, event_type: str, messages: Messages
) -> list[tuple[str, dict[str, Any]]]:
    """(destination, m.direct_to_device content) for the messages to users of other
    servers (Server-Server API, "Send-to-device messaging"). The contents must be
    canonical JSON (no floats) to travel: others are refused here, not dropped later."""
    edus = []
    for server, for_server in sorted(_by_server(messages).items()):
        try:
            check_canonical_json_values(for_server)
        except CanonicalJSONError as exc:
            raise bad_json(
                f"Messages for users of {server} must be canonical JSON: {exc}"
            ) from None
        for batch in _split(sender_id, event_type, for_server):
            content = {
                "sender": sender_id,
                "type": event_type,
                "message_id": secrets.token_urlsafe(16),
                "messages": batch,
            }
            edus.append((server, content))
    return edus


def do_send_to_device(sender: Device, event_type: str, txn_id: str, messages: Messages) -> None:
    """PUT /sendToDevice/{eventType}/{txnId}: queue one message per addressed local device,
    and the EDUs for users of other servers.

    Idempotent per (sending device, event type, transaction ID): the transaction row is
    inserted in the same database transaction as the messages and the queued EDUs, so a
    concurrent retry waits on the unique index and then finds it.
    """
    if not event_type or len(event_type) > MAX_TYPE_LENGTH:
        raise invalid_param("Invalid event type")
    check_messages(messages)
    sender_id = sender.user.user_id
    edus = _federation_edus(sender_id, event_type, messages)
    with transaction.atomic():
        _, created = ToDeviceTransaction.objects.get_or_create(
            device=sender, event_type=event_type, txn_id=txn_id
        )
        if not created:
            return
        _deliver(sender_id, event_type, messages)
        for server, content in edus:
            enqueue_edu(DIRECT_TO_DEVICE, content, server)


# --- Receiving ---------------------------------------------------------------------------


def receive_direct_to_device(origin: str, content: Mapping[str, Any]) -> None:
    """An m.direct_to_device EDU from ``origin`` (federation.edus: in the transaction that
    takes in /send, within its own savepoint). Ignored, and logged, when malformed, when
    its sender is not a user of ``origin``, or when its message_id was seen before."""
    sender, event_type = content.get("sender"), content.get("type")
    message_id, messages = content.get("message_id"), content.get("messages")
    if not (
        isinstance(sender, str)
        and isinstance(event_type, str)
        and 0 < len(event_type) <= MAX_TYPE_LENGTH
        and isinstance(message_id, str)
        and 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH
        and isinstance(messages, dict)
    ):
        logger.info("ignored a malformed m.direct_to_device EDU from %s", origin)
        return
    if not is_valid_user_id(sender) or parse_user_id(sender).domain != origin:
        logger.info("ignored to-device messages of %s sent by %s", sender, origin)
        return
    wanted = _local_messages(messages)
    _, created = FederatedToDeviceMessage.objects.get_or_create(
        origin=origin, message_id=message_id, defaults={"received_ts": now_ms()}
    )
    if not created:
        logger.info("ignored to-device message %s from %s, delivered before", message_id, origin)
        return
    _deliver(sender, event_type, wanted)


def _local_messages(messages: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The well-formed messages of an EDU for local users; the rest are left out."""
    local: dict[str, dict[str, Any]] = {}
    for user_id, by_device in messages.items():
        if not isinstance(user_id, str) or not is_valid_user_id(user_id):
            continue
        if parse_user_id(user_id).domain != settings.SERVER_NAME:
            continue
        if not isinstance(by_device, dict):
            continue
        kept = {
            device_id: message
            for device_id, message in by_device.items()
            if isinstance(device_id, str) and device_id and isinstance(message, dict)
        }
        if kept:
            local[user_id] = kept
    return local


def do_purge_federated_message_ids() -> int:
    """Forget the message IDs of EDUs received longer ago than the retention."""
    deleted, _ = FederatedToDeviceMessage.objects.filter(
        received_ts__lt=now_ms() - FEDERATED_TO_DEVICE_RETENTION_MS
    ).delete()
    return deleted


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
