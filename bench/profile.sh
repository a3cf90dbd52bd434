#!/usr/bin/env bash
# Profile Trellis's web process (Daphne) with py-spy while mxbench workloads run.
#
#   bash bench/profile.sh [sqlite|postgres] [workloads...]     # default: sqlite send messages
#
# Workloads: any mxbench workload, or "messages": bench/messages_load.py fills a room with
# $HISTORY_MESSAGES (default 10000) messages, then only the backwards /messages pagination is
# profiled (mxbench's history workload starts its pagination from /sync, which Trellis lacks).
# Run from the project root, never while bench/side_by_side.sh runs (py-spy slows the
# server; these runs are for "where does the time go", not for figures). Starts Trellis
# from fresh data as side_by_side.sh does, then for each workload records Daphne with
# `py-spy record --function -f raw` for the whole workload (stopped with SIGINT when
# the workload ends) and summarises it with bench/pyspy_summary.py --split.
# Writes bench/results/<timestamp>-profile-<backend>-<workload>.{txt,md} and a .jsonl.
# MXBENCH_ARGS, TOOLS, BENCH_PY, PGHOST/PGPORT/PGUSER, REDIS_HOST/REDIS_PORT as in side_by_side.sh;
# PYSPY (default /opt/bench-venv/bin/py-spy), PYSPY_ARGS (e.g. "--idle" for wall-clock).
set -u

cd "$(dirname "$0")/.." || exit 2
backend=${1:-sqlite}
[ $# -gt 0 ] && shift
case "$backend" in sqlite|postgres) ;; *) echo "usage: bash bench/profile.sh [sqlite|postgres] [workloads...]" >&2; exit 2 ;; esac
if [ $# -gt 0 ]; then workloads=("$@"); else workloads=(send messages); fi
HISTORY_MESSAGES=${HISTORY_MESSAGES:-10000}
PY=${BENCH_PY:-/opt/bench-venv/bin/python}
PYSPY=${PYSPY:-/opt/bench-venv/bin/py-spy}
T=${TOOLS:-../shared/tools}
read -r -a EXTRA <<< "${MXBENCH_ARGS:-}"
read -r -a SPYEXTRA <<< "${PYSPY_ARGS:-}"
PGHOST=${PGHOST:-127.0.0.1}; PGPORT=${PGPORT:-5432}; PGUSER=${PGUSER:-root}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}; REDIS_PORT=${REDIS_PORT:-6379}
URL=http://127.0.0.1:8008

if curl -fsS -m 2 "$URL/_matrix/client/versions" >/dev/null 2>&1; then
  echo "profile.sh: something already answers on $URL; stop it first" >&2; exit 2
fi
stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/results
base=bench/results/$stamp-profile-$backend

tpid=""; spy=""
cleanup() {
  [ -n "$spy" ] && kill -INT "$spy" 2>/dev/null
  if [ -n "$tpid" ] && kill -0 "$tpid" 2>/dev/null; then
    kill -TERM -- "-$tpid" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$tpid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$tpid" 2>/dev/null
  fi
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

env_=(TRELLIS_REGISTRATION=open TRELLIS_RATELIMIT=off)
if [ "$backend" = postgres ]; then
  psql -q -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres \
       -c 'DROP DATABASE IF EXISTS trellis_bench' -c 'CREATE DATABASE trellis_bench' || exit 1
  redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" -n 5 flushdb >/dev/null || exit 1
  env_+=(DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/trellis_bench" REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT/5")
fi
data=$(mktemp -d)
env TRELLIS_DATA_DIR="$data" "${env_[@]}" setsid make run >"$data/run.log" 2>&1 &
tpid=$!
for _ in $(seq 300); do
  curl -fsS -m 2 "$URL/_matrix/client/versions" >/dev/null 2>&1 && break
  kill -0 "$tpid" 2>/dev/null || { cat "$data/run.log" >&2; exit 1; }
  sleep 1
done
# The server process (config.web: Daphne and the worker thread) in Trellis's process group.
daphne=$(pgrep -g "$tpid" -f -- '-m config.web' | head -1)
[ -n "$daphne" ] || { echo "profile.sh: no server process (config.web) in group $tpid" >&2; exit 1; }
echo "Trellis group $tpid, server process $daphne" >&2

spy_start() {  # output file
  "$PYSPY" record -p "$daphne" --function -r 100 -f raw -o "$1" "${SPYEXTRA[@]}" >"${1%.txt}.spy.log" 2>&1 &
  spy=$!
  sleep 1
}
spy_stop() { kill -INT "$spy"; wait "$spy"; spy=""; }

for w in "${workloads[@]}"; do
  out=$base-$w
  if [ "$w" = messages ]; then
    # /messages alone: fill a room (not profiled), then profile backwards pagination.
    fill=$("$PY" bench/messages_load.py fill --url "$URL" --messages "$HISTORY_MESSAGES") || exit 1
    room=$(echo "$fill" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["room_id"])')
    token=$(echo "$fill" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    spy_start "$out.txt"
    "$PY" bench/messages_load.py paginate --url "$URL" --room-id "$room" --token "$token" \
        --messages "$HISTORY_MESSAGES"
    spy_stop
  else
    spy_start "$out.txt"
    "$PY" "$T/mxbench.py" --url "$URL" --workload "$w" --server-pid "$tpid" --label "trellis-$backend-profiled" \
        --out "$base.jsonl" "${EXTRA[@]}" >/dev/null
    spy_stop
  fi
  "$PY" bench/pyspy_summary.py "$out.txt" --split > "$out.md"
  echo "$w: $out.md" >&2
done
kill -TERM -- "-$tpid"; wait "$tpid"; tpid=""
rm -rf "$data"
