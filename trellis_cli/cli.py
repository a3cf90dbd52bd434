"""The ``trellis`` command line: arguments, dispatch, and how failures are shown.

A Matrix error from the server is printed as ``errcode: error`` on standard error and
the exit status is 1; so is any other failure (``error: ...``). Wrong arguments exit
with status 2, as argparse does.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from trellis_cli import commands
from trellis_cli.client import MatrixHTTPError, Unreachable
from trellis_cli.session import SessionError

DEFAULT_HOMESERVER = "http://127.0.0.1:8008"


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trellis",
        description="A small Matrix client for the command line.",
        epilog="The session (homeserver and access token) is kept in "
        "$XDG_CONFIG_HOME/trellis-cli/session.json.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, run: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(run=run)
        return p

    def account(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--homeserver",
            default=os.environ.get("TRELLIS_HOMESERVER", DEFAULT_HOMESERVER),
            help="the homeserver's base URL (default: $TRELLIS_HOMESERVER or %(default)s)",
        )
        p.add_argument("username", help="the user name (localpart) or full user ID")
        p.add_argument(
            "--password",
            help="the password (default: asked for, or the first line of standard input)",
        )

    p = command("register", commands.register, "create an account and log in")
    account(p)
    p.add_argument("--registration-token", help="for servers that register by token only")

    account(command("login", commands.login, "log in with a password and keep the session"))
    command("whoami", commands.whoami, "show the logged-in user")
    command("logout", commands.logout, "log out and forget the session")
    command("rooms", commands.rooms, "list joined rooms with their names")

    p = command("create-room", commands.create_room, "create a room and print its ID")
    p.add_argument("--name")
    p.add_argument("--topic")
    p.add_argument("--alias", help="the local part of an alias, e.g. 'lobby' for #lobby:server")
    p.add_argument("--public", action="store_true", help="anyone may join; listed publicly")
    p.add_argument("--invite", action="append", metavar="USER_ID", help="may be repeated")

    p = command("join", commands.join, "join a room by ID or alias")
    p.add_argument("room", help="!room:id or #alias:server")

    p = command("send", commands.send, "send a text message and print its event ID")
    p.add_argument("room", help="!room:id or #alias:server")
    p.add_argument("text", help="the message; - reads it from standard input")
    p.add_argument("--notice", action="store_true", help="send as m.notice (for bots)")

    p = command("tail", commands.tail, "print a room's new messages as they arrive")
    p.add_argument("room", help="!room:id or #alias:server")
    p.add_argument("--count", type=positive_int, metavar="N", help="stop after N messages")

    p = command("upload", commands.upload, "upload a file and print its mxc:// URI")
    p.add_argument("file")
    p.add_argument("--room", help="also send it to this room (as m.image or m.file)")
    p.add_argument("--content-type", help="default: guessed from the file name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except MatrixHTTPError as error:
        print(f"{error.errcode}: {error.error}", file=sys.stderr)
        return 1
    except (commands.CLIError, SessionError, Unreachable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status
