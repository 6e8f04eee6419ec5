# Source this: a throwaway PostgreSQL cluster in a temp dir, its own port and
# socket, run as the `postgres` user, removed on exit. Used by bench/ and by
# testdata/record-sample.sh (the Rust tests have their own in recorder/tests).
#
#   source scripts/pg-throwaway.sh; pg_start [extra postgresql.conf lines]
#   pgb -S -T 10        # pgbench against it;  pg_psql -c "SELECT 1"
#   echo "$PG_PM"       # postmaster pid

PG_BINDIR=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}

pg_start() {
  [ -x "$PG_BINDIR/initdb" ] || { echo "no PostgreSQL server found (apt-get install postgresql)" >&2; return 1; }
  PG_WORK=$(mktemp -d /tmp/dbflight-pg.XXXXXX)
  chown postgres "$PG_WORK"
  PG_PORT=$((20000 + RANDOM % 20000))
  runuser -u postgres -- "$PG_BINDIR/initdb" --auth=trust --no-sync -E UTF8 --locale=C -D "$PG_WORK/data" >/dev/null
  {
    echo "port = $PG_PORT"
    echo "unix_socket_directories = '$PG_WORK'"
    echo "listen_addresses = ''"
    echo "max_connections = 50"
    for line in "$@"; do echo "$line"; done
  } >> "$PG_WORK/data/postgresql.auto.conf"
  runuser -u postgres -- "$PG_BINDIR/pg_ctl" -w -D "$PG_WORK/data" -l "$PG_WORK/log" start >/dev/null
  PG_PM=$(head -1 "$PG_WORK/data/postmaster.pid")
  trap pg_stop EXIT
}

pg_stop() {
  [ -n "${PG_WORK:-}" ] || return 0
  runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PG_WORK/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_WORK"
  PG_WORK=
}

pgb() { "$PG_BINDIR/pgbench" -h "$PG_WORK" -p "$PG_PORT" -U postgres "$@" postgres; }
pg_psql() { "$PG_BINDIR/psql" -X -h "$PG_WORK" -p "$PG_PORT" -U postgres -d postgres "$@"; }

# Starts dbflight-record on the cluster in the background (pid in REC_PID)
# and waits until its probes are attached.
rec_start() {
  local rec=$1 trace=$2; shift 2
  "$rec" --postgres "$PG_PM" --quiet -o "$trace" "$@" &
  REC_PID=$!
  while [ ! -f "$trace/manifest.json" ]; do
    kill -0 "$REC_PID" 2>/dev/null || { echo "dbflight-record exited early" >&2; return 1; }
    sleep 0.1
  done
}

rec_stop() { kill -INT "$REC_PID"; wait "$REC_PID"; }
