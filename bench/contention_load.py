"""One big write against everyone else's sends: does a createRoom with 2,000 invitees
stall the other writers on the server? (issue 15, item 6)

    python bench/contention_load.py --url URL [--senders 4] [--invitees 2000]
        [--interval 0.1] [--quiet-s 20] [--label L] [--out results.jsonl]

Registers ``senders`` users, each with a room of their own, and one creator. Each sender
sends ``m.room.message`` into its own room at a steady pace (one every ``interval``
seconds, or back to back when the server is slower than that), timing every PUT:

1. ``without``: ``quiet-s`` seconds of sends alone;
2. ``during``: the creator's ``POST /createRoom`` with ``invitees`` invitees (user IDs on
   this server that need not exist) runs while the senders go on; the sends that start
   while it is in flight are counted.

Prints one JSON line (p50/p99/max of the others' send latency in each phase, the
createRoom's duration and status, and the ratio of the p99s) and a short table; the
issue's target is a p99 during within 2x of the p99 without. Needs aiohttp (the bench
venv). Every response is checked: any failed send or createRoom makes the run invalid
(exit status 1).
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


async def register(s: aiohttp.ClientSession, base: str, name: str) -> tuple[str, str]:
    body = {"username": name, "password": "bench-pw", "auth": {"type": "m.login.dummy"}}
    answer = await call(s, "POST", f"{base}{C}/register", json=body)
    return answer["access_token"], answer["user_id"]


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile, as mxbench reports them."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return round(ordered[int(rank) - 1], 2)


def summary(latencies: list[float]) -> dict:
    return {
        "n": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": round(max(latencies), 2) if latencies else None,
    }


async def run(a) -> dict:
    run_id = "ct" + secrets.token_hex(3)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        users = [await register(s, a.url, f"{run_id}_s{i}") for i in range(a.senders)]
        creator_token, creator_id = await register(s, a.url, f"{run_id}_creator")
        server_name = creator_id.split(":", 1)[1]
        rooms = [
            (await call(s, "POST", f"{a.url}{C}/createRoom", token, json={}))["room_id"]
            for token, _ in users
        ]
        # (start time, latency ms) of every send; phases are cut by start time.
        sends: list[tuple[float, float]] = []
        errors: list[str] = []
        stop = asyncio.Event()

        async def sender(index: int) -> None:
            token, _ = users[index]
            path = f"{a.url}{C}/rooms/{quote(rooms[index])}/send/m.room.message/"
            n = 0
            while not stop.is_set():
                n += 1
                start = time.perf_counter()
                try:
                    await call(s, "PUT", f"{path}t{n}", token, json={"body": f"m{n}"})
                except Exception as exc:  # reported, makes the run invalid
                    errors.append(str(exc)[:300])
                elapsed = time.perf_counter() - start
                sends.append((start, elapsed * 1000))
                await asyncio.sleep(max(0.0, a.interval - elapsed))

        tasks = [asyncio.create_task(sender(i)) for i in range(a.senders)]
        quiet_start = time.perf_counter()
        await asyncio.sleep(a.quiet_s)
        invitees = [f"@{run_id}_inv{n}:{server_name}" for n in range(a.invitees)]
        big_start = time.perf_counter()
        try:
            created = await call(
                s,
                "POST",
                f"{a.url}{C}/createRoom",
                creator_token,
                json={"name": "everyone", "invite": invitees},
            )
            create_status = "ok"
        except Exception as exc:
            created, create_status = {}, str(exc)[:300]
            errors.append(create_status)
        big_end = time.perf_counter()
        stop.set()
        await asyncio.gather(*tasks)

    without = [ms for start, ms in sends if quiet_start <= start < big_start]
    during = [ms for start, ms in sends if big_start <= start < big_end]
    result = {
        "workload": "contention",
        "label": a.label,
        "url": a.url,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ok": not errors,
        "params": {"senders": a.senders, "invitees": a.invitees, "interval_s": a.interval},
        "create_room": {
            "status": create_status,
            "seconds": round(big_end - big_start, 2),
            "room_id": created.get("room_id"),
        },
        "without": summary(without),
        "during": summary(during),
        "errors": len(errors),
        "error_samples": errors[:5],
    }
    if result["without"]["p99_ms"] and result["during"]["p99_ms"]:
        result["p99_during_over_without"] = round(
            result["during"]["p99_ms"] / result["without"]["p99_ms"], 2
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--invitees", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--quiet-s", type=float, default=20.0)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", default=None, help="append the JSON line to this file")
    a = parser.parse_args()
    result = asyncio.run(run(a))
    line = json.dumps(result)
    print(line)
    if a.out:
        with open(a.out, "a") as f:
            f.write(line + "\n")
    w, d = result["without"], result["during"]
    print(
        f"== contention [{a.label}] {'OK' if result['ok'] else 'INVALID'}\n"
        f"  createRoom ({a.invitees} invitees)  {result['create_room']['seconds']} s "
        f"{result['create_room']['status']}\n"
        f"  others' sends without  n={w['n']} p50={w['p50_ms']} p99={w['p99_ms']} "
        f"max={w['max_ms']} ms\n"
        f"  others' sends during   n={d['n']} p50={d['p50_ms']} p99={d['p99_ms']} "
        f"max={d['max_ms']} ms\n"
        f"  p99 during / without   {result.get('p99_during_over_without')}",
        file=sys.stderr,
    )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
