"""Summarise a py-spy raw (collapsed-stack) profile of the Trellis web process.

    python bench/pyspy_summary.py PROFILE.txt [--top 25] [--split]

py-spy's raw format is one line per distinct stack: ``frame;frame;... COUNT`` with each
frame ``function (file:line)``. Record with ``--function`` so a frame is one function,
not one line. Without ``--idle`` only samples of running (on-CPU) threads are written.

Prints:
- the samples left out as waiting (leaf frames of idle executor threads, condition waits,
  epoll, and BEGIN IMMEDIATE blocked on SQLite's write lock), which py-spy still reports;
- over the rest: the share of samples per endpoint (the MatrixView method on the stack, e.g.
  ``SendView.put``; "no view" is Daphne/Twisted/asgiref outside any view);
- self time by layer (the leaf frame's package: our apps, Django ORM, DB driver, DRF,
  Django request handling, asgiref, Daphne/Twisted, json, argon2, ...);
- inclusive time of the top functions in our code (rooms/, accounts/, config/, protocol/,
  streams/, federation/, sync/) and of the top Django/DRF functions.
``--split`` repeats the last two per endpoint.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict

OURS = ("rooms/", "accounts/", "config/", "protocol/", "streams/", "federation/", "sync/")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse(path: str) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            head, _, count = line.rpartition(" ")
            frames = []
            for raw in head.split(";"):
                m = FRAME.match(raw)
                frames.append((m["func"], m["file"]) if m else (raw, ""))
            stacks.append((frames, int(count)))
    return stacks


def short(file: str) -> str:
    """A path relative to site-packages or the project root."""
    for marker in ("site-packages/", "/lib/python3.11/", "/lib/python3.12/", "/lib/python3.13/"):
        if marker in file:
            return file.split(marker, 1)[1]
    for app in OURS:
        i = file.find("/" + app)
        if i >= 0:
            return file[i + 1 :]
    return file


def is_ours(file: str) -> bool:
    return short(file).startswith(OURS)


def layer(func: str, file: str) -> str:
    f = short(file)
    if f.startswith(OURS):
        return "ours: " + f.split("/", 1)[0]
    if f.startswith("django/db/backends/sqlite3") or f.startswith("sqlite3/") or "_sqlite" in f:
        return "DB driver + Django backend (sqlite3)"
    if f.startswith(("psycopg", "django/db/backends/postgresql")):
        return "DB driver + Django backend (psycopg)"
    if f.startswith("django/db/"):
        return "Django ORM (query building, model instances)"
    if f.startswith("rest_framework/"):
        return "DRF (views, request, renderers)"
    if f.startswith(("django/core/handlers", "django/middleware", "django/http", "django/urls")):
        return "Django request handling (handlers, middleware, urls)"
    if f.startswith("django/"):
        return "Django other"
    if f.startswith("asgiref/"):
        return "asgiref (sync_to_async / async_to_sync)"
    if f.startswith(("daphne/", "twisted/", "autobahn/", "txaio/", "channels/")):
        return "Daphne / Twisted / Channels"
    if f.startswith("json/"):
        return "json"
    if f.startswith(("argon2/", "_argon2")):
        return "argon2"
    if f.startswith(("nacl/", "signedjson/", "canonicaljson/", "unpaddedbase64")):
        return "crypto / signing libs"
    if f.startswith(("concurrent/", "threading", "queue", "asyncio/", "selectors")):
        return "threads / asyncio / executor"
    if f.startswith("redis/"):
        return "redis client"
    return "other: " + (f.split("/", 1)[0] if f else func)


# Leaf frames of threads that wait rather than run (py-spy without --idle still reports
# some of them as active: idle executor workers, condition waits, epoll, thread joins).
WAITING = (
    ("_worker", "concurrent/futures/thread.py"),
    ("Condition.wait", "threading.py"),
    ("Thread._wait_for_tstate_lock", "threading.py"),
    ("EpollSelector.select", "selectors.py"),
    ("untilConcludes", "twisted/python/util.py"),
)
# BEGIN IMMEDIATE blocks in SQLite's busy handler while another request holds the write lock.
LOCK_WAIT = (("DatabaseWrapper._start_transaction_under_autocommit", "config/sqlite/base.py"),)


def waiting(frames: list[tuple[str, str]]) -> str | None:
    func, file = frames[-1]
    f = short(file)
    if any(func == w and f.startswith(wf) for w, wf in WAITING):
        return "waiting (idle threads, epoll, condition waits)"
    if any(func == w and f.startswith(wf) for w, wf in LOCK_WAIT):
        return "waiting for the SQLite write lock (BEGIN IMMEDIATE)"
    return None


def endpoint(frames: list[tuple[str, str]]) -> str:
    """The Matrix view on the stack: the frame in an api/ module or config/views.py
    called from DRF's dispatch."""
    for i, (func, file) in enumerate(frames):
        if func.split(".")[-1] == "dispatch" and short(file).startswith("rest_framework/views.py"):
            for func2, file2 in frames[i + 1 :]:
                s = short(file2)
                if (s.startswith(OURS) and "/api/" in s) or s.startswith("config/views.py"):
                    return f"{func2} ({s})"
            return "DRF dispatch (auth, exceptions)"
    return "no view (Daphne, Twisted, asgiref, Django handler)"


def pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:5.1f}%" if total else "  -  "


def summarise(stacks, top: int, title: str) -> None:
    total = sum(c for _, c in stacks)
    print(f"\n### {title}: {total} samples\n")
    selfl: Counter[str] = Counter()
    incl: Counter[tuple[str, str]] = Counter()
    for frames, count in stacks:
        func, file = frames[-1]
        selfl[layer(func, file)] += count
        for key in {(fn, short(fl)) for fn, fl in frames}:
            incl[key] += count
    print("Self time by layer (leaf frame):\n")
    print("| layer | samples | share |\n|---|---|---|")
    for name, n in selfl.most_common():
        print(f"| {name} | {n} | {pct(n, total)} |")
    print(f"\nInclusive time, our code (top {top}):\n")
    print("| function | file | inclusive |\n|---|---|---|")
    ours = [(k, n) for k, n in incl.most_common() if k[1].startswith(OURS)]
    for (fn, fl), n in ours[:top]:
        print(f"| {fn} | {fl} | {pct(n, total)} |")
    print(f"\nInclusive time, Django / DRF / drivers (top {top}):\n")
    print("| function | file | inclusive |\n|---|---|---|")
    lib = [
        (k, n)
        for k, n in incl.most_common()
        if k[1].startswith(("django/", "rest_framework/", "sqlite3/", "psycopg", "asgiref/"))
    ]
    for (fn, fl), n in lib[:top]:
        print(f"| {fn} | {fl} | {pct(n, total)} |")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("profile")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--split", action="store_true", help="also summarise each endpoint alone")
    a = p.parse_args()
    stacks = parse(a.profile)
    everything = sum(c for _, c in stacks)
    waits: Counter[str] = Counter()
    busy = []
    for frames, count in stacks:
        why = waiting(frames)
        if why:
            waits[why] += count
        else:
            busy.append((frames, count))
    print(f"## {a.profile}\n\n{everything} samples; left out as waiting, not running:\n")
    for why, n in waits.most_common():
        print(f"- {why}: {n} ({pct(n, everything).strip()})")
    print("\nEverything below is over the remaining (running) samples.\n")
    stacks = busy
    total = sum(c for _, c in stacks)
    by_ep: dict[str, list] = defaultdict(list)
    for frames, count in stacks:
        by_ep[endpoint(frames)].append((frames, count))
    print("Samples by endpoint:\n")
    print("| endpoint | samples | share |\n|---|---|---|")
    for ep, st in sorted(by_ep.items(), key=lambda kv: -sum(c for _, c in kv[1])):
        n = sum(c for _, c in st)
        print(f"| {ep} | {n} | {pct(n, total)} |")
    summarise(stacks, a.top, "all samples")
    if a.split:
        for ep, st in sorted(by_ep.items(), key=lambda kv: -sum(c for _, c in kv[1])):
            if sum(c for _, c in st) >= 0.05 * total:
                summarise(st, a.top, ep)


if __name__ == "__main__":
    main()
