#!/usr/bin/env bash
# Recorder overhead, measured inside one long pgbench run: the recorder is
# started and stopped in alternating windows while pgbench reports its TPS
# every second (--progress-timestamp). Each recording window is compared with
# the mean of the windows without recording right before and after it, so
# the machine's slow drift (other tenants, frequency; ±10 % between separate
# 20 s runs here) cancels within seconds instead of within minutes. The
# recorder's start (BPF load, verifier, /proc scan) and stop (last flush)
# fall in the gaps between windows and are not counted: this is the cost
# while recording, not of starting.
#
#   sudo bench/overhead-interleaved.sh [PAIRS] [WINDOW_SECONDS]
#   e.g. EXTRA_RECORDER_ARGS="--events queries" sudo bench/overhead-interleaved.sh 20 10
#
# Prints a Markdown block to paste into BENCHMARKS.md and the per-window
# figures. Needs root, the release build and PostgreSQL.
set -euo pipefail

PAIRS=${1:-20}
WIN=${2:-10}
PGBENCH_ARGS=${PGBENCH_ARGS:--S}
CLIENTS=${CLIENTS:-4}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
EXTRA_RECORDER_ARGS=${EXTRA_RECORDER_ARGS:-}

here=$(cd "$(dirname "$0")/.." && pwd)
rec=${DBFLIGHT_RECORD:-$here/target/release/dbflight-record}
[ -x "$rec" ] || { echo "build first: cargo build --release -p dbflight-recorder" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (the recorder needs CAP_BPF/CAP_PERFMON)" >&2; exit 1; }
source "$here/scripts/pg-throwaway.sh"
pg_start "shared_buffers = 256MB"
work=$PG_WORK
pgb -i -q -s "$SCALE" >/dev/null 2>&1
pgb -n $PGBENCH_ARGS -c "$CLIENTS" -j "$THREADS" -T 5 >/dev/null 2>&1

# Long enough for every window and the recorder's starts and stops.
total=$(( (2 * PAIRS + 1) * (WIN + 4) + 10 ))
pgb -n $PGBENCH_ARGS -c "$CLIENTS" -j "$THREADS" -T "$total" -P 1 --progress-timestamp \
  2>"$work/progress" >"$work/pgbench.out" &
bench_pid=$!
sleep 3

now() { date +%s.%N; }
windows="$work/windows"
: >"$windows"
off_window() { local a; a=$(now); sleep "$WIN"; echo "off $a $(now)" >>"$windows"; }
events=0; dropped=0; statements=0
for i in $(seq 1 "$PAIRS"); do
  off_window
  trace="$work/trace-$i"
  # shellcheck disable=SC2086
  rec_start "$rec" "$trace" $EXTRA_RECORDER_ARGS
  sleep 1 # the recorder's first /proc scan and its first segment
  a=$(now); sleep "$WIN"; echo "on $a $(now)" >>"$windows"
  rec_stop
  read -r n ev dr < <(python3 - "$trace" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
q = m["events"].get("queries", {"written": 0})["written"]
print(q, sum(e["written"] for e in m["events"].values()), sum(e["dropped"] for e in m["events"].values()))
EOF
)
  statements=$((statements + n)); events=$((events + ev)); dropped=$((dropped + dr))
  rm -rf "$trace"
  echo "pair $i done: $n statements, $ev events, $dr dropped" >&2
done
off_window
kill -INT "$bench_pid" 2>/dev/null || true
wait "$bench_pid" 2>/dev/null || true

python3 - "$work/progress" "$windows" "$PAIRS" "$WIN" "$PGBENCH_ARGS -c $CLIENTS -j $THREADS, scale $SCALE $EXTRA_RECORDER_ARGS" "$statements" "$events" "$dropped" <<'EOF'
import re, statistics, sys
progress, windows, pairs, win, label, stmts, events, dropped = sys.argv[1:]
# "progress: 1763801234.123 s, 25012.3 tps, lat ..." (the end of each 1 s interval)
samples = []
for line in open(progress):
    m = re.match(r"progress: ([0-9.]+) s, ([0-9.]+) tps", line)
    if m:
        samples.append((float(m.group(1)), float(m.group(2))))
wins = []
for line in open(windows):
    side, a, b = line.split()
    # Intervals wholly inside the window: ending in (a + 1, b].
    tps = [t for (end, t) in samples if a and float(a) + 1 <= end <= float(b)]
    wins.append((side, statistics.mean(tps) if tps else None, len(tps)))
ratios = []
for i, (side, tps, n) in enumerate(wins):
    if side != "on" or tps is None:
        continue
    before, after = wins[i - 1][1], wins[i + 1][1]
    base = statistics.mean([x for x in (before, after) if x is not None])
    ratios.append(tps / base)
on = [t for s, t, _ in wins if s == "on" and t]
off = [t for s, t, _ in wins if s == "off" and t]
med = statistics.median(ratios)
mean = statistics.mean(ratios)
sd = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
# 95 % interval of the mean ratio (normal approximation; pairs >= 10).
half = 1.96 * sd / len(ratios) ** 0.5
print()
print("| workload | windows | median TPS without | median TPS with | median ratio | mean ratio (95 % interval) | statements recorded | events dropped |")
print("|---|---|---|---|---|---|---|---|")
print(f"| pgbench {label} | {len(ratios)} x {win} s with, {len(off)} x {win} s without | "
      f"{statistics.median(off):.0f} | {statistics.median(on):.0f} | **{med:.3f}** | "
      f"{mean:.3f} ({mean - half:.3f}–{mean + half:.3f}) | {stmts} | {dropped} |")
print()
print("per-window ratios: " + " ".join(f"{r:.3f}" for r in ratios))
print("windows (side, mean tps, seconds): " + " ".join(f"{s}:{t:.0f}/{n}" for s, t, n in wins if t))
EOF
