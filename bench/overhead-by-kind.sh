#!/usr/bin/env bash
# Recorder overhead per event kind: bench/overhead.sh once for the default
# event set, once for each kind alone, and for pgbench's default TPC-B-like
# mix, one after the other on a quiet machine. Prints the Markdown rows.
#
#   sudo bench/overhead-by-kind.sh [PAIRS] [SECONDS]   (after cargo build --release -p dbflight-recorder)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PAIRS=${1:-3}
SECS=${2:-15}
run() { # label, pgbench args, recorder args
  echo "== $1" >&2
  PGBENCH_ARGS="$2" EXTRA_RECORDER_ARGS="$3" "$here/overhead.sh" "$PAIRS" "$SECS" 2>>"${LOG:-/dev/stderr}" | grep '^| pgbench'
}
echo "| workload | pairs x seconds | median TPS without | median TPS with | median pair ratio | bytes/statement (queries files) | events/statement | bytes/statement (all files) |"
echo "|---|---|---|---|---|---|---|---|"
run "default set, -S" "-S" "--events queries,plans,locks,net,sched"
run "default set with locks=exact, -S" "-S" "--events queries,plans,locks=exact,net,sched"
for kind in queries plans locks locks=exact lwlocks net sched; do
  events=$kind
  # Plan nodes are linked to their statements: they need queries.
  [ "$kind" = plans ] && events=queries,plans
  run "$events alone, -S" "-S" "--events $events"
done
run "default set, TPC-B" "-n" "--events queries,plans,locks,net,sched"
run "default set with locks=exact, TPC-B" "-n" "--events queries,plans,locks=exact,net,sched"
run "queries alone, TPC-B" "-n" "--events queries"
