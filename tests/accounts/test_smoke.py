from tests.conftest import MatrixTestClient, Persona


def test_registered_user_is_who_they_say(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("account/whoami", token=alice.access_token)
    assert response.status == 200
    assert response.body == {
        "user_id": alice.user_id,
        "device_id": alice.device_id,
        "is_guest": False,
    }
