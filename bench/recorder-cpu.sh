#!/usr/bin/env bash
# The recorder's own CPU time per recorded statement under pgbench: its
# utime + stime (from /proc) over 18 s of a pgbench run, after 2 s of
# warm-up (BPF load and the /proc scan are not counted), divided by the
# statements of those 18 s. Three runs; compare binaries in one sitting.
#
#   sudo bench/recorder-cpu.sh [RECORDER_BINARY] [recorder args...]
#   e.g. sudo bench/recorder-cpu.sh target/release/dbflight-record --events queries
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rec=${1:-$here/target/release/dbflight-record}; shift || true
[ $# -gt 0 ] || set -- --events queries
PGBENCH_ARGS=${PGBENCH_ARGS:--S}
[ -x "$rec" ] || { echo "build first: cargo build --release -p dbflight-recorder" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (the recorder needs CAP_BPF/CAP_PERFMON)" >&2; exit 1; }
source "$here/scripts/pg-throwaway.sh"
pg_start "shared_buffers = 256MB" >/dev/null
pgb -i -q -s 10 >/dev/null 2>&1
cpu() { awk '{print $14 + $15}' "/proc/$REC_PID/stat"; } # clock ticks
hz=$(getconf CLK_TCK)
for i in 1 2 3; do
  # shellcheck disable=SC2086
  pgb -n $PGBENCH_ARGS -c 4 -j 2 -T 25 >/dev/null 2>&1 &
  bench=$!
  sleep 2
  rec_start "$rec" "$PG_WORK/trace$i" "$@"
  sleep 2
  c0=$(cpu)
  sleep 18
  c1=$(cpu)
  rec_stop
  wait "$bench" || true
  n=$(python3 -c "import json; print(json.load(open('$PG_WORK/trace$i/manifest.json'))['events']['queries']['written'])")
  # Statements recorded over the 22 s, scaled to the 18 s measured.
  python3 -c "t = ($c1 - $c0) / $hz; n = $n * 18 / 22; print(f'run $i: {t:.2f} s CPU over 18 s, {t / n * 1e9:.0f} ns per statement')"
  rm -rf "$PG_WORK/trace$i"
done
