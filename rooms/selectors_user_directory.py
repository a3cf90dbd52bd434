"""Searching the user directory (Client-Server API, "User directory").

Who may be found, as Synapse's default (``user_directory.search_all_users: false``):
the users joined to a room the searcher is joined to, and the users joined to a room
whose join rule is ``public`` or whose history is ``world_readable`` while this server
is in it (``UserDirectoryPublicRoom``). Deactivated users have no entry. The searcher
finds themself only through a public room, as in Synapse (sharing a room with oneself
does not count).

Why visibility is read from ``Membership`` at search time rather than kept in a table
of who shares a room with whom (Synapse's ``users_who_share_private_rooms``): that
table grows with the square of a room's members and every join or leave rewrites a
row per member, on the path that persists events; here a join writes one entry row (and
the room's public flag when a local user comes or goes). The search is one query: the
entries whose words match, each tested with ``EXISTS`` on the indexed
``membership_user`` (user_id, membership) rows, which stop at the first shared or
public room; the searcher's rooms are one indexed list. Measured
with bench/user_directory.py on SQLite, on 2 cores shared with other work (5,000
users, 1,000 rooms of which a tenth are public, 40,000 memberships): a median of
10-19 ms for a term whose words start those of ~500 users, 5-14 ms for one matching
~100 users or none (the scan of the entries' words is the floor); worst cases about
twice that. The cost follows the number of entries and of those that match, not the
number of memberships. At these figures the ORM query stands alone, with no
hand-written SQL twin.

Matching is by word prefix, case-insensitively (casefolded words; "ali" finds
"Alice Smith" and "@alice:example.org", "smi" finds "Alice Smith"); every word of the
term must start a word of the user ID or display name. Ranking: an exact match of the
display name, localpart or user ID first, then a display name or localpart that starts
with the term, then the rest; within each, users who share a room with the searcher
first, then by display name (users without one last), then by user ID.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, Exists, IntegerField, OuterRef, Q, Value, When

from rooms.models import Membership, UserDirectoryEntry, UserDirectoryPublicRoom
from rooms.services.user_directory import search_words


@dataclass(frozen=True)
class DirectoryUser:
    user_id: str
    display_name: str | None
    avatar_url: str | None


def search_users(searcher: str, term: str, limit: int) -> tuple[list[DirectoryUser], bool]:
    """Up to ``limit`` users ``searcher`` may find whose words ``term`` starts, best
    first; and whether more matched."""
    words = search_words(term)
    if not words or limit <= 0:
        return [], False
    key = term.strip().casefold()
    matches = Q()
    for word in words:
        matches &= Q(search_words__contains=" " + word)
    joined = Membership.objects.filter(user_id=OuterRef("user_id"), membership="join")
    my_rooms = Membership.objects.filter(user_id=searcher, membership="join").values("room_id")
    shares = Exists(joined.filter(room_id__in=my_rooms).exclude(user_id=searcher))
    public = Exists(joined.filter(room_id__in=UserDirectoryPublicRoom.objects.values("room_id")))
    rows = (
        UserDirectoryEntry.objects.filter(matches)
        .annotate(shares=shares, public=public)
        .filter(Q(shares=True) | Q(public=True))
        .annotate(
            match=Case(
                When(
                    Q(display_name_key=key) | Q(localpart_key=key) | Q(user_id=term.strip()),
                    then=Value(0),
                ),
                When(
                    Q(display_name_key__startswith=key) | Q(localpart_key__startswith=key),
                    then=Value(1),
                ),
                default=Value(2),
                output_field=IntegerField(),
            ),
            unnamed=Case(When(display_name_key="", then=Value(1)), default=Value(0)),
        )
        .order_by("match", "-shares", "unnamed", "display_name_key", "user_id")
        # With ``shares`` selected, the ordering names its column instead of computing
        # the EXISTS again.
        .values_list("user_id", "display_name", "avatar_url", "shares")[: limit + 1]
    )
    found = [DirectoryUser(*row[:3]) for row in rows]
    return found[:limit], len(found) > limit
