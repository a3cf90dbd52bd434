"""The device list EDUs other servers send us: m.device_list_update and
m.signing_key_update (federation.edus hands them here; registered in e2ee.apps).

Server-Server API, "Device Management" and "End-to-End Encryption". Each is accepted only
about a user of the sending server (anything else is ignored, logged: the spec gives EDUs
no error) and applied to the cache of remote device lists
(e2ee.services.remote_device_lists) in the transaction that takes the EDUs in, so a
retried transaction does not apply them twice. Fetching a list again needs the network:
it is started after that transaction commits, by a task.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from e2ee.services import remote_device_lists

logger = logging.getLogger(__name__)

DEVICE_LIST_UPDATE = "m.device_list_update"
SIGNING_KEY_UPDATE = "m.signing_key_update"


def _resync_after_commit(user_id: str) -> None:
    from e2ee.tasks import resync_device_list

    transaction.on_commit(lambda: resync_device_list.delay(user_id))


def receive_device_list_update(origin: str, content: Mapping[str, Any]) -> None:
    """An m.device_list_update EDU: one device of a user of ``origin`` changed."""
    update = remote_device_lists.parse_device_list_update(origin, content)
    if update is None:
        logger.info("ignored a device list update from %s: %r", origin, content.get("user_id"))
        return
    if remote_device_lists.do_receive_device_list_update(update):
        _resync_after_commit(update.user_id)


def receive_signing_key_update(origin: str, content: Mapping[str, Any]) -> None:
    """An m.signing_key_update EDU: a user of ``origin`` has new cross-signing keys."""
    if remote_device_lists.do_receive_signing_key_update(origin, content):
        user_id = content.get("user_id")
        assert isinstance(user_id, str)
        _resync_after_commit(user_id)
