#!/usr/bin/env bash
# BPF run time per probe hit, per dbflight program, under a pgbench load:
# kernel.bpf_stats_enabled=1 and run_time_ns/run_cnt from each program's
# fdinfo. This measures the program, not the uprobe trap around it.
#
#   sudo bench/bpf-cost.sh [SECONDS] [recorder args...]
#   e.g. sudo bench/bpf-cost.sh 10 --events queries --strategy queries=light
set -euo pipefail
SECS=${1:-10}; shift || true
PGBENCH_ARGS=${PGBENCH_ARGS:--S}
here=$(cd "$(dirname "$0")/.." && pwd)
rec=${DBFLIGHT_RECORD:-$here/target/release/dbflight-record}
[ -x "$rec" ] || { echo "build first: cargo build --release -p dbflight-recorder" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
source "$here/scripts/pg-throwaway.sh"
pg_start "shared_buffers = 256MB"
pgb -i -q -s 10 >/dev/null 2>&1
old=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
rec_start "$rec" "$PG_WORK/trace" "$@"
pgb -n $PGBENCH_ARGS -c 4 -j 2 -T "$SECS" 2>/dev/null | awk '/^tps = / {print "tps", $3}'
# The recorder's program fds: name, hits, ns per hit.
for fd in /proc/"$REC_PID"/fdinfo/*; do
  grep -q '^prog_id' "$fd" 2>/dev/null || continue
  id=$(awk '/^prog_id/ {print $2}' "$fd")
  cnt=$(awk '/^run_cnt/ {print $2}' "$fd"); ns=$(awk '/^run_time_ns/ {print $2}' "$fd")
  [ "${cnt:-0}" -gt 0 ] || continue
  name=$(bpftool prog show id "$id" 2>/dev/null | awk -F'name ' 'NR==1 {split($2,a," "); print a[1]}' || true)
  printf '%-24s %10d hits %8.0f ns/hit\n' "${name:-prog$id}" "$cnt" "$(echo "$ns / $cnt" | bc -l)"
done
rec_stop
sysctl -qw kernel.bpf_stats_enabled="$old"
python3 - "$PG_WORK/trace" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
print({k: v["written"] for k, v in m["events"].items()})
PY
