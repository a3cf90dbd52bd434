#!/usr/bin/env bash
# Trellis and Synapse side by side with mxbench, as ../shared/tools/README.md's recipe does.
#
#   bash bench/side_by_side.sh [sqlite|postgres] [workloads...]
#
# Run from the project root. Default backend sqlite, default workloads
# "register send rooms history" (fanout and initial_sync need /sync). For each of $RUNS
# runs (default 2): Trellis from fresh data via `make run` (TRELLIS_REGISTRATION=open
# TRELLIS_RATELIMIT=off, in its own process group), every workload, stop it; then Synapse
# from fresh data via synapse-peer.sh, every workload, stop it. The two servers never run at
# the same time. At the end `mxbench.py --report` prints the markdown table.
#
# postgres: Trellis gets a fresh database trellis_bench and a flushed Redis DB 5
# (DATABASE_URL / REDIS_URL below); Synapse runs `synapse-peer.sh start postgres`.
#
# Writes bench/results/<timestamp>-<backend>.jsonl (mxbench's JSON lines),
# bench/results/<timestamp>-<backend>.md (the report with date, machine and backend),
# bench/results/<timestamp>-<backend>.log (mxbench's readable output, error samples included)
# and bench/results/<timestamp>-<backend>-trellis-run<N>.log (`make run`'s output).
#
# Environment overrides:
#   RUNS=2                  runs per server
#   MXBENCH_ARGS="..."      extra mxbench flags for both servers (sizes, e.g. --history-messages 2000)
#   TOOLS=../shared/tools   where mxbench.py and synapse-peer.sh live
#   BENCH_PY=/opt/bench-venv/bin/python
#   PGHOST/PGPORT/PGUSER    PostgreSQL for Trellis's database (default 127.0.0.1:5432, root)
#   REDIS_HOST/REDIS_PORT   Redis (default 127.0.0.1:6379), DB 5
set -u

cd "$(dirname "$0")/.." || exit 2
backend=${1:-sqlite}
[ $# -gt 0 ] && shift
case "$backend" in
  sqlite|postgres) ;;
  *) echo "usage: bash bench/side_by_side.sh [sqlite|postgres] [workloads...]" >&2; exit 2 ;;
esac
if [ $# -gt 0 ]; then workloads=("$@"); else workloads=(register send rooms history); fi
for w in "${workloads[@]}"; do
  case "$w" in
    register|send|rooms|history|fanout|initial_sync) ;;
    *) echo "side_by_side.sh: unknown workload $w" >&2; exit 2 ;;
  esac
done

RUNS=${RUNS:-2}
PY=${BENCH_PY:-/opt/bench-venv/bin/python}
T=${TOOLS:-../shared/tools}
read -r -a EXTRA <<< "${MXBENCH_ARGS:-}"
PGHOST=${PGHOST:-127.0.0.1}; PGPORT=${PGPORT:-5432}; PGUSER=${PGUSER:-root}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}; REDIS_PORT=${REDIS_PORT:-6379}
TRELLIS_URL=http://127.0.0.1:8008
SYNAPSE_URL=http://127.0.0.1:18008

stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/results
OUT=bench/results/$stamp-$backend.jsonl
MD=bench/results/$stamp-$backend.md
LOG=bench/results/$stamp-$backend.log
: > "$OUT"; : > "$LOG"

say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

# Never measure somebody else's server: both ports must be free before we start.
for url in $TRELLIS_URL $SYNAPSE_URL; do
  if curl -fsS -m 2 "$url/_matrix/client/versions" >/dev/null 2>&1; then
    echo "side_by_side.sh: something already answers on $url; stop it first" >&2; exit 2
  fi
done

tpid=""; synapse_started=""; data=""; revs=()
cleanup() {
  if [ -n "$tpid" ] && kill -0 "$tpid" 2>/dev/null; then
    kill -TERM -- "-$tpid" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$tpid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$tpid" 2>/dev/null
  fi
  tpid=""
  if [ -n "$synapse_started" ]; then "$T/synapse-peer.sh" stop >/dev/null 2>&1; synapse_started=""; fi
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# One mxbench invocation per workload against one running server (the report groups
# consecutive workloads of one label into one run column).
bench() {  # url pid label
  local w rc
  for w in "${workloads[@]}"; do
    say "$3: $w"
    "$PY" "$T/mxbench.py" --url "$1" --workload "$w" --server-pid "$2" --label "$3" \
        --out "$OUT" "${EXTRA[@]}" >/dev/null 2>>"$LOG"
    rc=$?
    [ $rc -eq 0 ] || say "$3: $w exited $rc (INVALID or failed; see $LOG)"
  done
}

trellis_env=(TRELLIS_REGISTRATION=open TRELLIS_RATELIMIT=off)
if [ "$backend" = postgres ]; then
  trellis_env+=(DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/trellis_bench"
                REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT/5")
fi

for run in $(seq "$RUNS"); do
  # --- Trellis, fresh data
  data=$(mktemp -d)
  if [ "$backend" = postgres ]; then
    psql -q -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres \
         -c 'DROP DATABASE IF EXISTS trellis_bench' -c 'CREATE DATABASE trellis_bench' || exit 1
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" -n 5 flushdb >/dev/null || exit 1
  fi
  # The working tree may change between runs (other people commit): record what each run ran.
  rev=$(git rev-parse --short HEAD); dirty=$(git status --porcelain -- . ':!bench' | awk '{print $2}' | tr '\n' ' ')
  revs+=("run $run: $rev${dirty:+ + uncommitted: $dirty}")
  say "run $run: starting Trellis ($backend, data $data) at $rev${dirty:+ + uncommitted changes in: $dirty}"
  # setsid: $! is the leader of a new process group, so `kill -- -PID` stops make and all it started
  env TRELLIS_DATA_DIR="$data" "${trellis_env[@]}" setsid make run >"$data/run.log" 2>&1 &
  tpid=$!
  up=""
  for _ in $(seq 300); do
    curl -fsS -m 2 "$TRELLIS_URL/_matrix/client/versions" >/dev/null 2>&1 && { up=1; break; }
    kill -0 "$tpid" 2>/dev/null || break
    sleep 1
  done
  if [ -z "$up" ]; then
    say "Trellis did not come up; its log:"; cat "$data/run.log" >&2; exit 1
  fi
  bench "$TRELLIS_URL" "$tpid" "trellis-$backend"
  kill -TERM -- "-$tpid"; wait "$tpid"
  tpid=""
  cp "$data/run.log" "bench/results/$stamp-$backend-trellis-run$run.log"
  rm -rf "$data"

  # --- Synapse, fresh data
  say "run $run: starting Synapse ($backend)"
  synapse_started=1   # before start: an interrupt during start must still stop it
  "$T/synapse-peer.sh" start "$backend" >/dev/null || exit 1
  bench "$SYNAPSE_URL" "$("$T/synapse-peer.sh" pid)" "synapse-$backend"
  "$T/synapse-peer.sh" stop >/dev/null 2>&1
  synapse_started=""
done

{
  echo "# Trellis vs Synapse, $backend"
  echo
  echo "- date: $(date '+%Y-%m-%d %H:%M %Z')"
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), memory $(free -h | awk '/^Mem:/ {print $2}')"
  echo "- backend: $backend$([ "$backend" = postgres ] && echo " (PostgreSQL $(psql -At -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -c 'SHOW server_version' 2>/dev/null), Redis DB 5)")"
  echo "- Trellis (HEAD and uncommitted files when each run started):"
  for r in "${revs[@]}"; do echo "  - $r"; done
  echo "- Synapse: $("$T/synapse-peer.sh" version 2>/dev/null | tail -1)"
  echo "- workloads: ${workloads[*]}; runs per server: $RUNS; extra mxbench flags: ${MXBENCH_ARGS:-none}"
  echo "- raw results: $OUT; mxbench output: $LOG"
  echo
  # rows of workloads that were not run (every cell "-") are left out
  "$PY" "$T/mxbench.py" --report "$OUT" | grep -Ev '^\| [a-z_]+ \| [^|]+ \|( - \|)+$'
} > "$MD"
cat "$MD"
