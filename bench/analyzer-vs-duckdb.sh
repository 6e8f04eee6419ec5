#!/usr/bin/env bash
# The analyzer on a generated trace of N statements (default 10 million):
# `dbflight report` wall time, and the top-statements query in dbflight and
# in DuckDB on the same Parquet files. Median of RUNS runs (default 3).
#
#   bench/analyzer-vs-duckdb.sh [STATEMENTS] [TRACE_DIR]
#
# The trace is made by format/examples/gen_trace.rs (real schema-v1 Parquet
# through the format crate's segment writer) when TRACE_DIR does not exist
# yet; GEN_ARGS passes options to it (e.g. GEN_ARGS="--events queries").
# DuckDB comes from PyPI into a venv under ~/.cache (DUCKDB_VENV).
#
# What is timed (wall time of the whole command, each engine started fresh):
#   report        dbflight report TRACE (text, to /dev/null)
#   (a) raw       top statements grouped by the raw query text, the same SQL
#                 text in both engines; results are compared (row count,
#                 calls, total duration, errors) and the script fails if they differ
#   (b) fp        dbflight: queries/top_statements.sql as the report runs it
#                 (the fingerprint column of statement_totals); DuckDB: the same
#                 SQL over a view statement_totals = queries plus a fingerprint
#                 column made by a regexp_replace normalisation (numbers and
#                 strings to ?, IN lists collapsed, lower case, spaces squeezed),
#                 and first_value(x ORDER BY ...) as first(x ORDER BY ...)
#                 (DuckDB has first_value only as a window function)
#   count         SELECT count(*), sum(duration_ns) FROM queries (scan floor)
set -euo pipefail

N=${1:-10000000}
TRACE=${2:-/tmp/dbflight-bench-$N}
RUNS=${RUNS:-3}
GEN_ARGS=${GEN_ARGS:-}
DUCKDB_VENV=${DUCKDB_VENV:-$HOME/.cache/dbflight-duckdb-venv}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

cargo build --release -q -p dbflight-analyzer
DBF=$ROOT/target/release/dbflight

if [ ! -f "$TRACE/manifest.json" ]; then
    echo "generating $N statements into $TRACE ..." >&2
    # shellcheck disable=SC2086
    cargo run --release -q -p dbflight-format --example gen_trace -- \
        --statements "$N" $GEN_ARGS -o "$TRACE"
fi

if [ ! -x "$DUCKDB_VENV/bin/python" ]; then
    python3 -m venv "$DUCKDB_VENV"
    "$DUCKDB_VENV/bin/pip" install -q duckdb
fi
PY=$DUCKDB_VENV/bin/python
DUCKDB_VERSION=$($PY -c 'import duckdb; print(duckdb.__version__)')

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# (a) The top statements SQL grouping by the raw text: runs unchanged in both.
cat > "$WORK/raw.sql" <<'SQL'
SELECT
    query,
    count(*) AS calls,
    count(*) FILTER (WHERE status = 'error') AS errors,
    sum(duration_ns) AS total_ns,
    round(avg(duration_ns) / 1e6, 3) AS mean_ms,
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ns) / 1e6, 3) AS p50_ms,
    round(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ns) / 1e6, 3) AS p95_ms,
    round(percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) / 1e6, 3) AS p99_ms,
    max(duration_ns) AS max_ns
FROM queries
GROUP BY query
ORDER BY total_ns DESC NULLS LAST, calls DESC, query
LIMIT 25
SQL
# Totals over every group of (a), to check both engines saw the same groups.
cat > "$WORK/raw_check.sql" <<'SQL'
SELECT count(*) AS groups, sum(calls) AS calls, sum(total_ns) AS total_ns, sum(errors) AS errors
FROM (
    SELECT query, count(*) AS calls, sum(duration_ns) AS total_ns,
           count(*) FILTER (WHERE status = 'error') AS errors
    FROM queries GROUP BY query
) g
SQL
cat > "$WORK/count.sql" <<'SQL'
SELECT count(*) AS n, sum(duration_ns) AS total_ns FROM queries
SQL
# (b) DuckDB's stand-in for fingerprint(): literals to ?, lists collapsed, case and spaces.
cat > "$WORK/duck_fp.sql" <<'SQL'
lower(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
    query,
    '''[^'']*''', '?', 'g'),
    '\b[0-9]+(\.[0-9]+)?\b', '?', 'g'),
    '\(\s*\?(\s*,\s*\?)*\s*\)', '(...)', 'g'),
    '\s+', ' ', 'g'),
    '\s*;\s*$', ''))
SQL
python3 - "$WORK" <<'PY'
import sys
w = sys.argv[1]
fp = open(f"{w}/duck_fp.sql").read().strip()
sql = open("queries/top_statements.sql").read()
assert sql.count("FROM statement_totals") == 1
# DuckDB has first_value only as a window function; its aggregate is first()
# (the example statement's pid, tid, query_seq and ts).
code = [l for l in sql.splitlines() if not l.lstrip().startswith("--")]
assert sum(l.count("first_value(") for l in code) == 4
sql = sql.replace("first_value(", "first(")
# The view DuckDB reads it from: queries and the stand-in fingerprint.
view = f"CREATE VIEW statement_totals AS SELECT *, {fp} AS fingerprint FROM queries;\n"
open(f"{w}/fp_duckdb.sql", "w").write(view + sql)
PY

# DuckDB over the trace's Parquet files: one view per table, like dbflight's tables.
cat > "$WORK/duck.py" <<'PY'
import sys, time, duckdb, glob, os, json
trace, sql_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
for table in ("queries",):
    files = sorted(glob.glob(os.path.join(trace, table, "*.parquet")))
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({files!r})")
rows = con.execute(open(sql_file).read()).fetchall()
with open(out, "w") as f:
    for r in rows:
        f.write(json.dumps([str(v) if v is not None else None for v in r]) + "\n")
PY

# Wall time of a command in seconds (3 decimals); its stdout to $WORK/out.
now() { date +%s.%N; }
timed() {
    local t0 t1
    t0=$(now)
    "$@" > "$WORK/out" 2> "$WORK/err" || { cat "$WORK/err" >&2; return 1; }
    t1=$(now)
    echo "$t1 - $t0" | bc -l | xargs printf '%.3f'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run() { # name, then the command
    local name=$1 times=() t
    shift
    for _ in $(seq "$RUNS"); do
        t=$(timed "$@")
        times+=("$t")
    done
    cp "$WORK/out" "$WORK/$name.out"
    echo "$(median "${times[@]}") ${times[*]}"
}

# Warm the page cache once so the first timed run is not a cold read.
cat "$TRACE"/*/*.parquet > /dev/null

echo "trace $TRACE: $(du -sh "$TRACE" | cut -f1) on disk; load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
R_REPORT=$(run report "$DBF" report "$TRACE")
R_DF_RAW=$(run df_raw "$DBF" sql "$TRACE" -f "$WORK/raw.sql" --format csv)
R_DK_RAW=$(run dk_raw "$PY" "$WORK/duck.py" "$TRACE" "$WORK/raw.sql" /dev/stdout)
R_DF_FP=$(run df_fp "$DBF" sql "$TRACE" -f queries/top_statements.sql --format csv)
R_DK_FP=$(run dk_fp "$PY" "$WORK/duck.py" "$TRACE" "$WORK/fp_duckdb.sql" /dev/stdout)
R_DF_CNT=$(run df_cnt "$DBF" sql "$TRACE" -f "$WORK/count.sql" --format csv)
R_DK_CNT=$(run dk_cnt "$PY" "$WORK/duck.py" "$TRACE" "$WORK/count.sql" /dev/stdout)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# Same numbers for (a): groups, calls, total duration and errors over all
# groups, and the top 25 rows (text, calls, errors, total_ns) exactly.
"$DBF" sql "$TRACE" -f "$WORK/raw_check.sql" --format csv > "$WORK/df_check.out"
"$PY" "$WORK/duck.py" "$TRACE" "$WORK/raw_check.sql" "$WORK/dk_check.out"
cat > "$WORK/compare.py" <<'PY'
import csv, json, sys
w = sys.argv[1]
def df(name):
    with open(f"{w}/{name}.out", newline="") as f:
        return [list(r) for r in csv.reader(f)][1:]
def dk(name):
    with open(f"{w}/{name}.out") as f:
        return [json.loads(l) for l in f if l.strip()]
num = lambda v: None if v in (None, "") else int(float(v))
df_check = [num(v) for v in df("df_check")[0]]
dk_check = [num(v) for v in dk("dk_check")[0]]
df_top = [(r[0], num(r[1]), num(r[2]), num(r[3])) for r in df("df_raw")]
dk_top = [(r[0], num(r[1]), num(r[2]), num(r[3])) for r in dk("dk_raw")]
print(f"(a) over all groups (groups, calls, total_ns, errors): dbflight {df_check}, DuckDB {dk_check}")
print(f"(a) top 25 (text, calls, errors, total_ns): {'identical' if df_top == dk_top else 'DIFFERENT'} ({len(df_top)} and {len(dk_top)} rows)")
print(f"(b) rows: dbflight {len(df('df_fp'))}, DuckDB {len(dk('dk_fp'))}; calls in the top rows: dbflight {sum(num(r[1]) for r in df('df_fp'))}, DuckDB {sum(num(r[1]) for r in dk('dk_fp'))}")
sys.exit(0 if df_check == dk_check and df_top == dk_top else 1)
PY
CHECK_OK=1
"$PY" "$WORK/compare.py" "$WORK" > "$WORK/compare.txt" || CHECK_OK=0

ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
m() { echo "$1" | cut -d' ' -f1; }
all() { echo "$1" | cut -d' ' -f2- | tr ' ' '/'; }

QROWS=$("$DBF" sql "$TRACE" "SELECT count(*) FROM queries" --format csv | tail -n 1)
echo
echo "trace: $TRACE ($QROWS statements, $(du -sh "$TRACE" | cut -f1) on disk), runs: $RUNS, DuckDB $DUCKDB_VERSION, load $LOAD_AFTER"
echo
printf '| %-40s | %12s | %12s | %8s | %-24s | %-24s |\n' what "dbflight s" "DuckDB s" ratio "dbflight runs" "DuckDB runs"
printf '|%s|%s|%s|%s|%s|%s|\n' ------------------------------------------ -------------- -------------- ---------- -------------------------- --------------------------
printf '| %-40s | %12s | %12s | %8s | %-24s | %-24s |\n' "report (text)" "$(m "$R_REPORT")" - - "$(all "$R_REPORT")" -
printf '| %-40s | %12s | %12s | %8s | %-24s | %-24s |\n' "(a) top statements by raw query text" "$(m "$R_DF_RAW")" "$(m "$R_DK_RAW")" "$(ratio "$(m "$R_DF_RAW")" "$(m "$R_DK_RAW")")" "$(all "$R_DF_RAW")" "$(all "$R_DK_RAW")"
printf '| %-40s | %12s | %12s | %8s | %-24s | %-24s |\n' "(b) top statements by fingerprint" "$(m "$R_DF_FP")" "$(m "$R_DK_FP")" "$(ratio "$(m "$R_DF_FP")" "$(m "$R_DK_FP")")" "$(all "$R_DF_FP")" "$(all "$R_DK_FP")"
printf '| %-40s | %12s | %12s | %8s | %-24s | %-24s |\n' "count(*), sum(duration_ns)" "$(m "$R_DF_CNT")" "$(m "$R_DK_CNT")" "$(ratio "$(m "$R_DF_CNT")" "$(m "$R_DK_CNT")")" "$(all "$R_DF_CNT")" "$(all "$R_DK_CNT")"
echo
cat "$WORK/compare.txt"
if [ "$CHECK_OK" != 1 ]; then
    echo "FAIL: the engines disagree on (a)" >&2
    exit 1
fi
echo "(a) results agree."
