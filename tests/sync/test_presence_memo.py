"""/sync's presence bookkeeping reads a user's presence row at most once in a while."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from presence import services
from presence.models import Presence
from tests.conftest import MatrixTestClient, Persona


def _presence_reads(queries: list[dict[str, str]]) -> int:
    table = Presence._meta.db_table
    return sum(1 for q in queries if q["sql"].startswith("SELECT") and f'"{table}"' in q["sql"])


def test_a_second_sync_soon_after_does_not_read_presence_again(alice: Persona) -> None:
    services.do_record_sync(alice.user_id, "online")
    with CaptureQueriesContext(connection) as again:
        services.do_record_sync(alice.user_id, "online")
    assert _presence_reads(again.captured_queries) == 0
    assert Presence.objects.get(user_id=alice.user_id).state == "online"


def test_a_state_set_in_between_is_not_hidden_by_the_memo(
    api: MatrixTestClient, alice: Persona
) -> None:
    services.do_record_sync(alice.user_id, "online")
    put = api.put(
        f"presence/{alice.user_id}/status", {"presence": "unavailable"}, token=alice.access_token
    )
    assert put.status == 200, put.body
    assert Presence.objects.get(user_id=alice.user_id).state == "unavailable"
    # The next /sync says online again: the memo knows the state changed and writes it.
    services.do_record_sync(alice.user_id, "online")
    assert Presence.objects.get(user_id=alice.user_id).state == "online"
