#!/usr/bin/env bash
# The floor under the default event set's overhead: pgbench -S TPS with bare
# uprobes on the PostgreSQL functions that `plans` and `locks` must see, and
# nothing else, against TPS without them. The probes are tracefs uprobe
# events with tracing switched off, so each hit is the trap and a handler
# that stores nothing: cheaper than any BPF program at the same sites. No
# dbflight code runs. Alternating windows, median ratio of the pairs.
#
#   sudo bench/trap-floor.sh [PAIRS] [SECONDS]
#   PROBES="LockAcquireExtended ExecInitNode" sudo bench/trap-floor.sh
#   (a name ending in % gets a return probe instead of an entry probe)
set -euo pipefail
PAIRS=${1:-5}; SECS=${2:-10}
PROBES=${PROBES:-"LockAcquireExtended LockAcquireExtended% LockReleaseAll ExecInitNode"}
PGBENCH_ARGS=${PGBENCH_ARGS:--S}
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run as root (tracefs uprobes)" >&2; exit 1; }
T=/sys/kernel/tracing
[ -d "$T/events" ] || mount -t tracefs nodev "$T"
source "$here/scripts/pg-throwaway.sh"
bin="$PG_BINDIR/postgres"
was_on=$(cat $T/tracing_on)
cleanup() {
  echo 0 > $T/events/dbflight_floor/enable 2>/dev/null || true
  grep -o 'dbflight_floor/[a-z0-9_]*' $T/uprobe_events 2>/dev/null | sed 's/^/-:/' >> $T/uprobe_events || true
  echo "$was_on" > $T/tracing_on
  pg_stop
}
pg_start "shared_buffers = 256MB"
trap cleanup EXIT
pgb -i -q -s 10 >/dev/null 2>&1
i=0
for p in $PROBES; do
  name=${p%\%}
  addr=$(nm -D "$bin" | awk -v s="$name" '$3==s || $3==s"@@Base" {a=$1} END {print a}')
  [ -n "$addr" ] || { echo "$name is not exported by $bin" >&2; exit 1; }
  # Debian builds PIE with every segment at vaddr == file offset: the address is the offset.
  kind=p; [ "$p" != "$name" ] && kind=r
  echo "$kind:dbflight_floor/p$i $bin:0x$addr" >> $T/uprobe_events
  i=$((i + 1))
done
echo 0 > $T/tracing_on
# "TPS TRANSACTIONS" of one window.
run() { pgb -n $PGBENCH_ARGS -c 4 -j 2 -T "$SECS" 2>/dev/null |
  awk '/actually processed:/ {n = $NF} /^tps = / {t = $3} END {print t, n}'; }
hits() { awk -v b="$bin" '$1 == b && $2 ~ /^p[0-9]+$/ {s += $3} END {print s + 0}' $T/uprobe_profile; }
echo "probes: $PROBES; pgbench $PGBENCH_ARGS -c 4 -j 2, $PAIRS pairs of ${SECS} s"
ratios=()
hit_total=0 tx_total=0
for n in $(seq "$PAIRS"); do
  read -r without _ < <(run)
  echo 1 > $T/events/dbflight_floor/enable
  read -r with tx < <(run)
  hit_total=$(hits) # cumulative over the windows
  tx_total=$((tx_total + tx))
  echo 0 > $T/events/dbflight_floor/enable
  r=$(echo "$with / $without" | bc -l)
  ratios+=("$r")
  printf 'pair %d: without %.0f TPS, with %.0f TPS, ratio %.3f\n' "$n" "$without" "$with" "$r"
done
printf 'hits per transaction: %.2f (%d hits, %d transactions)\n' "$(echo "$hit_total / $tx_total" | bc -l)" "$hit_total" "$tx_total"
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median ratio %.3f\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
