"""Which member events a device has already been sent, for lazy-loading members.

With ``lazy_load_members`` an incremental /sync gives the member events of the
timeline's senders; with ``include_redundant_members`` false (the default) the server
need not repeat the ones the client already has (Client-Server API, "Lazy-loading room
members"). Without this memory every message would re-send its sender's member event,
and every such sync would also carry a room summary.

What is remembered is per process and bounded: a miss only means a redundant member
event, which clients accept. An entry records the stream position of the response that
carried the event, and counts only for a later request whose ``since`` has reached that
position: a response the client never received (a retry with an older token) proves
nothing.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from config import process_caches

# Devices (with a filter each) remembered, and members remembered per device.
MAX_DEVICES = 1000
MAX_MEMBERS_PER_DEVICE = 2000

# (user_id, device_id, filter) -> {(room_id, state_key): (event_id, position)}
_Key = tuple[str, str, str]
_Sent = OrderedDict[tuple[str, str], tuple[str, int]]

_lock = threading.Lock()
_devices: OrderedDict[_Key, _Sent] = OrderedDict()


def device_key(user_id: str, device_id: str, sync_filter: dict[str, Any]) -> _Key:
    # A client with two filters gets two timelines; what one was sent says nothing of
    # the other.
    return (user_id, device_id, json.dumps(sync_filter, sort_keys=True))


def already_sent(key: _Key, room_id: str, state_key: str, event_id: str, since: int) -> bool:
    with _lock:
        sent = _devices.get(key)
        if sent is None:
            return False
        entry = sent.get((room_id, state_key))
    return entry is not None and entry[0] == event_id and entry[1] <= since


def record_sent(key: _Key, members: Iterable[tuple[str, str, str]], position: int) -> None:
    """``members``: (room_id, state_key, event_id) of the member events in a response
    whose ``next_batch`` is at ``position`` on the events stream."""
    with _lock:
        sent = _devices.get(key)
        if sent is None:
            sent = _devices[key] = OrderedDict()
        _devices.move_to_end(key)
        for room_id, state_key, event_id in members:
            current = sent.get((room_id, state_key))
            # Keep the earliest proof for an event already remembered.
            if current is None or current[0] != event_id:
                sent[(room_id, state_key)] = (event_id, position)
            sent.move_to_end((room_id, state_key))
        while len(sent) > MAX_MEMBERS_PER_DEVICE:
            sent.popitem(last=False)
        while len(_devices) > MAX_DEVICES:
            _devices.popitem(last=False)


@process_caches.register
def forget_all() -> None:
    """For tests."""
    with _lock:
        _devices.clear()
