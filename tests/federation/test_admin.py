"""Operators see the keys Trellis holds for other servers, read-only."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from accounts.models import User
from federation.auth import authenticate_request
from federation.models import RemoteServerKey
from tests.federation.helpers import CAROL, FakeServer

CHANGELIST = "/admin/federation/remoteserverkey/"


@pytest.fixture
def operator(db: None) -> Client:
    User.objects.create_superuser("operator", "secret-password")
    client = Client()
    assert client.login(username="operator", password="secret-password")
    return client


def test_the_admin_lists_fetched_keys(operator: Client, carol: FakeServer) -> None:
    uri = "/_matrix/federation/v1/media/download/x"
    request = RequestFactory().get(uri, headers={"Authorization": carol.authorization("GET", uri)})
    authenticate_request(request)

    listing = operator.get(CHANGELIST)
    # The row's own key: on PostgreSQL IDs are not handed out again after a rollback.
    key = RemoteServerKey.objects.get(server_name=CAROL, key_id="ed25519:carol1")
    detail = operator.get(f"{CHANGELIST}{key.pk}/change/")

    assert listing.status_code == 200
    assert CAROL in listing.content.decode()
    assert "ed25519:carol1" in listing.content.decode()
    assert detail.status_code == 200
