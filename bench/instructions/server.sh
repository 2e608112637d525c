# Sourced by the instruction counters: a scratch PostgreSQL cluster in $WORK with chainlog installed
# and the bench baselines set up, stopped again so that single-user backends can be counted on it.
# Sets BIN, WORK, URL, as_pg, stop_server, count_instructions, callgrind_total, EVENT_COLUMNS,
# event_values and baseline_extras; removes the cluster on exit. Needs ROOT (the project) and PORT.
# SETUP, an SQL file, runs once after chainlog is installed: a CREATE OR REPLACE of one of its
# functions, say, to count what a change costs before making it (safeguards.sh uses it).
BIN=${PG_BINDIR:-$(pg_config --bindir)}
WORK=$(mktemp -d /tmp/chainlog-instructions.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else bash -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
trap 'as_pg "$BIN/pg_ctl -D $WORK/data stop -m immediate" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

as_pg "$BIN/initdb -D $WORK/data -E UTF8 --locale=C.UTF-8 -A trust" >/dev/null
as_pg "$BIN/pg_ctl -D $WORK/data -o '-p $PORT -k $WORK' -l $WORK/log -w start" >/dev/null
URL="postgres://postgres@127.0.0.1:$PORT/postgres"
(cd "$ROOT" && npx tsx cli/main.ts migrate --database-url "$URL" >/dev/null)
psql -q "$URL" -f "$ROOT/bench/sql/setup.sql"
if [ -n "${SETUP:-}" ]; then psql -q -v ON_ERROR_STOP=1 "$URL" -f "$SETUP" >/dev/null; fi
# Callers load their data through $URL, then call stop_server.
stop_server() { as_pg "$BIN/pg_ctl -D $WORK/data -w stop" >/dev/null; }

# The event both counters write (the insert workloads' shape, ≈ 350 canonical bytes): its columns, and
# its values as SQL for the stream, resource_id and request_id given as SQL expressions.
EVENT_COLUMNS='stream, occurred_at, actor, actor_type, event_type, action, result, resource_type, resource_id, source_ip, request_id, payload, before, after'
event_values() { # stream resource_id request_id
  echo "$1, now(), 'user-0042@example.com', 'user', 'INVOICE_PAID', 'UPDATE', 'success', 'invoice', $2, '203.0.113.7', $3, '{\"amount\": 4242, \"currency\": \"EUR\", \"reason\": \"monthly billing run\", \"client\": {\"app\": \"web\", \"version\": \"4.18.2\"}, \"tags\": [\"billing\", \"q3\"]}', '{\"status\": \"open\", \"amount\": 4242}', '{\"status\": \"paid\", \"amount\": 4242}'"
}

# The columns a baseline table needs beyond the event's, and their values as SQL, seq given as an SQL
# expression: sets EXTRA_COLS and EXTRA_VALS (both empty for chainlog.events, which assigns them).
baseline_extras() { # table seq
  case $1 in
    bench.plain) EXTRA_COLS=', seq, data_digest, prev_hash, hash' EXTRA_VALS=", $2, sha256('a'), sha256('b'), sha256('c')" ;;
    bench.hashed) EXTRA_COLS=', seq, prev_hash' EXTRA_VALS=", $2, sha256('b')" ;;
    *) EXTRA_COLS='' EXTRA_VALS='' ;;
  esac
}

# The total instruction count in callgrind output file $1.
callgrind_total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# The instructions a single-user backend spends running the statements in file $1 (options for the
# backend in $2); callgrind's output is kept in $1.out, the backend's in $1.txt.
count_instructions() {
  chmod 644 "$1"
  as_pg "valgrind --tool=callgrind --callgrind-out-file=$1.out $BIN/postgres --single -D $WORK/data ${2:-} postgres < $1 > $1.txt 2>&1"
  if grep -aq ERROR "$1.txt"; then grep -am1 ERROR "$1.txt" >&2; exit 1; fi
  callgrind_total "$1.out"
}
