"""The stored session: homeserver URL, user ID, device ID and access token.

Kept in ``$XDG_CONFIG_HOME/trellis-cli/session.json`` (``~/.config`` when the variable
is unset), created readable and writable by its owner only: the access token is as good
as the password until it is logged out.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Session:
    homeserver: str
    user_id: str
    device_id: str
    access_token: str


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "trellis-cli"


def session_path() -> Path:
    return config_dir() / "session.json"


def load() -> Session | None:
    path = session_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        raise SessionError(f"{path} is not a session file; log in again") from None
    try:
        return Session(
            homeserver=str(data["homeserver"]),
            user_id=str(data["user_id"]),
            device_id=str(data.get("device_id", "")),
            access_token=str(data["access_token"]),
        )
    except (KeyError, TypeError):
        raise SessionError(f"{path} is not a session file; log in again") from None


def save(session: Session) -> Path:
    path = session_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created 0600 from the start, so the token is never readable by others, not even
    # for a moment; an older file keeps its inode but gets the mode too.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(asdict(session), file, indent=2)
        file.write("\n")
    return path


def delete() -> None:
    session_path().unlink(missing_ok=True)


class SessionError(Exception):
    pass
