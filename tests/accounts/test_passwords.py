"""How passwords are stored: argon2 in production.

Tests run with a fast hasher first in the list (config/settings.py, TESTING), so the
production list is checked in a fresh interpreter that is not running pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.contrib.auth.hashers import make_password

from accounts.models import User
from tests.conftest import MatrixTestClient

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.contrib.auth.hashers import make_password
print(json.dumps({"hashers": settings.PASSWORD_HASHERS, "hash": make_password("pw")}))
"""


def production_password_settings(tmp_path: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        TRELLIS_DATA_DIR=str(tmp_path),
        TRELLIS_SECRET_KEY="probe",
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_production_hashes_passwords_with_argon2_only(tmp_path: Path) -> None:
    probe = production_password_settings(tmp_path)

    assert probe["hashers"] == ["accounts.hashers.TrellisArgon2PasswordHasher"]
    # Argon2id with 19 MiB, 2 passes, 1 lane (OWASP's minimum), not Django's 100 MiB.
    assert str(probe["hash"]).startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")


def test_an_argon2_password_logs_in_under_the_test_settings(api: MatrixTestClient) -> None:
    # The test hasher list keeps argon2, so hashes made in production still verify.
    User.objects.create_user("carol")
    User.objects.filter(localpart="carol").update(
        password=make_password("carol pw", hasher="argon2")
    )

    assert api.login("carol", "carol pw").status == 200
    assert api.login("carol", "wrong").status == 403


def test_the_raw_password_is_never_stored(api: MatrixTestClient) -> None:
    carol = api.register("carol", password="a very particular password")

    stored = User.objects.get(localpart="carol").password
    assert carol.password not in stored
    assert stored.split("$")[0] in {"md5", "argon2"}


def test_an_over_long_password_never_matches(api: MatrixTestClient) -> None:
    long_password = "x" * 600
    User.objects.create_user("carol", long_password)

    response = api.login("carol", long_password)

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
