#!/usr/bin/env bash
# Records testdata/mariadb-10.11: a real trace, made by dbflight-record
# (--mysql, default event kinds: queries, net, sched) on a throwaway MariaDB
# (Debian's mariadbd, its own datadir, socket and port), of a workload whose
# answers are known in advance:
#   A. user alice, database test, the mariadb client over TCP (text
#      protocol, one COM_QUERY each): CREATE TABLE, INSERT of 1000 rows, a
#      ~100 kB result (SELECT id, REPEAT('x', 100) FROM t), SELECT
#      SLEEP(0.3) (0.3 s off CPU), SELECT * FROM no_such_table (status
#      error), then `USE shop` (the client's own SELECT DATABASE() and a
#      COM_INIT_DB) and SELECT DATABASE() (database shop);
#   B. user bob, database test, perl DBD::MariaDB with server-side prepare
#      over the socket, at the same time: INSERT ... VALUES (?, ?) executed
#      20 times and SELECT v FROM t WHERE id = ? executed 10 times
#      (COM_STMT_EXECUTE rows with the prepared text), plus the driver's 4
#      SET statements.
# So: 41 statements, one error, two connection rows in processes
# (alice test 127.0.0.1(port), bob test localhost) beside the server's.
#
#   sudo testdata/record-mariadb.sh   (after cargo build -p dbflight-recorder;
#   DBFLIGHT_RECORD=path/to/dbflight-record to choose the binary)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rec=${DBFLIGHT_RECORD:-$here/target/release/dbflight-record}
[ -x "$rec" ] || rec="$here/target/debug/dbflight-record"
out="$here/testdata/mariadb-10.11"
work=$(mktemp -d /tmp/dbflight-mariadb.XXXXXX)
chown mysql:mysql "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server=""
recorder=""
cleanup() {
  [ -n "$recorder" ] && kill -TERM "$recorder" 2>/dev/null && wait "$recorder" || true
  [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" || true
  rm -rf "$work"
}
trap cleanup EXIT

mariadb-install-db --no-defaults --datadir="$work/data" --user=mysql \
  --auth-root-authentication-method=normal --skip-test-db >/dev/null
/usr/sbin/mariadbd --no-defaults --datadir="$work/data" --socket="$work/sock" \
  --port="$port" --bind-address=127.0.0.1 --skip-name-resolve --user=mysql --skip-log-bin \
  --innodb-buffer-pool-size=16M --log-error="$work/err.log" &
server=$!
for _ in $(seq 100); do
  mariadb-admin --no-defaults --socket="$work/sock" -uroot ping >/dev/null 2>&1 && break
  sleep 0.1
done
sql() { mariadb --no-defaults --socket="$work/sock" -uroot "$@"; }
sql -e "CREATE DATABASE test; CREATE TABLE test.t (id INT PRIMARY KEY, v VARCHAR(20));
  CREATE DATABASE shop;
  CREATE USER alice@'127.0.0.1' IDENTIFIED BY 'alice-pw'; CREATE USER bob@localhost IDENTIFIED BY 'bob-pw';
  GRANT ALL ON test.* TO alice@'127.0.0.1', bob@localhost; GRANT ALL ON shop.* TO alice@'127.0.0.1'"

rm -rf "$out"
"$rec" --mysql "$server" --quiet -o "$out" &
recorder=$!
while [ ! -e "$out/manifest.json" ]; do
  kill -0 "$recorder" 2>/dev/null || { recorder=""; echo "dbflight-record failed" >&2; exit 1; }
  sleep 0.1
done

mariadb --no-defaults -h 127.0.0.1 -P "$port" -ualice -palice-pw --force test >/dev/null 2>&1 <<'SQL' &
CREATE TABLE big (id INT PRIMARY KEY);
INSERT INTO big SELECT seq FROM seq_1_to_1000;
SELECT id, REPEAT('x', 100) FROM big;
SELECT SLEEP(0.3);
SELECT * FROM no_such_table;
USE shop
SELECT DATABASE();
SQL
a=$!
perl - "$work/sock" <<'PERL'
use DBI;
my $dbh = DBI->connect("DBI:MariaDB:database=test;mariadb_socket=$ARGV[0];mariadb_server_prepare=1",
    "bob", "bob-pw", {RaiseError => 1, PrintError => 0});
my $ins = $dbh->prepare("INSERT INTO t VALUES (?, ?)");
$ins->execute($_, "v$_") for 1 .. 20;
my $sel = $dbh->prepare("SELECT v FROM t WHERE id = ?");
for my $i (1 .. 10) { $sel->execute($i); $sel->fetchall_arrayref; }
$dbh->disconnect;
PERL
wait "$a" || true
sleep 0.5
kill -TERM "$recorder"
wait "$recorder"
recorder=""
# The recorder runs as root and writes 0600 files; the sample is public test data.
chmod -R a+rX "$out"
du -sh "$out"
