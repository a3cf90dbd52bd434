"""Load for profiling /messages without /sync (mxbench's history workload starts from /sync).

    python bench/messages_load.py fill --url URL [--messages 10000] [--concurrency 10]
        -> prints {"room_id": ..., "token": ..., "messages": N} on stdout
    python bench/messages_load.py paginate --url URL --room-id R --token T --messages N
        [--page 100] [--passes 2]

``fill`` registers 4 users (m.login.dummy), creates a public room, joins the others and sends
the messages from them, ``concurrency`` in flight. ``paginate`` walks
``/messages?dir=b&limit=PAGE`` from the newest event (no ``from``, allowed since v1.3) back to
the creation, ``passes`` times, and checks every message came back. Used by profile.sh; the
figures it prints are only for orientation (compare servers with side_by_side.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from urllib.parse import quote

import aiohttp

C = "/_matrix/client/v3"


async def call(s: aiohttp.ClientSession, method: str, url: str, token: str | None = None, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with s.request(method, url, headers=headers, **kw) as r:
        body = await r.json(content_type=None)
        if r.status != 200:
            raise RuntimeError(f"{method} {url}: {r.status} {body}")
        return body


async def register(s: aiohttp.ClientSession, base: str, name: str) -> str:
    body = {"username": name, "password": "bench-pw", "auth": {"type": "m.login.dummy"}}
    return (await call(s, "POST", f"{base}{C}/register", json=body))["access_token"]


async def fill(a) -> None:
    run = "ml" + secrets.token_hex(3)
    async with aiohttp.ClientSession() as s:
        tokens = [await register(s, a.url, f"{run}_{i}") for i in range(4)]
        room = (
            await call(
                s,
                "POST",
                f"{a.url}{C}/createRoom",
                tokens[0],
                json={"preset": "public_chat", "name": "messages load"},
            )
        )["room_id"]
        for t in tokens[1:]:
            await call(s, "POST", f"{a.url}{C}/join/{quote(room)}", t, json={})
        queue = iter(range(a.messages))
        t0 = time.perf_counter()

        async def worker() -> None:
            for i in queue:
                url = f"{a.url}{C}/rooms/{quote(room)}/send/m.room.message/{run}{i}"
                await call(
                    s, "PUT", url, tokens[i % 4], json={"msgtype": "m.text", "body": f"m{i}"}
                )

        await asyncio.gather(*(worker() for _ in range(a.concurrency)))
        dt = time.perf_counter() - t0
    print(f"fill: {a.messages} messages in {dt:.1f} s ({a.messages / dt:.1f}/s)", file=sys.stderr)
    print(json.dumps({"room_id": room, "token": tokens[0], "messages": a.messages}))


async def paginate(a) -> int:
    async with aiohttp.ClientSession() as s:
        for p in range(a.passes):
            seen, pages, frm = 0, 0, None
            t0 = time.perf_counter()
            while True:
                params = {"dir": "b", "limit": str(a.page)}
                if frm:
                    params["from"] = frm
                js = await call(
                    s,
                    "GET",
                    f"{a.url}{C}/rooms/{quote(a.room_id)}/messages",
                    a.token,
                    params=params,
                )
                pages += 1
                seen += sum(1 for e in js["chunk"] if e.get("type") == "m.room.message")
                frm = js.get("end")
                if not js["chunk"] or not frm:
                    break
            dt = time.perf_counter() - t0
            print(
                f"pass {p + 1}: {seen} messages, {pages} pages in {dt:.1f} s "
                f"({seen / dt:.0f} events/s)",
                file=sys.stderr,
            )
            if seen != a.messages:
                print(f"pagination returned {seen} of {a.messages} messages", file=sys.stderr)
                return 1
    return 0


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("mode", choices=["fill", "paginate"])
    p.add_argument("--url", default="http://127.0.0.1:8008")
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--room-id")
    p.add_argument("--token")
    p.add_argument("--page", type=int, default=100)
    p.add_argument("--passes", type=int, default=2)
    a = p.parse_args()
    if a.mode == "fill":
        asyncio.run(fill(a))
    else:
        sys.exit(asyncio.run(paginate(a)))


if __name__ == "__main__":
    main()
