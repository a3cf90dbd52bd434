"""Federation side by side: Trellis-to-Trellis and Synapse-to-Synapse in one run.

    .venv/bin/python bench/federation.py [--members 1000] [--state 1000] [--messages 300]
                                         [--kinds trellis,synapse] [--runs 1]

For each kind, two servers of that kind federate on loopback over their TLS listeners
(tests/live/federation_peers.py; Synapse is installed into its own virtualenv the first
time, tests/live/synapse.py), each on SQLite. On server A a room gets ``--members`` joined
users and ``--state`` more state events (a custom type, one state key each). Then:

- join: a user of server B joins the room by ID through A; the time of that one
  POST /join (make_join, send_join with the whole state and auth chain, checking it, storing
  it) is reported;
- throughput: 10 users of A send ``--messages`` messages in all, as fast as they are
  answered; the rate is messages divided by the time from the first send until B's user
  has every one of them in its /messages (polled).

Setting up the room (registering and joining the members) is not timed. Synapse gets
``bcrypt_rounds: 4`` so registering a thousand users takes seconds, not minutes; Trellis
hashes with Argon2 as configured. Prints a markdown table and writes it to
bench/results/<timestamp>-federation.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from tests.live.conftest import backend_environ, free_port, stop_homeserver  # noqa: E402
from tests.live.federation_peers import (  # noqa: E402
    Client,
    certificate_for,
    quote,
    start_federating_trellis,
)
from tests.live.synapse import FederationTls, start_synapse, stop_synapse  # noqa: E402

SENDERS = 10


@contextmanager
def trellis_pair(root: Path) -> Iterator[tuple[str, str, str, str]]:
    """(A's client URL, A's server name, B's client URL, B's server name)."""
    certs = {name: certificate_for(root / f"{name}-tls") for name in ("a", "b")}
    with ExitStack() as stack:
        servers = {}
        for name, other in (("a", "b"), ("b", "a")):
            data = root / name
            data.mkdir()
            backend = stack.enter_context(backend_environ(data, slot=4 if name == "a" else 5))
            server = start_federating_trellis(
                data,
                backend,
                federation_port=free_port(),
                cert=certs[name],
                trusted=[certs[other][0]],
            )
            stack.callback(stop_homeserver, server.server)
            servers[name] = server
        yield (
            servers["a"].url,
            servers["a"].server_name,
            servers["b"].url,
            servers["b"].server_name,
        )


@contextmanager
def synapse_pair(root: Path) -> Iterator[tuple[str, str, str, str]]:
    with ExitStack() as stack:
        peers = []
        for name in ("a", "b"):
            cert, key = certificate_for(root / f"{name}-tls")
            tls = FederationTls(port=free_port(), cert=cert, key=key)
            peer = start_synapse(
                root / name, free_port(), {"bcrypt_rounds": 4}, federation_tls=tls
            )
            stack.callback(stop_synapse, peer)
            peers.append(peer)
        yield peers[0].url, peers[0].server_name, peers[1].url, peers[1].server_name


def in_parallel(count: int, work: Callable[[int], object], workers: int = 8) -> list[object]:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(work, range(count)))


Pair = Callable[[Path], AbstractContextManager[tuple[str, str, str, str]]]


def measure(kind: str, pair: Pair, members: int, state: int, messages: int) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix=f"fedbench-{kind}-") as tmp,
        pair(Path(tmp)) as (a_url, a_name, b_url, _b_name),
    ):
        owner = Client.register(a_url, "owner")
        room_id = owner.create_room(preset="public_chat")
        power = owner.state_event(room_id, "m.room.power_levels")
        power["state_default"] = 0
        owner.set_state(room_id, "m.room.power_levels", power)

        def join_member(i: int) -> Client:
            member = Client.register(a_url, f"member{i}")
            member.join(room_id)
            return member

        started = time.monotonic()
        joined = in_parallel(members, join_member)
        print(f"  {kind}: {members} members in {time.monotonic() - started:.0f} s", flush=True)
        in_parallel(
            state,
            lambda i: owner.set_state(room_id, "bench.state", {"i": i}, key=f"key{i}"),
            workers=4,
        )
        print(f"  {kind}: {state} state events", flush=True)

        visitor = Client.register(b_url, "visitor")
        started = time.monotonic()
        visitor.join(room_id, via=[a_name])
        join_s = time.monotonic() - started
        print(f"  {kind}: remote join {join_s:.2f} s", flush=True)

        senders = [m for m in joined[:SENDERS] if isinstance(m, Client)]
        started = time.monotonic()

        def send(i: int) -> str:
            return senders[i % len(senders)].send(room_id, f"bench {i}")

        sent = set(in_parallel(messages, send, workers=SENDERS))
        seen: set[str] = set()
        deadline = time.monotonic() + 600
        path = f"/_matrix/client/v3/rooms/{quote(room_id)}/messages"
        while not seen >= sent and time.monotonic() < deadline:
            # B's newest events, as its client pages them.
            answer = visitor.request("GET", path, query={"dir": "b", "limit": messages + 50})
            seen.update(e["event_id"] for e in answer.get("chunk", []))
            if not seen >= sent:
                time.sleep(0.2)
        elapsed = time.monotonic() - started
        if not seen >= sent:
            raise RuntimeError(f"{kind}: {len(sent - seen)} messages never reached B")
        rate = messages / elapsed
        print(f"  {kind}: {messages} messages seen on B in {elapsed:.1f} s", flush=True)
        return {"join_s": join_s, "rate": rate}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--state", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--kinds", default="trellis,synapse")
    args = parser.parse_args()
    pairs: dict[str, Pair] = {"trellis": trellis_pair, "synapse": synapse_pair}
    results: dict[str, list[dict[str, float]]] = {}
    for run in range(args.runs):
        for kind in args.kinds.split(","):
            print(f"run {run + 1}: {kind}", flush=True)
            results.setdefault(kind, []).append(
                measure(kind, pairs[kind], args.members, args.state, args.messages)
            )
    lines = [
        f"# Federation: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()}, {os.cpu_count()} cores, SQLite",
        "",
        f"Room: {args.members} members, {args.state} extra state events; "
        f"{args.messages} messages from {SENDERS} senders.",
        "",
        "| server pair | remote join (s), each run | median | messages/s seen on B, each run"
        " | median |",
        "|---|---|---|---|---|",
    ]
    for kind, runs in results.items():
        joins = [r["join_s"] for r in runs]
        rates = [r["rate"] for r in runs]
        lines.append(
            f"| {kind} to {kind} | {', '.join(f'{j:.2f}' for j in joins)} | "
            f"{statistics.median(joins):.2f} | {', '.join(f'{r:.1f}' for r in rates)} | "
            f"{statistics.median(rates):.1f} |"
        )
    if "trellis" in results and "synapse" in results:

        def median_of(kind: str, key: str) -> float:
            return statistics.median(r[key] for r in results[kind])

        join_ratio = median_of("trellis", "join_s") / median_of("synapse", "join_s")
        rate_ratio = median_of("trellis", "rate") / median_of("synapse", "rate")
        lines += [
            "",
            f"Trellis/Synapse: join time {join_ratio:.2f}x, message rate {rate_ratio:.2f}x.",
        ]
    report = "\n".join(lines) + "\n"
    print(report)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{datetime.datetime.now():%Y%m%d-%H%M%S}-federation.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
