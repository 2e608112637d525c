#!/usr/bin/env bash
# What each of the chain trigger's safeguards costs a one-event transaction, in instructions: the
# count of bench/instructions/run.sh for chainlog.events, with chainlog as installed and then with one
# safeguard at a time taken out of its functions (and all of them at once). Nothing here is a proposal
# to take any of them out: it says how much of the gap to the plain table they are, and so how far
# workload 1 could get without them (docs/PERFORMANCE.md, "What limits the targets").
#
# Usage: [PG_BINDIR=...] bench/instructions/safeguards.sh [N]   (needs what run.sh needs; about two
#        minutes at the default N = 200)
#
# A safeguard is taken out by cutting its text from the function's definition as the server prints
# it (pg_get_functiondef) and creating the function again. When a cut no longer matches the function,
# the script stops with an error instead of counting something else.
set -euo pipefail
N=${1:-200}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d /tmp/chainlog-safeguards.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
chmod 755 "$TMP"

# Removes fn's text from the first from_text up to to_text, or fails if either is not there.
HELPER=$(cat <<'SQL'
create function pg_temp.cut(fn regprocedure, from_text text, to_text text) returns void
language plpgsql as $$
declare
  def text := pg_catalog.pg_get_functiondef(fn);
  a int := pg_catalog.strpos(def, from_text);
  z int := pg_catalog.strpos(pg_catalog.substr(def, a + 1), to_text) + a;
begin
  if a = 0 or z = a then
    raise exception 'safeguards.sh: % no longer holds % ... %', fn, from_text, to_text;
  end if;
  execute pg_catalog.left(def, a - 1) || pg_catalog.substr(def, z);
end $$;
SQL
)
TRIGGER="'chainlog._chain_event()'"
FIRST="'chainlog._chain_first(chainlog.events)'"

names=() sqls=()
add() { names+=("$1"); sqls+=("$2"); }
add 'probe for events stored beyond the recorded head' \
  "select pg_temp.cut($FIRST, '     and (select pg_catalog.max(s.seq)', '  returning h.head_seq');"
add 'field checks that name the bad field (LC002)' \
  "select pg_temp.cut($TRIGGER, '  if new.stream is null or new.stream operator', '  -- Streams named chainlog.*');"
add 'refusal of supplied chain columns (LC001)' \
  "select pg_temp.cut($TRIGGER, '  if new.seq is not null or new.recorded_at', '  -- Context not given');"
add 'reserved chainlog.* streams (LC002)' \
  "select pg_temp.cut($TRIGGER, '  if pg_catalog.left(new.stream, 9)', '  -- Not the first event');"
# chainlog's event triggers refuse to drop its triggers; this cluster is thrown away.
add 'forward-only guard on stream_heads (LC003)' \
  "drop event trigger chainlog_guard_ddl; drop event trigger chainlog_guard_drop;
   drop trigger stream_heads_forward_only on chainlog.stream_heads;"

count() { # setup.sql [tables] -> "table instructions" lines, per one-event transaction
  SETUP=$1 TABLES=${2:-chainlog.events} PORT=${PORT:-5496} bash "$HERE/run.sh" "$N" | awk 'NR > 1'
}
row() { printf '%-72s %12s %9s %9s\n' "$@"; }
ratio() { awk -v p="$plain" -v n="$1" 'BEGIN { printf "%.3f", p / n }'; }

# chainlog is counted alone, in a cluster like the ones it is counted in without a safeguard.
counts=$(count /dev/null 'bench.plain bench.hashed')
plain=$(awk '$1 == "bench.plain" { print $2 }' <<<"$counts")
hashed=$(awk '$1 == "bench.hashed" { print $2 }' <<<"$counts")
base=$(count /dev/null | awk '{ print $2 }')
row 'instructions per one-event transaction' instructions saved 'plain ÷'
row 'plain table (baseline)' "$plain" '' 1.000
row 'hash-only trigger' "$hashed" '' "$(ratio "$hashed")"
row 'chainlog as installed' "$base" '' "$(ratio "$base")"
all="$HELPER"
for i in "${!names[@]}"; do
  printf '%s\n%s\n' "$HELPER" "${sqls[$i]}" > "$TMP/$i.sql"
  all+=$'\n'"${sqls[$i]}"
  n=$(count "$TMP/$i.sql" | awk '{ print $2 }')
  row "chainlog without the ${names[$i]}" "$n" $((base - n)) "$(ratio "$n")"
done
echo "$all" > "$TMP/all.sql"
n=$(count "$TMP/all.sql" | awk '{ print $2 }')
row 'chainlog without all of them' "$n" $((base - n)) "$(ratio "$n")"
