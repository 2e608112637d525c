#!/usr/bin/env bash
# Instructions per row of verify()'s content check (recomputing an event's data digest and hash from
# its own row), counted by valgrind's callgrind in a single-user PostgreSQL backend, and where they go.
# The timed workload 7 says how fast verify() is; this says which part of the per-row expression
# costs what, exactly and repeatably, so that a change to the encoding can be judged before timing it.
#
# Usage: [N=20000] [PG_BINDIR=...] bench/instructions/content-check.sh [replacement.sql]
#        (needs valgrind and a PostgreSQL server install; run as root or as the PostgreSQL user)
#
# N events are written by chainlog (one multi-row INSERT), then two runs are counted: reading every
# row, and checking every row's content with max_parallel_workers_per_gather = 0. The difference
# divided by N is the check's cost per row. An optional SQL file runs first in both, e.g. a
# CREATE OR REPLACE of a format function to measure another way of computing the same bytes: the
# count of rows whose content matched is printed, and must still be N.
set -euo pipefail
N=${N:-20000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PRE=$(realpath "${1:-/dev/null}")
PORT=${PORT:-5497}
source "$HERE/server.sh"
# The event of bench/instructions/run.sh, with a resource_id and request_id per row.
psql -q "$URL" -c "insert into chainlog.events ($EVENT_COLUMNS) select $(event_values "'s1'" "'invoice-' || g" "'req-' || g") from generate_series(1, $N) g" \
  -c "vacuum analyze chainlog.events"
stop_server

{ cat "$PRE"; echo "set max_parallel_workers_per_gather = 0"; echo "select count(*) from chainlog.events e"; } > "$WORK/read.sql"
{ cat "$PRE"; echo "set max_parallel_workers_per_gather = 0"
  echo "select count(*) filter (where chainlog._content_ok(e, e.seq)) as matched from chainlog.events e"; } > "$WORK/check.sql"
read_rows=$(count_instructions "$WORK/read.sql"); checked=$(count_instructions "$WORK/check.sql")
matched=$(grep -aoE 'matched = "[0-9]+"' "$WORK/check.sql.txt" | grep -oE '[0-9]+')
echo "rows whose content matched: $matched of $N"
echo "content check: $(((checked - read_rows) / N)) instructions per row"
echo "where they go (inclusive, per row):"
callgrind_annotate --inclusive=yes --threshold=99 "$WORK/check.sql.out" 2>/dev/null | awk -v n="$N" '
  { fn = ""; if (match($0, /:[A-Za-z0-9_]+ \[/)) fn = substr($0, RSTART + 1, RLENGTH - 3) }
  fn ~ /^(sha256_bytea|jsonb_out|pg_convert_to|byteacat|palloc)$/ && !seen[fn]++ {
    gsub(",", "", $1); printf "  %-14s %7d\n", fn, $1 / n }'
