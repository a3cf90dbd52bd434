from django.urls import re_path

from rooms.api import (
    directory,
    ephemeral,
    moderation,
    relations,
    rooms,
    search,
    spaces,
    user_directory,
)
from rooms.federation import invite_knock_views as handshakes
from rooms.federation import third_party_invite_views as third_party
from rooms.federation import views as federation

C = r"^_matrix/client/(?:r0|v3)/"
R = C + r"rooms/(?P<room_id>[^/]+)/"
R1 = r"^_matrix/client/v1/rooms/(?P<room_id>[^/]+)/"
REL = R1 + r"relations/(?P<event_id>[^/]+)"

urlpatterns = [
    re_path(C + r"createRoom$", rooms.CreateRoomView.as_view()),
    re_path(C + r"join/(?P<room_id_or_alias>[^/]+)$", rooms.JoinView.as_view()),
    re_path(C + r"knock/(?P<room_id_or_alias>[^/]+)$", rooms.KnockView.as_view()),
    re_path(C + r"joined_rooms$", rooms.JoinedRoomsView.as_view()),
    re_path(R + r"join$", rooms.RoomJoinView.as_view()),
    re_path(R + r"leave$", rooms.LeaveView.as_view()),
    re_path(R + r"forget$", rooms.ForgetView.as_view()),
    re_path(R + r"invite$", rooms.InviteView.as_view()),
    re_path(R + r"kick$", rooms.KickView.as_view()),
    re_path(R + r"ban$", rooms.BanView.as_view()),
    re_path(R + r"unban$", rooms.UnbanView.as_view()),
    re_path(R + r"send/(?P<event_type>[^/]+)/(?P<txn_id>[^/]+)$", rooms.SendView.as_view()),
    re_path(R + r"state$", rooms.FullStateView.as_view()),
    re_path(R + r"state/(?P<event_type>[^/]+)/?$", rooms.StateView.as_view()),
    re_path(R + r"state/(?P<event_type>[^/]+)/(?P<state_key>.+)$", rooms.StateView.as_view()),
    re_path(R + r"members$", rooms.MembersView.as_view()),
    re_path(R + r"joined_members$", rooms.JoinedMembersView.as_view()),
    re_path(R + r"redact/(?P<event_id>[^/]+)/(?P<txn_id>[^/]+)$", rooms.RedactView.as_view()),
    re_path(R + r"event/(?P<event_id>[^/]+)$", rooms.EventView.as_view()),
    re_path(C + r"events/(?P<event_id>[^/]+)$", rooms.LegacyEventView.as_view()),
    re_path(R + r"messages$", rooms.MessagesView.as_view()),
    re_path(R + r"typing/(?P<user_id>[^/]+)$", ephemeral.TypingView.as_view()),
    re_path(
        R + r"receipt/(?P<receipt_type>[^/]+)/(?P<event_id>[^/]+)$",
        ephemeral.ReceiptView.as_view(),
    ),
    re_path(R + r"read_markers$", ephemeral.ReadMarkersView.as_view()),
    re_path(C + r"directory/room/(?P<room_alias>.+)$", directory.RoomAliasView.as_view()),
    re_path(R + r"aliases$", directory.RoomAliasesView.as_view()),
    re_path(
        C + r"directory/list/room/(?P<room_id>[^/]+)$", directory.RoomVisibilityView.as_view()
    ),
    re_path(C + r"publicRooms$", directory.PublicRoomsView.as_view()),
    re_path(C + r"user_directory/search$", user_directory.UserDirectorySearchView.as_view()),
    re_path(R + r"upgrade$", moderation.UpgradeRoomView.as_view()),
    re_path(R + r"report$", moderation.ReportRoomView.as_view()),
    re_path(R + r"report/(?P<event_id>[^/]+)$", moderation.ReportEventView.as_view()),
    re_path(C + r"users/(?P<user_id>[^/]+)/report$", moderation.ReportUserView.as_view()),
    re_path(C + r"search$", search.SearchView.as_view()),
    re_path(R + r"context/(?P<event_id>[^/]+)$", relations.ContextView.as_view()),
    re_path(REL + r"$", relations.RelationsView.as_view()),
    re_path(REL + r"/(?P<rel_type>[^/]+)$", relations.RelationsView.as_view()),
    re_path(
        REL + r"/(?P<rel_type>[^/]+)/(?P<event_type>[^/]+)$", relations.RelationsView.as_view()
    ),
    re_path(R1 + r"threads$", relations.ThreadsView.as_view()),
    re_path(R1 + r"hierarchy$", spaces.HierarchyView.as_view()),
    re_path(r"^_matrix/client/v1/mutual_rooms$", rooms.MutualRoomsView.as_view()),
    re_path(
        r"^_matrix/client/v1/room_summary/(?P<room_id_or_alias>[^/]+)$",
        spaces.RoomSummaryView.as_view(),
    ),
    re_path(R1 + r"timestamp_to_event$", relations.TimestampToEventView.as_view()),
]

# Server-Server API: what other servers may read of rooms, and their transactions
# (rooms.federation.views; X-Matrix signed).
F = r"^_matrix/federation/v1/"
FR = r"(?P<room_id>[^/]+)"
urlpatterns += [
    re_path(F + r"event/(?P<event_id>[^/]+)$", federation.EventView.as_view()),
    re_path(F + r"state/" + FR + "$", federation.StateView.as_view()),
    re_path(F + r"state_ids/" + FR + "$", federation.StateIdsView.as_view()),
    re_path(
        F + r"event_auth/" + FR + r"/(?P<event_id>[^/]+)$", federation.EventAuthView.as_view()
    ),
    re_path(F + r"backfill/" + FR + "$", federation.BackfillView.as_view()),
    re_path(F + r"get_missing_events/" + FR + "$", federation.MissingEventsView.as_view()),
    re_path(F + r"timestamp_to_event/" + FR + "$", federation.TimestampToEventView.as_view()),
    re_path(F + r"version$", federation.VersionView.as_view()),
    re_path(F + r"query/directory$", federation.QueryDirectoryView.as_view()),
    re_path(F + r"query/profile$", federation.QueryProfileView.as_view()),
    re_path(F + r"publicRooms$", federation.PublicRoomsView.as_view()),
    re_path(F + r"hierarchy/" + FR + "$", federation.HierarchyView.as_view()),
    re_path(F + r"send/(?P<txn_id>[^/]+)$", federation.SendTransactionView.as_view()),
]

# Joining, leaving, invites and knocks through this server (rooms.federation.membership,
# rooms.federation.invites, rooms.federation.knocks).
F2 = r"^_matrix/federation/v2/"
EV = r"/(?P<event_id>[^/]+)$"
UID = r"/(?P<user_id>[^/]+)$"
urlpatterns += [
    re_path(F + r"make_join/" + FR + UID, federation.MakeJoinView.as_view()),
    re_path(F + r"send_join/" + FR + EV, federation.SendJoinV1View.as_view()),
    re_path(F2 + r"send_join/" + FR + EV, federation.SendJoinView.as_view()),
    re_path(F + r"make_leave/" + FR + UID, federation.MakeLeaveView.as_view()),
    re_path(F + r"send_leave/" + FR + EV, federation.SendLeaveV1View.as_view()),
    re_path(F2 + r"send_leave/" + FR + EV, federation.SendLeaveView.as_view()),
    re_path(F2 + r"invite/" + FR + EV, handshakes.InviteV2View.as_view()),
    re_path(F + r"invite/" + FR + EV, handshakes.InviteV1View.as_view()),
    re_path(F + r"make_knock/" + FR + UID, handshakes.MakeKnockView.as_view()),
    re_path(F + r"send_knock/" + FR + EV, handshakes.SendKnockView.as_view()),
    re_path(F + r"3pid/onbind$", third_party.OnBindView.as_view()),
    re_path(
        F + r"exchange_third_party_invite/" + FR + "$",
        third_party.ExchangeThirdPartyInviteView.as_view(),
    ),
]
