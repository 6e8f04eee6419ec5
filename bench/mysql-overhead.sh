#!/usr/bin/env bash
# Recorder overhead on MariaDB: mariadb-slap queries/s with and without
# dbflight-record --mysql attached (default kinds: queries, net, sched),
# alternating runs on one throwaway server, median of the per-pair ratios.
#
#   sudo bench/mysql-overhead.sh [PAIRS] [QUERIES]   (after cargo build --release -p dbflight-recorder)
# Prints a Markdown row for BENCHMARKS.md.
set -euo pipefail
PAIRS=${1:-3}
QUERIES=${2:-100000}
CONCURRENCY=${CONCURRENCY:-4}
here=$(cd "$(dirname "$0")/.." && pwd)
rec="$here/target/release/dbflight-record"
[ -x "$rec" ] || { echo "build first: cargo build --release -p dbflight-recorder" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (the recorder needs CAP_BPF/CAP_PERFMON)" >&2; exit 1; }
work=$(mktemp -d /tmp/dbflight-mariadb-bench.XXXXXX)
chown mysql:mysql "$work"
server=""
cleanup() {
  [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" || true
  rm -rf "$work"
}
trap cleanup EXIT
mariadb-install-db --no-defaults --datadir="$work/data" --user=mysql \
  --auth-root-authentication-method=normal --skip-test-db >/dev/null
/usr/sbin/mariadbd --no-defaults --datadir="$work/data" --socket="$work/sock" \
  --skip-networking --user=mysql --skip-log-bin --innodb-buffer-pool-size=128M \
  --log-error="$work/err.log" &
server=$!
for _ in $(seq 100); do
  mariadb-admin --no-defaults --socket="$work/sock" -uroot ping >/dev/null 2>&1 && break
  sleep 0.1
done
mariadb --no-defaults --socket="$work/sock" -uroot -e "CREATE DATABASE bench; USE bench;
  CREATE TABLE bench.t (id INT PRIMARY KEY, v VARCHAR(100));
  INSERT INTO bench.t SELECT seq, REPEAT('x', 100) FROM seq_1_to_10000;"

qps() {
  local secs
  secs=$(mariadb-slap --no-defaults --socket="$work/sock" -uroot --create-schema=bench \
    --concurrency="$CONCURRENCY" --iterations=1 --number-of-queries="$QUERIES" \
    --query="SELECT v FROM t WHERE id = 4242" 2>/dev/null |
    awk '/Average number of seconds to run all queries/ {print $(NF-1)}')
  python3 -c "print(f'{$QUERIES / $secs:.0f}')"
}
qps >/dev/null # warm up
base=(); with=(); ratios=()
for i in $(seq 1 "$PAIRS"); do
  for side in $( [ $((i % 2)) = 1 ] && echo "off on" || echo "on off" ); do
    if [ "$side" = off ]; then
      q=$(qps); base+=("$q")
    else
      trace="$work/trace-$i"
      "$rec" --mysql "$server" --quiet -o "$trace" &
      r=$!
      while [ ! -e "$trace/manifest.json" ]; do sleep 0.1; done
      q=$(qps)
      kill -INT "$r"; wait "$r"
      with+=("$q")
      n=$(python3 -c "import json; print(json.load(open('$trace/manifest.json'))['events']['queries']['written'])")
      echo "pair $i: recorded $n statements" >&2
    fi
    echo "pair $i $side: $q queries/s" >&2
  done
  ratios+=("$(python3 -c "print(f'{${with[-1]}/${base[-1]}:.3f}')")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
cat <<EOT
| mariadb-slap, $CONCURRENCY clients, point SELECT, MariaDB $(/usr/sbin/mariadbd --version | awk '{print $3}') | $PAIRS x $QUERIES queries | $(median "${base[@]}") | $(median "${with[@]}") | $(median "${ratios[@]}") |

without: ${base[*]}
with:    ${with[*]}
ratios:  ${ratios[*]}
EOT
