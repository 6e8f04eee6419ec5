#!/usr/bin/env bash
# Records testdata/locks-pg15 (MODE exact: every lock acquisition and
# release and every plan node, --events queries,plans=exact,locks=exact,net,sched) or
# testdata/lock-waits-pg15 (MODE waits: the default event kinds, lock waits
# with the sessions blocking them): a real trace, made by dbflight-record on
# a throwaway PostgreSQL cluster, of scenarios whose answers are known in
# advance. The analyzer's tests assert them, so change them together:
#   1. lock wait: session A takes `LOCK TABLE accounts IN ACCESS EXCLUSIVE
#      MODE` and holds it ~1 s (pg_sleep(1)); session B, started 0.3 s later,
#      reads accounts and waits ~0.7 s for it.
#   2. deadlock: sessions C and D update accounts rows 1 and 2 in opposite
#      orders; the server reports one deadlock and aborts one of them.
#   3. a join with a known plan: Limit > Sort > HashAggregate > Hash Join >
#      (Seq Scan orders, Hash > Seq Scan accounts).
#   4. a ~1 MB result over TCP: 1000 rows of repeat('x', 1000).
#   5. SELECT pg_sleep(0.5): half a second off CPU.
#
#   sudo testdata/record-locks.sh [exact|waits]   (after cargo build --release -p dbflight-recorder;
#                                                  DBFLIGHT_RECORD=path picks another build)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rec=${DBFLIGHT_RECORD:-$here/target/release/dbflight-record}
mode=${1:-exact}
case "$mode" in
  exact) out="$here/testdata/locks-pg15"; events=(--events queries,plans=exact,locks=exact,net,sched) ;;
  waits) out="$here/testdata/lock-waits-pg15"; events=() ;;
  *) echo "usage: $0 [exact|waits]" >&2; exit 2 ;;
esac
source "$here/scripts/pg-throwaway.sh"
pg_start "listen_addresses = '127.0.0.1'" "enable_mergejoin = off" "max_parallel_workers_per_gather = 0"
pg_psql -q -c "CREATE TABLE accounts (id int PRIMARY KEY, balance int);
  INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 1000) g;
  CREATE TABLE orders (id int, account_id int, amount int);
  INSERT INTO orders SELECT g, g % 1000 + 1, g % 50 FROM generate_series(1, 5000) g;
  ANALYZE accounts; ANALYZE orders;"
rm -rf "$out"
rec_start "$rec" "$out" --segment 2s "${events[@]}"

pg_psql -c "BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1); COMMIT" >/dev/null &
holder=$!
sleep 0.3
pg_psql -c "SELECT count(*) FROM accounts" >/dev/null
wait "$holder"

pg_psql -c "BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = 1; SELECT pg_sleep(0.5); UPDATE accounts SET balance = balance + 1 WHERE id = 2; COMMIT" >/dev/null 2>&1 &
c=$!
pg_psql -c "BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = 2; SELECT pg_sleep(0.5); UPDATE accounts SET balance = balance + 1 WHERE id = 1; COMMIT" >/dev/null 2>&1 &
d=$!
wait "$c" || true
wait "$d" || true

pg_psql -c "SELECT a.id, sum(o.amount) AS total FROM accounts a JOIN orders o ON o.account_id = a.id GROUP BY a.id ORDER BY total DESC LIMIT 5" >/dev/null
"$PG_BINDIR/psql" -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "SELECT repeat('x', 1000) FROM generate_series(1, 1000)" >/dev/null
pg_psql -c "SELECT pg_sleep(0.5)" >/dev/null
rec_stop
grep -h "deadlock detected" -A2 "$PG_WORK/log" >&2 || true
# The recorder runs as root and writes 0600 files; the sample is public test data.
chmod -R a+rX "$out"
du -sh "$out"
