#!/usr/bin/env bash
# Sending into a room of 100 users (every message evaluated against the push rules of
# 99 local members): a baseline checkout of Trellis, this checkout, and Synapse, one
# after the other, each from fresh data, on SQLite, with mxbench's send workload.
#
#   BASE=/path/to/baseline/checkout bash bench/push_send.sh
#
# BASE is another checkout (e.g. `git worktree add --detach /tmp/base <commit>`; give it
# this checkout's .venv with `ln -s "$PWD/.venv" /tmp/base/.venv`). Without BASE only
# this checkout and Synapse run. Ports 8408 (Trellis) and 18408 (Synapse) by default, so
# as not to meet other servers on the usual ones. Prints mxbench's report at the end.
#
# WORKLOAD=fanout (or any other mxbench workload) with ARGS_EXTRA="..." measures that
# workload the same way instead (ROOM_USERS and MESSAGES then do not apply).
#
# Environment: RUNS=2, MESSAGES=1000, ROOM_USERS=100, SYNAPSE=1 (0: leave Synapse out),
# TRELLIS_PORT=8408, SYNAPSE_PORT=18408, OUT (JSON lines; default bench/results/...),
# TOOLS=../shared/tools, BENCH_PY=/opt/bench-venv/bin/python.
set -u
cd "$(dirname "$0")/.." || exit 2
PY=${BENCH_PY:-/opt/bench-venv/bin/python}
T=${TOOLS:-../shared/tools}
TPORT=${TRELLIS_PORT:-8408}
SPORT=${SYNAPSE_PORT:-18408}
mkdir -p bench/results
OUT=${OUT:-bench/results/$(date +%Y%m%d-%H%M%S)-${WORKLOAD:-send}.jsonl}
if [ "${WORKLOAD:-send}" = send ]; then
  ARGS=(--workload send --room-users "${ROOM_USERS:-100}" --messages "${MESSAGES:-1000}")
else
  # shellcheck disable=SC2206
  ARGS=(--workload "$WORKLOAD" ${ARGS_EXTRA:-})
fi

listener_pid() {
  ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}

run_trellis() {  # checkout label
  local dir=$1 label=$2 data pid
  data=$(mktemp -d)
  (cd "$dir" && TRELLIS_DATA_DIR=$data TRELLIS_BIND=127.0.0.1:$TPORT \
     TRELLIS_REGISTRATION=open TRELLIS_RATELIMIT=off setsid bash -c \
     '.venv/bin/python manage.py migrate --noinput >/dev/null && exec .venv/bin/python -m config.launcher' \
     >"$data/run.log" 2>&1 &)
  for _ in $(seq 300); do
    curl -fsS "http://127.0.0.1:$TPORT/_matrix/client/versions" >/dev/null 2>&1 && break
    sleep 1
  done
  # The launcher execs the web process in a session of its own: measure and stop that.
  pid=$(listener_pid "$TPORT")
  $PY "$T/mxbench.py" --url "http://127.0.0.1:$TPORT" "${ARGS[@]}" --server-pid "$pid" \
      --label "$label" --out "$OUT" >/dev/null 2>&1
  kill -TERM "$pid"
  for _ in $(seq 30); do [ -z "$(listener_pid "$TPORT")" ] && break; sleep 1; done
  rm -rf "$data"
}

for run in $(seq "${RUNS:-2}"); do
  [ -n "${BASE:-}" ] && run_trellis "$BASE" trellis-base-sqlite
  run_trellis . trellis-sqlite
  if [ "${SYNAPSE:-1}" = 1 ]; then
    PORT=$SPORT "$T/synapse-peer.sh" start sqlite >/dev/null
    $PY "$T/mxbench.py" --url "http://127.0.0.1:$SPORT" "${ARGS[@]}" \
        --server-pid "$(PORT=$SPORT "$T/synapse-peer.sh" pid)" --label synapse-sqlite \
        --out "$OUT" >/dev/null 2>&1
    PORT=$SPORT "$T/synapse-peer.sh" stop >/dev/null
  fi
done
$PY "$T/mxbench.py" --report "$OUT"
