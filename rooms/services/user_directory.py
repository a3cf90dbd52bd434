"""Keeping the user directory (Client-Server API, "User directory") up to date.

Two small tables, written by the changes they follow; who may find whom is not stored
but read from ``Membership`` at search time (rooms.selectors_user_directory says why):

- ``UserDirectoryEntry``: a user's display name, avatar and search words. A local
  user's come from their profile (``do_update_local_user`` on a profile change or an
  operator's change of the account, and on each of their joins); a remote user's from
  their latest join event, whose content carries ``displayname`` and ``avatar_url``.
  Deactivated, locked and support users have none.
- ``UserDirectoryPublicRoom``: the rooms whose members anyone may find. Recomputed
  when the room's join rules or history visibility change, and when a local user
  joins or stops being joined (the room only counts while this server is in it).

Both are written by ``do_apply_state_change``, called by ``rooms.services.graph`` in the
transaction that changes a room's current state, whether the change comes from a
local event, another server's or a state resolution.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from accounts.models import User
from protocol.events import Event as PDUEvent
from rooms import event_cache
from rooms.models import Membership, Room, UserDirectoryEntry, UserDirectoryPublicRoom
from rooms.state import StateKey

JOIN_RULES: StateKey = ("m.room.join_rules", "")
HISTORY_VISIBILITY: StateKey = ("m.room.history_visibility", "")
MEMBER = "m.room.member"
# Letters and digits: "@alice_smith:example.org" is the words alice, smith, example, org.
_WORD = re.compile(r"[^\W_]+")


def search_words(text: str) -> list[str]:
    """The casefolded words of ``text`` that a search matches by prefix."""
    return _WORD.findall(text.casefold())


def _localpart(user_id: str) -> str:
    return user_id[1:].split(":", 1)[0]


def _is_local(user_id: str) -> bool:
    return user_id.endswith(":" + settings.SERVER_NAME)


def entry_row(
    user_id: str, display_name: Any, avatar_url: Any
) -> tuple[str, str | None, str | None, str, str, str]:
    """The columns of a user's entry: user_id, display_name, avatar_url, search_words,
    display_name_key, localpart_key (non-string profile values count as absent)."""
    name = display_name if isinstance(display_name, str) and display_name else None
    avatar = avatar_url if isinstance(avatar_url, str) and avatar_url else None
    words = search_words(user_id) + search_words(name or "")
    return (
        user_id,
        name,
        avatar,
        "".join(" " + word for word in words),
        (name or "").casefold(),
        _localpart(user_id).casefold(),
    )


_COLUMNS = [
    "user_id",
    "display_name",
    "avatar_url",
    "search_words",
    "display_name_key",
    "localpart_key",
]


def _upsert_entries(rows: list[tuple[str, str | None, str | None, str, str, str]]) -> None:
    if rows:
        UserDirectoryEntry.objects.bulk_create(
            [UserDirectoryEntry(**dict(zip(_COLUMNS, row, strict=True))) for row in rows],
            update_conflicts=True,
            unique_fields=["user_id"],
            update_fields=_COLUMNS[1:],
        )


def _local_profiles(user_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The profiles of the local users among ``user_ids`` that the directory shows, in
    one query: not deactivated, not locked (Synapse's default ``show_locked_users:
    false``), not support users (which Synapse keeps out of it)."""
    by_localpart = {_localpart(user_id): user_id for user_id in user_ids}
    if not by_localpart:
        return {}
    rows = (
        User.objects.filter(localpart__in=by_localpart, is_active=True, is_locked=False)
        .exclude(user_type="support")
        .values_list("localpart", "profile")
    )
    return {by_localpart[localpart]: profile for localpart, profile in rows}


def do_update_local_user(user_id: str) -> None:
    """A local user's display name or avatar changed, or an operator (un)locked them,
    changed their type or reactivated them: refresh their entry, or remove it if the
    directory does not show them."""
    profiles = _local_profiles([user_id])
    if user_id not in profiles:
        UserDirectoryEntry.objects.filter(user_id=user_id).delete()
        return
    profile = profiles[user_id]
    _upsert_entries([entry_row(user_id, profile.get("displayname"), profile.get("avatar_url"))])


def do_remove_user(user_id: str) -> None:
    """A deactivated user is never found again (their rooms are left as well)."""
    UserDirectoryEntry.objects.filter(user_id=user_id).delete()


def _is_public(state: Mapping[StateKey, PDUEvent | None]) -> bool:
    """Join rule ``public`` or history ``world_readable``: anyone may see the members."""
    join_rules = state.get(JOIN_RULES)
    visibility = state.get(HISTORY_VISIBILITY)
    return (join_rules is not None and join_rules.content.get("join_rule") == "public") or (
        visibility is not None and visibility.content.get("history_visibility") == "world_readable"
    )


def _has_local_member(room: Room, members: Mapping[str, PDUEvent | None]) -> bool:
    """Whether a local user is joined to the room, the member events ``members`` (None:
    gone) being those users' now."""
    if any(_is_local(user) and _joined(event) for user, event in members.items()):
        return True
    return (
        Membership.objects.filter(
            room=room, membership="join", user_id__endswith=":" + settings.SERVER_NAME
        )
        .exclude(user_id__in=list(members))
        .exists()
    )


def _joined(event: PDUEvent | None) -> bool:
    return event is not None and event.membership == "join"


@dataclass(frozen=True)
class DirectoryChange:
    """What a change of a room's current state means to the directory, worked out by
    ``directory_change`` and applied by ``do_apply_state_change``."""

    # The users whose member event changed: their member event now (None: gone) and
    # before.
    members: dict[str, str | None]
    old_members: dict[str, str | None]
    # The room's join rules and history visibility events now, and whether they changed.
    visibility_events: dict[StateKey, str]
    visibility_changed: bool


def directory_change(
    old_state: Mapping[StateKey, str],
    new_state: Mapping[StateKey, str],
    changed: Iterable[StateKey],
) -> DirectoryChange:
    """The directory's view of the room's current state going from ``old_state`` to
    ``new_state``; ``changed``: the keys whose event changed or went."""
    changed = list(changed)
    members = {key[1]: new_state.get(key) for key in changed if key[0] == MEMBER}
    return DirectoryChange(
        members=members,
        old_members={user: old_state.get((MEMBER, user)) for user in members},
        visibility_events={
            key: new_state[key] for key in (JOIN_RULES, HISTORY_VISIBILITY) if key in new_state
        },
        visibility_changed=JOIN_RULES in changed or HISTORY_VISIBILITY in changed,
    )


def do_apply_state_change(room: Room, change: DirectoryChange) -> None:
    """Entries for the users who joined (or sent a new join event), and the room's
    public flag when its join rules or history visibility changed or a local user
    joined or stopped being joined.

    Called by ``rooms.services.graph`` in the transaction that changes the room's
    current state, once the event and the room's ``Membership`` rows are written: one
    query for the local joiners' profiles and one upsert; only when the flag may change,
    one indexed look-up and one write.
    """
    events = event_cache.get_events(
        [
            ev
            for ev in (
                *change.members.values(),
                *change.old_members.values(),
                *change.visibility_events.values(),
            )
            if ev is not None
        ]
    )
    members = {user: events.get(ev) if ev else None for user, ev in change.members.items()}
    joins = {user: event for user, event in members.items() if event and _joined(event)}
    profiles = _local_profiles(user for user in joins if _is_local(user))
    rows = []
    for user_id, event in joins.items():
        if _is_local(user_id):
            if user_id not in profiles:
                continue
            source = profiles[user_id]
        else:
            source = event.content
        rows.append(entry_row(user_id, source.get("displayname"), source.get("avatar_url")))
    _upsert_entries(rows)

    local_moved = any(
        _is_local(user) and _joined(event) != _joined(events.get(change.old_members[user] or ""))
        for user, event in members.items()
    )
    if not (change.visibility_changed or local_moved):
        return
    state_events = {key: events.get(ev) for key, ev in change.visibility_events.items()}
    if _is_public(state_events) and _has_local_member(room, members):
        UserDirectoryPublicRoom.objects.get_or_create(room=room)
    else:
        UserDirectoryPublicRoom.objects.filter(room=room).delete()
