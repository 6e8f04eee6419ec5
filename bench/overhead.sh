#!/usr/bin/env bash
# Recorder overhead: pgbench TPS with and without dbflight-record attached,
# alternating runs on one throwaway cluster, medians of the pairs.
# Also bytes on disk per recorded statement.
#
#   sudo bench/overhead.sh [PAIRS] [SECONDS] [PGBENCH MODE...]
#   e.g. sudo bench/overhead.sh 5 20            # -S, simple protocol
#        PGBENCH_ARGS="-S -M prepared" sudo bench/overhead.sh 3 20
#
# Prints a Markdown block to paste into BENCHMARKS.md. Needs root, the
# release build (cargo build --release -p dbflight-recorder) and PostgreSQL.
set -euo pipefail

PAIRS=${1:-5}
SECS=${2:-20}
PGBENCH_ARGS=${PGBENCH_ARGS:--S}
CLIENTS=${CLIENTS:-4}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
EXTRA_RECORDER_ARGS=${EXTRA_RECORDER_ARGS:-}

here=$(cd "$(dirname "$0")/.." && pwd)
rec="$here/target/release/dbflight-record"
[ -x "$rec" ] || { echo "build first: cargo build --release -p dbflight-recorder" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (the recorder needs CAP_BPF/CAP_PERFMON)" >&2; exit 1; }
source "$here/scripts/pg-throwaway.sh"
pg_start "shared_buffers = 256MB"
work=$PG_WORK
pgb -i -q -s "$SCALE" >/dev/null 2>&1
# Warm the cache once.
pgb -n $PGBENCH_ARGS -c "$CLIENTS" -j "$THREADS" -T 5 >/dev/null 2>&1

tps() { pgb -n $PGBENCH_ARGS -c "$CLIENTS" -j "$THREADS" -T "$SECS" 2>/dev/null | awk '/^tps = / {print $3; exit}'; }

base=() ; with=() ; per_stmt=() ; ratios=() ; all_per_stmt=() ; ev_per_stmt=()
for i in $(seq 1 "$PAIRS"); do
  # Alternate which side goes first so drift hits both equally.
  for side in $( [ $((i % 2)) = 1 ] && echo "off on" || echo "on off" ); do
    if [ "$side" = off ]; then
      t=$(tps); base+=("$t")
    else
      trace="$work/trace-$i"
      # shellcheck disable=SC2086
      rec_start "$rec" "$trace" $EXTRA_RECORDER_ARGS
      t=$(tps)
      rec_stop
      with+=("$t")
      read -r n bytes dropped all events < <(python3 - "$trace" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
q = m["events"].get("queries", {"written": 0, "dropped": 0})
b = sum(f["bytes"] for s in m["segments"] for t, f in s["files"].items() if t == "queries")
a = sum(f["bytes"] for s in m["segments"] for f in s["files"].values())
ev = sum(e["written"] for e in m["events"].values())
dr = sum(e["dropped"] for e in m["events"].values())
print(q["written"], b, dr, a, ev)
EOF
)
      per_stmt+=("$(python3 -c "print(f'{$bytes/max($n,1):.1f}')")")
      all_per_stmt+=("$(python3 -c "print(f'{$all/max($n,1):.1f}')")")
      ev_per_stmt+=("$(python3 -c "print(f'{$events/max($n,1):.1f}')")")
      echo "pair $i: recorded $n statements, $events events, $dropped dropped, $bytes bytes of queries files, $all bytes in all" >&2
    fi
    echo "pair $i $side: $t tps" >&2
  done
  ratios+=("$(python3 -c "print(f'{${with[-1]}/${base[-1]}:.3f}')")")
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mb=$(median "${base[@]}"); mw=$(median "${with[@]}"); mp=$(median "${per_stmt[@]}")
ma=$(median "${all_per_stmt[@]}"); me=$(median "${ev_per_stmt[@]}")
# The median of per-pair ratios: each pair ran back to back, so slow drift
# of the machine (other tenants, frequency) cancels within a pair.
ratio=$(median "${ratios[@]}")
cat <<EOF

| workload | pairs x seconds | median TPS without | median TPS with | median pair ratio | bytes/statement (queries files) | events/statement | bytes/statement (all files) |
|---|---|---|---|---|---|---|---|
| pgbench $PGBENCH_ARGS -c $CLIENTS -j $THREADS, scale $SCALE $EXTRA_RECORDER_ARGS | $PAIRS x ${SECS}s | $mb | $mw | $ratio | $mp | $me | $ma |

without: ${base[*]}
with:    ${with[*]}
ratios:  ${ratios[*]}
EOF
