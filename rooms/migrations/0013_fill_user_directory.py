"""Fill the user directory of a server that had rooms before it (rooms.services.
user_directory keeps it from then on): an entry for every user joined to a room (a
local user's profile, a remote user's join event), and the rooms public to it."""

from django.conf import settings
from django.db import migrations

from rooms.services.user_directory import entry_row

JOIN_RULES = "m.room.join_rules"
HISTORY_VISIBILITY = "m.room.history_visibility"
CHUNK = 1000
COLUMNS = [
    "user_id",
    "display_name",
    "avatar_url",
    "search_words",
    "display_name_key",
    "localpart_key",
]


def fill_user_directory(apps, schema_editor):
    Membership = apps.get_model("rooms", "Membership")
    CurrentState = apps.get_model("rooms", "CurrentState")
    Event = apps.get_model("rooms", "Event")
    Entry = apps.get_model("rooms", "UserDirectoryEntry")
    PublicRoom = apps.get_model("rooms", "UserDirectoryPublicRoom")
    User = apps.get_model("accounts", "User")
    suffix = ":" + settings.SERVER_NAME

    def contents(event_ids):
        rows = Event.objects.filter(event_id__in=event_ids).values_list("event_id", "pdu")
        return {event_id: (pdu or {}).get("content") or {} for event_id, pdu in rows}

    joined = Membership.objects.filter(membership="join")
    with_local = set(
        joined.filter(user_id__endswith=suffix).values_list("room_id", flat=True).distinct()
    )
    state = list(
        CurrentState.objects.filter(
            type__in=[JOIN_RULES, HISTORY_VISIBILITY], state_key="", room_id__in=with_local
        ).values_list("room_id", "type", "event_id")
    )
    public = set()
    for start in range(0, len(state), CHUNK):
        chunk = state[start : start + CHUNK]
        content = contents([event_id for _, _, event_id in chunk])
        for room_id, event_type, event_id in chunk:
            got = content.get(event_id, {})
            if (event_type == JOIN_RULES and got.get("join_rule") == "public") or (
                event_type == HISTORY_VISIBILITY
                and got.get("history_visibility") == "world_readable"
            ):
                public.add(room_id)
    PublicRoom.objects.bulk_create(
        [PublicRoom(room_id=room_id) for room_id in public], ignore_conflicts=True
    )

    # One entry per user: the latest join event of a remote user.
    latest = {}
    for user_id, event_id, position in joined.values_list(
        "user_id", "event_id", "stream_ordering"
    ).iterator(chunk_size=CHUNK):
        if user_id not in latest or position > latest[user_id][1]:
            latest[user_id] = (event_id, position)
    users = sorted(latest)
    for start in range(0, len(users), CHUNK):
        chunk = users[start : start + CHUNK]
        local = {u[1:].split(":", 1)[0]: u for u in chunk if u.endswith(suffix)}
        profiles = {
            local[localpart]: profile
            for localpart, profile in User.objects.filter(
                localpart__in=local, is_active=True
            ).values_list("localpart", "profile")
        }
        content = contents([latest[u][0] for u in chunk if not u.endswith(suffix)])
        rows = []
        for user_id in chunk:
            if user_id.endswith(suffix):
                if user_id not in profiles:
                    continue
                source = profiles[user_id] or {}
            else:
                source = content.get(latest[user_id][0], {})
            row = entry_row(user_id, source.get("displayname"), source.get("avatar_url"))
            rows.append(Entry(**dict(zip(COLUMNS, row))))
        Entry.objects.bulk_create(rows, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("rooms", "0012_user_directory"),
        ("accounts", "0007_threepids"),
    ]

    operations = [migrations.RunPython(fill_user_directory, migrations.RunPython.noop)]
