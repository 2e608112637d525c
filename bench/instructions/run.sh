#!/usr/bin/env bash
# Instructions per single-row INSERT transaction, for chainlog.events, bench.plain and bench.hashed,
# counted by valgrind's callgrind in a single-user PostgreSQL backend. Unlike the timed workloads it
# is exact and repeatable whatever else the machine is doing, so it shows what a change to the
# trigger or the head protocol costs per transaction, to within a few hundred instructions.
#
# Usage: [TABLES='chainlog.events'] [ROWS=1] [SETUP=file.sql] bench/instructions/run.sh [N]   (needs valgrind
#        and a PostgreSQL server install; PG_BINDIR defaults to `pg_config --bindir`; run as root or as
#        the PostgreSQL user)
#
# ROWS events per statement (default 1): ROWS=2 counts a two-event transaction, whose second event
# takes the path of a transaction's later events (the head handed to the settle at commit). STREAMS
# (default 1) spreads a statement's rows over that many streams in turn: ROWS=4 STREAMS=2 writes
# s1 s2 s1 s2, whose last two events come back to a stream after another one. SETUP: see server.sh.
#
# Each table gets two runs, of 100 and 100+N statements; the difference divided by N is the cost of
# one transaction, warm-up and backend start-up cancelled out. Statements are sent by the simple
# query protocol (parsed and planned each time), so a prepared statement costs less than shown;
# prepared.sh counts one as workload 1 sends it.
set -euo pipefail
N=${1:-500}
ROWS=${ROWS:-1}
STREAMS=${STREAMS:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PORT=${PORT:-5498}
source "$HERE/server.sh"
stop_server

# One INSERT per line (single-user mode runs each line as a statement and commits it). The baselines
# get a seq from the clock, unique across runs.
statements() { # table count
  local table=$1 count=$2
  baseline_extras "$table" '(extract(epoch from clock_timestamp()) * 1e6)::bigint + ROW'
  local extra_cols=$EXTRA_COLS extra_vals=$EXTRA_VALS
  for ((i = 0; i < count; i++)); do
    local rows=() r request vals
    for ((r = 0; r < ROWS; r++)); do
      # Row 0 is written exactly as when every statement had one row; the rows after it add r to the
      # clock's microseconds (statements run milliseconds apart under valgrind).
      request=req-$i vals=${extra_vals// + ROW/}; if ((r > 0)); then request+=-$r vals=${extra_vals//ROW/$r}; fi
      rows+=("($(event_values "'s$((r % STREAMS + 1))'" "'invoice-004242'" "'$request'")$vals)")
    done
    local IFS=,
    echo "insert into $table ($EVENT_COLUMNS$extra_cols) values ${rows[*]}"
  done
}

printf '%-16s %s\n' table 'instructions per transaction'
for table in ${TABLES:-bench.plain bench.hashed chainlog.events}; do
  statements "$table" 100 > "$WORK/a.sql"
  statements "$table" $((100 + N)) > "$WORK/b.sql"
  a=$(count_instructions "$WORK/a.sql" '-c synchronous_commit=off')
  b=$(count_instructions "$WORK/b.sql" '-c synchronous_commit=off')
  printf '%-16s %d\n' "$table" $(((b - a) / N))
done
