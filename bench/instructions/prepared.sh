#!/usr/bin/env bash
# Instructions per single-row INSERT transaction as an application sends it: a prepared statement over
# the extended protocol (pgbench -M prepared), in a backend of a running server under valgrind's
# callgrind. Nothing is parsed or planned per transaction, so this counts the server work workload 1
# times: the ratio of two counts is the ratio workload 1 measures without the commit flush, client
# time aside. run.sh's single-user counts take the simple-query path, parsing and planning included
# (on PostgreSQL 15 it counts 729k for the plain table, against 334k here). That path costs the plain
# table's longer statement more than chainlog's, so the ratio of its counts understates chainlog's
# share (docs/PERFORMANCE.md, "Counted as an application sends it").
#
# Usage: [TABLES='chainlog.events'] [SETUP=file.sql] [PG_BINDIR=...] bench/instructions/prepared.sh [N]   (needs
#        valgrind, pgbench (a version other than the server's will do) and what run.sh needs; about
#        a minute at the default N = 300)
#
# SETUP, an SQL file, runs once after chainlog is installed (server.sh), as in run.sh.
#
# Each table gets two pgbench runs, of 100 and 100+N transactions, each in a new session; the backend's
# count is written when the session ends. The difference divided by N is one transaction, the
# session's start and warm-up cancelled out. synchronous_commit is off and autovacuum too, so that no
# flush or background work lands in one run and not the other.
set -euo pipefail
N=${1:-300}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PORT=${PORT:-5495}
source "$HERE/server.sh"
stop_server
PGBENCH=$([ -x "$BIN/pgbench" ] && echo "$BIN/pgbench" || command -v pgbench || true)
[ -n "$PGBENCH" ] || { echo 'prepared.sh: needs pgbench (in PG_BINDIR or on the PATH)' >&2; exit 1; }
mkdir -p "$WORK/cg" && chmod 777 "$WORK/cg"

# The whole server runs under callgrind: every backend it forks writes its own count on exit.
as_pg "valgrind --tool=callgrind --callgrind-out-file=$WORK/cg/%p.out $BIN/postgres -D $WORK/data -p $PORT -k $WORK \
  -c synchronous_commit=off -c autovacuum=off > $WORK/valgrind.log 2>&1 &"
for _ in $(seq 120); do psql -Atq "$URL" -c 'select 1' >/dev/null 2>&1 && break; sleep 1; done

script() { # table -> a pgbench script with one INSERT of the event run.sh counts
  baseline_extras "$1" :seq
  printf '\\set seq random(1, 1000000000000)\n'
  echo "insert into $1 ($EVENT_COLUMNS$EXTRA_COLS) values ($(event_values "'s1'" "'invoice-004242'" "'req-1'")$EXTRA_VALS);"
}

count() { # script transactions -> instructions of the session that ran them
  local before new f seen='' stable=0 running
  before=$(ls "$WORK/cg")
  "$PGBENCH" -n -M prepared -c 1 -t "$2" -f "$1" "$URL" > "$WORK/pgbench.log" 2>&1 || { cat "$WORK/pgbench.log" >&2; exit 1; }
  # callgrind writes a process's file when the process exits (a backend, a moment after pgbench has
  # gone): wait until the files that appeared since the run began have stopped appearing and their
  # processes have exited, then take the largest, the session that ran the transactions.
  for _ in $(seq 120); do
    new=$(comm -13 <(echo "$before") <(ls "$WORK/cg"))
    running=0
    for f in $new; do [ -d "/proc/${f%.out}" ] && running=1; done
    if [ -n "$new" ] && [ "$new" = "$seen" ] && [ $running = 0 ]; then stable=$((stable + 1)); else stable=0; fi
    [ $stable -ge 3 ] && break
    seen=$new
    sleep 1
  done
  [ $stable -ge 3 ] || { echo "prepared.sh: pgbench's sessions did not end within 2 minutes" >&2; exit 1; }
  for f in $new; do callgrind_total "$WORK/cg/$f"; done | sort -n | tail -1
}

printf '%-16s %s\n' table 'instructions per transaction'
for table in ${TABLES:-bench.plain bench.hashed chainlog.events}; do
  script "$table" > "$WORK/$table.pgbench"
  a=$(count "$WORK/$table.pgbench" 100)
  b=$(count "$WORK/$table.pgbench" $((100 + N)))
  printf '%-16s %d\n' "$table" $(((b - a) / N))
done
