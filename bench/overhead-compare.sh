#!/usr/bin/env bash
# Recorder overhead of several event sets side by side, inside one pgbench
# run: quiet windows alternate with recording windows, and the recording
# windows take the sets in turn (A, B, C, A, B, C, ...), each compared with
# the quiet windows right before and after it. Sets measured in separate
# runs minutes apart differ by more than they cost on this shared machine
# (±10 % between minutes); taken in turn, the drift hits each alike.
#
#   sudo bench/overhead-compare.sh ROUNDS WINDOW_SECONDS "ARGS A" "ARGS B" ...
#   e.g. sudo bench/overhead-compare.sh 10 10 "" "--events queries"
#        PGBENCH_ARGS="-b tpcb-like" sudo bench/overhead-compare.sh 10 10 "" "--events queries"
#
# "" is the default event set. Prints one Markdown row per set, with its
# per-window ratios. Needs root, the release build and PostgreSQL.
set -euo pipefail

ROUNDS=${1:?rounds}
WIN=${2:?window seconds}
shift 2
[ $# -ge 1 ] || { echo "give at least one set of recorder arguments (\"\" = the default set)" >&2; exit 2; }
sets=("$@")
PGBENCH_ARGS=${PGBENCH_ARGS:--S}
CLIENTS=${CLIENTS:-4}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}

here=$(cd "$(dirname "$0")/.." && pwd)
rec=${DBFLIGHT_RECORD:-$here/target/release/dbflight-record}
[ -x "$rec" ] || { echo "build first: cargo build --release -p dbflight-recorder" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (the recorder needs CAP_BPF/CAP_PERFMON)" >&2; exit 1; }
source "$here/scripts/pg-throwaway.sh"
pg_start "shared_buffers = 256MB"
work=$PG_WORK
pgb -i -q -s "$SCALE" >/dev/null 2>&1
pgb -n $PGBENCH_ARGS -c "$CLIENTS" -j "$THREADS" -T 5 >/dev/null 2>&1

n=${#sets[@]}
total=$(( (2 * ROUNDS * n + 1) * (WIN + 4) + 10 ))
pgb -n $PGBENCH_ARGS -c "$CLIENTS" -j "$THREADS" -T "$total" -P 1 --progress-timestamp \
  2>"$work/progress" >"$work/pgbench.out" &
bench_pid=$!
sleep 3

now() { date +%s.%N; }
windows="$work/windows"
: >"$windows"
off_window() { local a; a=$(now); sleep "$WIN"; echo "off - $a $(now) 0 0 0" >>"$windows"; }
for r in $(seq 1 "$ROUNDS"); do
  for k in $(seq 0 $((n - 1))); do
    off_window
    trace="$work/trace-$r-$k"
    # shellcheck disable=SC2086
    rec_start "$rec" "$trace" ${sets[$k]}
    sleep 1 # the recorder's first /proc scan and its first segment
    a=$(now); sleep "$WIN"; b=$(now)
    rec_stop
    read -r q ev dr < <(python3 - "$trace" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
q = m["events"].get("queries", {"written": 0})["written"]
print(q, sum(e["written"] for e in m["events"].values()), sum(e["dropped"] for e in m["events"].values()))
EOF
)
    echo "on $k $a $b $q $ev $dr" >>"$windows"
    rm -rf "$trace"
    echo "round $r set $k done: $q statements, $ev events, $dr dropped" >&2
  done
done
off_window
# $bench_pid is the shell running pgb; pgbench is its child.
pkill -INT -P "$bench_pid" pgbench 2>/dev/null || true
wait "$bench_pid" 2>/dev/null || true

python3 - "$work/progress" "$windows" "$WIN" "$PGBENCH_ARGS -c $CLIENTS -j $THREADS, scale $SCALE" "${sets[@]}" <<'EOF'
import re, statistics, sys
progress, windows, win, label, *sets = sys.argv[1:]
samples = []
for line in open(progress):
    m = re.match(r"progress: ([0-9.]+) s, ([0-9.]+) tps", line)
    if m:
        samples.append((float(m.group(1)), float(m.group(2))))
wins = []
for line in open(windows):
    side, k, a, b, q, ev, dr = line.split()
    tps = [t for (end, t) in samples if float(a) + 1 <= end <= float(b)]
    wins.append((side, k, statistics.mean(tps) if tps else None, int(q), int(ev), int(dr)))
print()
print("| workload | recorder arguments | windows | median TPS without | median TPS with | median ratio | mean ratio (95 % interval) | events/statement | events dropped |")
print("|---|---|---|---|---|---|---|---|---|")
off = [t for s, _, t, *_ in wins if s == "off" and t]
for k, args in enumerate(sets):
    ratios, on, q, ev, dr = [], [], 0, 0, 0
    for i, (side, kk, tps, qq, e, d) in enumerate(wins):
        if side != "on" or kk != str(k) or tps is None:
            continue
        base = statistics.mean([x for x in (wins[i - 1][2], wins[i + 1][2]) if x is not None])
        ratios.append(tps / base)
        on.append(tps)
        q, ev, dr = q + qq, ev + e, dr + d
    med, mean = statistics.median(ratios), statistics.mean(ratios)
    sd = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
    half = 1.96 * sd / len(ratios) ** 0.5
    per = f"{ev / q:.1f}" if q else "—"
    print(f"| pgbench {label} | `{args or '(default set)'}` | {len(ratios)} x {win} s | "
          f"{statistics.median(off):.0f} | {statistics.median(on):.0f} | **{med:.3f}** | "
          f"{mean:.3f} ({mean - half:.3f}–{mean + half:.3f}) | {per} | {dr} |")
for k, args in enumerate(sets):
    rs = []
    for i, (side, kk, tps, *_) in enumerate(wins):
        if side == "on" and kk == str(k) and tps:
            base = statistics.mean([x for x in (wins[i - 1][2], wins[i + 1][2]) if x is not None])
            rs.append(f"{tps / base:.3f}")
    print(f"\nper-window ratios, `{args or '(default set)'}`: " + " ".join(rs))
EOF
