#!/usr/bin/env bash
# Records testdata/pgbench-pg15: a real trace of a known workload, made by
# dbflight-record on a throwaway PostgreSQL cluster. The analyzer's tests
# assert these counts, so change them together:
#   - pgbench -S -t 200 -c 2 -M simple     400 x SELECT abalance ... (simple)
#   - pgbench -t 50 -c 2 -M prepared       100 TPC-B-like transactions, 7
#     statements each (BEGIN, 3 UPDATEs, SELECT, INSERT, END)  (extended)
#   - psql: SELECT 1/0 (error), a 100-byte-literal statement cut at 64 bytes
#
#   sudo testdata/record-sample.sh   (after cargo build --release -p dbflight-recorder)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rec="$here/target/release/dbflight-record"
out="$here/testdata/pgbench-pg15"
source "$here/scripts/pg-throwaway.sh"
pg_start
pgb -i -q -s 1 >/dev/null 2>&1
rm -rf "$out"
rec_start "$rec" "$out" --max-query-len 64 --segment 1s
pgb -n -S -t 200 -c 2 -M simple >/dev/null
pgb -n -t 50 -c 2 -M prepared >/dev/null
pg_psql -c "SELECT 1/0" >/dev/null 2>&1 || true
pg_psql -c "SELECT '$(printf 'x%.0s' $(seq 100))' AS long_literal" >/dev/null
sleep 1.2  # let the segment rotate once more so the sample has several segments
rec_stop
# The recorder runs as root and writes 0600 files; the sample is public test data.
chmod -R a+rX "$out"
du -sh "$out"
