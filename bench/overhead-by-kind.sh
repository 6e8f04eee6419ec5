#!/usr/bin/env bash
# Recorder overhead per event kind, each measured inside one pgbench run
# (bench/overhead-interleaved.sh: recording and quiet windows alternate,
# each recording window against the quiet ones beside it): the default
# event set, each kind alone, and the exact modes, on `-S` and pgbench's
# TPC-B-like default. Prints the Markdown rows, one block per line of the
# plan. Run on a quiet machine: nothing else of ours building.
#
#   sudo bench/overhead-by-kind.sh [PAIRS] [WINDOW_SECONDS] [ONLY...]
#   e.g. sudo bench/overhead-by-kind.sh 10 10            # everything (about 50 min)
#        sudo bench/overhead-by-kind.sh 10 10 default    # the rows whose label has "default"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PAIRS=${1:-10}
WIN=${2:-10}
shift 2 || true
only=("$@")
run() { # label, pgbench args, recorder args
  if [ ${#only[@]} -gt 0 ]; then
    local keep=0
    for o in "${only[@]}"; do [[ "$1" == *"$o"* ]] && keep=1; done
    [ "$keep" = 1 ] || return 0
  fi
  echo "== $1 ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))" >&2
  PGBENCH_ARGS="$2" EXTRA_RECORDER_ARGS="$3" "$here/overhead-interleaved.sh" "$PAIRS" "$WIN" \
    2>>"${LOG:-/dev/stderr}" | grep -E '^\| pgbench|^per-window' | sed "s/^| pgbench/| $1: pgbench/"
}
echo "| workload | windows | median TPS without | median TPS with | median ratio | mean ratio (95 % interval) | statements recorded | events dropped |"
echo "|---|---|---|---|---|---|---|---|"
run "default set, -S" "-S" ""
run "default set, TPC-B" "-b tpcb-like" ""
run "queries alone, -S" "-S" "--events queries"
run "queries alone, TPC-B" "-b tpcb-like" "--events queries"
run "wait_events alone, -S" "-S" "--events wait_events"
run "queries,plans=sampled, -S" "-S" "--events queries,plans"
run "locks=waits alone, -S" "-S" "--events locks"
run "net alone, -S" "-S" "--events net"
run "sched alone, -S" "-S" "--events sched"
run "exact: default with locks=exact, -S" "-S" "--events queries,plans,locks=exact,wait_events,net,sched"
run "exact: default with plans=exact, -S" "-S" "--events queries,plans=exact,locks,wait_events,net,sched"
run "exact: default with lwlocks, -S" "-S" "--events queries,plans,locks,wait_events,lwlocks,net,sched"
