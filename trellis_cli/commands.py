"""What each command does, given its parsed arguments; each returns an exit status.

Results go to standard output one per line (a room ID, an event ID, an mxc URI, a
message), so they can be used in scripts; Matrix errors are raised as
:class:`~trellis_cli.client.MatrixHTTPError` and printed by the caller.
"""

from __future__ import annotations

import argparse
import getpass
import json
import mimetypes
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from trellis_cli import session as sessions
from trellis_cli.client import MEDIA_V3, MatrixClient, MatrixHTTPError, path_param
from trellis_cli.images import image_size

DEVICE_NAME = "trellis-cli"
# UIA stages this client can complete on its own (or with --registration-token).
DUMMY = "m.login.dummy"
REGISTRATION_TOKEN = "m.login.registration_token"
# Milliseconds each long-poll /sync of `tail` waits on the server.
TAIL_POLL_MS = 30_000
TAIL_TIMELINE_LIMIT = 100


class CLIError(Exception):
    """A failure that is not the server's answer (not logged in, no such file, ...)."""


def out(line: str) -> None:
    print(line, flush=True)


def logged_in() -> tuple[MatrixClient, sessions.Session]:
    session = sessions.load()
    if session is None:
        raise CLIError("not logged in: run `trellis login` or `trellis register` first")
    return MatrixClient(session.homeserver, session.access_token), session


def read_password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    # A script piping the password in: the first line of standard input.
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise CLIError("no password given (use --password or type it in)")
    return line


def store_login(client: MatrixClient, answer: dict[str, Any]) -> None:
    session = sessions.Session(
        homeserver=client.homeserver,
        user_id=str(answer["user_id"]),
        device_id=str(answer.get("device_id", "")),
        access_token=str(answer["access_token"]),
    )
    sessions.save(session)
    out(session.user_id)


def register(args: argparse.Namespace) -> int:
    """POST /register through user-interactive auth (dummy and registration-token stages)."""
    client = MatrixClient(args.homeserver)
    body = {
        "username": args.username,
        "password": read_password(args),
        "initial_device_display_name": DEVICE_NAME,
    }
    try:
        answer = client.post("register", body)
    except MatrixHTTPError as error:
        if error.status != 401 or not isinstance(error.body, dict) or "flows" not in error.body:
            raise
        answer = complete_uia(client, "register", body, error.body, args.registration_token)
    store_login(client, answer)
    return 0


def complete_uia(
    client: MatrixClient,
    path: str,
    body: dict[str, Any],
    challenge: dict[str, Any],
    registration_token: str | None,
) -> Any:
    """Complete the first flow of a 401 challenge whose stages this client can do."""
    can_do = {DUMMY} | ({REGISTRATION_TOKEN} if registration_token else set())
    flows = [flow.get("stages", []) for flow in challenge.get("flows", [])]
    flow = next((stages for stages in flows if set(stages) <= can_do), None)
    if flow is None:
        needs = " or ".join(" + ".join(stages) for stages in flows) or "nothing known"
        hint = " (try --registration-token)" if any(REGISTRATION_TOKEN in s for s in flows) else ""
        raise CLIError(f"the server asks for {needs}, which this client cannot do{hint}")
    session_id = challenge.get("session")
    completed = set(challenge.get("completed", []))
    for stage in flow:
        if stage in completed:
            continue
        auth: dict[str, Any] = {"type": stage, "session": session_id}
        if stage == REGISTRATION_TOKEN:
            auth["token"] = registration_token
        try:
            return client.post(path, {**body, "auth": auth})
        except MatrixHTTPError as error:
            if error.status != 401 or not isinstance(error.body, dict):
                raise
            if "errcode" in error.body and stage not in error.body.get("completed", []):
                raise
            completed = set(error.body.get("completed", []))
    raise CLIError("the server did not finish registration after every stage")


def login(args: argparse.Namespace) -> int:
    """POST /login with a password."""
    client = MatrixClient(args.homeserver)
    answer = client.post(
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": args.username},
            "password": read_password(args),
            "initial_device_display_name": DEVICE_NAME,
        },
    )
    store_login(client, answer)
    return 0


def whoami(args: argparse.Namespace) -> int:
    """GET /account/whoami"""
    client, _ = logged_in()
    answer = client.get("account/whoami")
    out(str(answer["user_id"]))
    if answer.get("device_id"):
        out(f"device: {answer['device_id']}")
    return 0


def logout(args: argparse.Namespace) -> int:
    """POST /logout, then forget the stored session."""
    client, _ = logged_in()
    try:
        client.post("logout")
    except MatrixHTTPError as error:
        # The token is already dead: nothing left to keep.
        if error.errcode == "M_UNKNOWN_TOKEN":
            sessions.delete()
        raise
    sessions.delete()
    out("logged out")
    return 0


def room_id_of(client: MatrixClient, room: str) -> str:
    """A room ID, or the ID an alias (``#name:server``) points at."""
    if room.startswith("#"):
        return str(client.get(f"directory/room/{path_param(room)}")["room_id"])
    if not room.startswith("!"):
        raise CLIError(f"{room!r} is neither a room ID (!...) nor an alias (#...)")
    return room


def room_name(client: MatrixClient, room_id: str, user_id: str) -> str:
    """The room's name as clients show it (Client-Server API, "Calculating the display
    name for a room"): m.room.name, else the canonical alias, else its other members."""
    for event_type, key in (("m.room.name", "name"), ("m.room.canonical_alias", "alias")):
        try:
            content = client.get(f"rooms/{path_param(room_id)}/state/{event_type}/")
        except MatrixHTTPError as error:
            if error.errcode in ("M_NOT_FOUND", "M_FORBIDDEN"):
                continue
            raise
        if isinstance(content.get(key), str) and content[key]:
            return str(content[key])
    joined = client.get(f"rooms/{path_param(room_id)}/joined_members")["joined"]
    others = sorted(
        (member.get("display_name") or member_id)
        for member_id, member in joined.items()
        if member_id != user_id
    )
    return members_name(others)


def members_name(others: list[str]) -> str:
    """A room without a name, called after its other members as the spec suggests."""
    if not others:
        return "Empty room"
    if len(others) == 1:
        return others[0]
    if len(others) <= 5:
        return f"{', '.join(others[:-1])} and {others[-1]}"
    return f"{', '.join(others[:5])} and {len(others) - 5} others"


def rooms(args: argparse.Namespace) -> int:
    """GET /joined_rooms, each with its name: one ``room_id<TAB>name`` line per room."""
    client, session = logged_in()
    for room_id in client.get("joined_rooms")["joined_rooms"]:
        out(f"{room_id}\t{room_name(client, room_id, session.user_id)}")
    return 0


def create_room(args: argparse.Namespace) -> int:
    """POST /createRoom"""
    client, _ = logged_in()
    body: dict[str, Any] = {"preset": "public_chat" if args.public else "private_chat"}
    if args.public:
        body["visibility"] = "public"
    if args.name:
        body["name"] = args.name
    if args.topic:
        body["topic"] = args.topic
    if args.alias:
        body["room_alias_name"] = args.alias
    if args.invite:
        body["invite"] = args.invite
    out(str(client.post("createRoom", body)["room_id"]))
    return 0


def join(args: argparse.Namespace) -> int:
    """POST /join/{roomIdOrAlias}"""
    client, _ = logged_in()
    out(str(client.post(f"join/{path_param(args.room)}")["room_id"]))
    return 0


def new_txn_id() -> str:
    return f"trellis-cli.{time.time_ns()}.{secrets.token_hex(4)}"


def send_event(client: MatrixClient, room_id: str, content: dict[str, Any]) -> str:
    path = f"rooms/{path_param(room_id)}/send/m.room.message/{new_txn_id()}"
    return str(client.put(path, content)["event_id"])


def send(args: argparse.Namespace) -> int:
    """PUT /rooms/{roomId}/send/m.room.message/{txnId} with a text message."""
    client, _ = logged_in()
    text = sys.stdin.read() if args.text == "-" else args.text
    # A message piped in usually ends with a newline that is not part of it.
    text = text.removesuffix("\n") if args.text == "-" else text
    if not text:
        raise CLIError("nothing to send: the message is empty")
    room_id = room_id_of(client, args.room)
    out(
        send_event(
            client, room_id, {"msgtype": "m.notice" if args.notice else "m.text", "body": text}
        )
    )
    return 0


def describe(event: dict[str, Any]) -> str:
    """One line for a message event: ``sender: body`` (and the mxc URI of a file)."""
    content = event.get("content", {})
    body = content.get("body", "")
    text = body if isinstance(body, str) else json.dumps(body)
    msgtype = content.get("msgtype", "")
    if msgtype in ("m.image", "m.file", "m.audio", "m.video") and content.get("url"):
        text = f"[{msgtype}] {text} {content['url']}"
    elif msgtype == "m.emote":
        text = f"* {text}"
    return f"{event.get('sender', '?')}: {text}"


def tail_filter(room_id: str, limit: int) -> str:
    """A /sync filter for one room's timeline and nothing else."""
    nothing = {"not_types": ["*"]}
    return json.dumps(
        {
            "presence": nothing,
            "account_data": nothing,
            "room": {
                "rooms": [room_id],
                "timeline": {"limit": limit},
                "state": {"lazy_load_members": True, **nothing},
                "ephemeral": nothing,
                "account_data": nothing,
            },
        }
    )


def tail(args: argparse.Namespace) -> int:
    """Long-poll GET /sync and print the room's new messages as they arrive."""
    client, _ = logged_in()
    room_id = room_id_of(client, args.room)
    # /sync shows only rooms one is in: waiting on any other would wait forever.
    if room_id not in client.get("joined_rooms")["joined_rooms"]:
        raise CLIError(f"you are not in {args.room}: `trellis join` it first")
    # Where "now" is: the first sync's position; what came before is not printed.
    since = str(client.get("sync", query={"filter": tail_filter(room_id, 1)})["next_batch"])
    incremental = tail_filter(room_id, TAIL_TIMELINE_LIMIT)
    # On standard error, so the messages alone go to standard output.
    print(f"following {room_id}; Ctrl-C stops", file=sys.stderr, flush=True)
    printed = 0
    while args.count is None or printed < args.count:
        answer = client.get(
            "sync",
            query={"since": since, "timeout": str(TAIL_POLL_MS), "filter": incremental},
            timeout=TAIL_POLL_MS / 1000 + 60,
        )
        since = str(answer["next_batch"])
        room = answer.get("rooms", {}).get("join", {}).get(room_id, {})
        for event in room.get("timeline", {}).get("events", []):
            if event.get("type") != "m.room.message":
                continue
            out(describe(event))
            printed += 1
            if args.count is not None and printed >= args.count:
                break
    return 0


def upload(args: argparse.Namespace) -> int:
    """POST /_matrix/media/v3/upload; with --room, send the file as m.image or m.file."""
    client, _ = logged_in()
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CLIError(f"cannot read {path}: {error.strerror}") from None
    content_type = (
        args.content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )
    answer = client.request(
        "POST",
        f"{MEDIA_V3}/upload",
        raw=data,
        content_type=content_type,
        query={"filename": path.name},
    )
    mxc = str(answer["content_uri"])
    out(mxc)
    if args.room:
        room_id = room_id_of(client, args.room)
        info: dict[str, Any] = {"mimetype": content_type, "size": len(data)}
        size = image_size(data) if content_type.startswith("image/") else None
        if size:
            info["w"], info["h"] = size
        content = {
            "msgtype": "m.image" if content_type.startswith("image/") else "m.file",
            "body": path.name,
            "filename": path.name,
            "url": mxc,
            "info": info,
        }
        out(send_event(client, room_id, content))
    return 0
