"""The operator's view of pushers: a list filtered by user, and a read-only detail."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from push.models import Pusher
from tests.conftest import MatrixTestClient, Persona
from tests.push.conftest import http_pusher, set_pusher

URL = "https://push.example.org/_matrix/push/v1/notify"


@pytest.fixture
def operator(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("operator", "operator pw"))
    return client


def test_the_operator_sees_a_users_pushers(
    api: MatrixTestClient, alice: Persona, bob: Persona, operator: Client
) -> None:
    set_pusher(api, alice, http_pusher(URL, app_display_name="Alice's app"))
    set_pusher(api, bob, http_pusher(URL, app_display_name="Bob's app", pushkey="b"))
    listing = operator.get("/admin/push/pusher/").content.decode()
    assert "Alice&#x27;s app" in listing
    assert "Bob&#x27;s app" in listing
    assert URL in listing
    mine = operator.get("/admin/push/pusher/", {"user_id": alice.user_id})
    assert mine.status_code == 200
    text = mine.content.decode()
    assert "Alice&#x27;s app" in text
    assert "Bob&#x27;s app" not in text
    found = operator.get("/admin/push/pusher/", {"q": "bob"}).content.decode()
    assert "Bob&#x27;s app" in found
    assert "Alice&#x27;s app" not in found
    failing = operator.get("/admin/push/pusher/", {"delivery": "failing"}).content.decode()
    assert "Alice&#x27;s app" not in failing

    pusher = Pusher.objects.get(user_id=alice.user_id)
    page = operator.get(f"/admin/push/pusher/{pusher.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert alice.device_id in text
    assert "pushkey-1" in text

    # Read-only: no saving, no deleting, no adding.
    assert operator.post(f"/admin/push/pusher/{pusher.pk}/change/", {}).status_code == 403
    deleting = operator.post(f"/admin/push/pusher/{pusher.pk}/delete/", {"post": "yes"})
    assert deleting.status_code == 403
    assert operator.get("/admin/push/pusher/add/").status_code == 403
    assert Pusher.objects.filter(pk=pusher.pk).exists()
