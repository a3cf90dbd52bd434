"""A deactivated account keeps no key backup (as Synapse: its room keys are deleted)."""

from __future__ import annotations

from django.contrib.admin.sites import site
from django.test import Client

from accounts.models import User
from accounts.services.deactivation import do_deactivate_account
from keybackup.models import BackupSession, BackupVersion
from tests.conftest import MatrixTestClient, Persona
from tests.keybackup.helpers import ROOM, create_version, key, keys_path


def test_deactivation_deletes_the_users_backups(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    old = create_version(api, alice)
    api.put(keys_path(old, ROOM, "s1"), key(), token=alice.access_token)
    current = create_version(api, alice)
    api.put(keys_path(current, ROOM, "s1"), key(), token=alice.access_token)
    bobs = create_version(api, bob)
    api.put(keys_path(bobs, ROOM, "s1"), key(), token=bob.access_token)

    do_deactivate_account(User.objects.get(localpart="alice"))

    assert not BackupSession.objects.filter(backup__user__localpart="alice").exists()
    assert set(
        BackupVersion.objects.filter(user__localpart="alice").values_list("deleted", flat=True)
    ) == {True}
    assert BackupVersion.objects.get(user__localpart="alice", version=current).auth_data == {}
    # Bob's backup is untouched.
    assert api.get(keys_path(bobs, ROOM, "s1"), token=bob.access_token).body == key()


def test_the_admin_lists_backups_without_keys(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)
    api.put(
        keys_path(version, ROOM),
        {"sessions": {"s1": key(marker="SECRET1"), "s2": key(marker="SECRET2")}},
        token=alice.access_token,
    )
    admin_user = User.objects.create_superuser("operator", "pw")
    client = Client()
    client.force_login(admin_user)
    backup = BackupVersion.objects.get()

    listing = client.get("/admin/keybackup/backupversion/")
    detail = client.get(f"/admin/keybackup/backupversion/{backup.pk}/change/")

    assert listing.status_code == 200
    assert detail.status_code == 200
    page = listing.content.decode()
    assert "m.megolm_backup.v1.curve25519-aes-sha2" in page
    assert "SECRET" not in page
    assert "SECRET" not in detail.content.decode()
    assert BackupVersion in site._registry
    assert not site._registry[BackupVersion].has_change_permission(None)  # type: ignore[arg-type]
