# Sourced by the instruction counters: a scratch PostgreSQL cluster in $WORK with chainlog installed
# and the bench baselines set up, stopped again so that single-user backends can be counted on it.
# Sets BIN, WORK, URL, as_pg, stop_server and count_instructions; removes the cluster on exit. Needs
# ROOT (the project) and PORT.
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
# Callers load their data through $URL, then call stop_server.
stop_server() { as_pg "$BIN/pg_ctl -D $WORK/data -w stop" >/dev/null; }

# The instructions a single-user backend spends running the statements in file $1 (options for the
# backend in $2); callgrind's output is kept in $1.out, the backend's in $1.txt.
count_instructions() {
  chmod 644 "$1"
  as_pg "valgrind --tool=callgrind --callgrind-out-file=$1.out $BIN/postgres --single -D $WORK/data ${2:-} postgres < $1 > $1.txt 2>&1"
  if grep -aq ERROR "$1.txt"; then grep -am1 ERROR "$1.txt" >&2; exit 1; fi
  awk '/^(summary|totals):/ { print $2; exit }' "$1.out"
}
