-- chainlog 1: the schema, the events table and the recorded stream heads.
--
-- The tables are private. The public interface is the functions and views documented in
-- docs/SQL.md (and in COMMENT ON, visible with \df+ and \dv+): INSERT into chainlog.events,
-- chainlog.append(), chainlog.verify(), chainlog.verify_all(), chainlog.streams.
--
-- postgres-migrations keeps its own bookkeeping in an unqualified `migrations` table; chainlog's
-- migrate() creates this schema first, keeps that record in chainlog.applied_migrations with a view
-- chainlog.migrations over it, and runs with search_path = chainlog, pg_temp: nothing is added to the
-- application's schemas (src/migrate.ts says why a view).
--
-- Every PL/pgSQL function here has `set search_path = pg_catalog, pg_temp` and writes the names of
-- tables and functions with their schema. The temporary schema is named, and named last, on purpose:
-- left out of search_path (as with search_path = ''), PostgreSQL searches the session's pg_temp
-- FIRST for types and tables, so any role could create pg_temp.text or pg_temp.bytea and have its
-- code run inside a SECURITY DEFINER function with chainlog's rights.

do $$
begin
  -- The canonical encoding ends each text field with 0x00 and writes NULL as 0xFF, bytes that valid
  -- UTF-8 never holds (docs/FORMAT.md). Only a UTF8 database guarantees valid UTF-8: SQL_ASCII stores
  -- any bytes, and another encoding would hash text that export and the offline verifier, which read
  -- UTF-8, see differently.
  if pg_catalog.getdatabaseencoding() <> 'UTF8' then
    raise exception 'chainlog: the database must be UTF8, not %', pg_catalog.getdatabaseencoding()
      using errcode = 'LC010',
            hint = 'Create the database with ENCODING ''UTF8'' (and a UTF-8 locale, or TEMPLATE template0).';
  end if;
end $$;

create schema if not exists chainlog;
comment on schema chainlog is
  'chainlog: tamper-evident, append-only audit log. Public interface: chainlog.events (INSERT, SELECT), '
  'chainlog.append(), chainlog.verify(), chainlog.verify_all(), chainlog.streams. See docs/SQL.md.';

create table chainlog.events (
  id             bigint generated always as identity primary key,
  stream         text        not null default 'default',
  seq            bigint      not null,
  recorded_at    timestamptz not null,
  occurred_at    timestamptz,
  actor          text        not null,
  actor_type     text        not null,
  event_type     text        not null,
  action         text        not null,
  result         text        not null default 'success',
  resource_type  text,
  resource_id    text,
  source_ip      inet,
  request_id     text,
  payload        jsonb,
  before         jsonb,
  after          jsonb,
  format_version smallint    not null,
  data_digest    bytea       not null,
  prev_hash      bytea       not null,
  hash           bytea       not null,

  constraint events_stream_seq_key unique (stream, seq),
  -- Below 2^53, where every seq is exact as a JavaScript number (the offline verifiers read them so).
  -- No stream gets near it; only a head carried in settings a writer set by hand could (THREAT-MODEL).
  constraint events_seq_in_range check (seq between 1 and 9007199254740991),
  constraint events_actor_type_known check (actor_type in ('user', 'api_key', 'service', 'system')),
  constraint events_result_known check (result in ('success', 'failure')),
  constraint events_hashes_are_sha256 check (
    octet_length(hash) = 32 and octet_length(prev_hash) = 32 and octet_length(data_digest) = 32)
);

comment on table chainlog.events is
  'One row per audit event. Append-only: INSERT (or COPY) only; chainlog assigns seq, recorded_at, '
  'format_version, data_digest, prev_hash and hash, and refuses UPDATE, DELETE and TRUNCATE.';
comment on column chainlog.events.id is 'Identity, allocated when the row is inserted (not in commit order). Never use it to order a chain: use seq.';
comment on column chainlog.events.stream is 'The chain this event belongs to (a tenant, an organization, a workflow).';
comment on column chainlog.events.seq is 'Position in the stream, 1..n without gaps. Assigned by chainlog.';
comment on column chainlog.events.recorded_at is 'Database clock when the event was chained (clock_timestamp()), not when its transaction committed. Assigned by chainlog.';
comment on column chainlog.events.occurred_at is 'When the client says the event happened. Optional and not trusted.';
comment on column chainlog.events.actor is 'Who did it. Defaults to the setting chainlog.actor, then session_user.';
comment on column chainlog.events.actor_type is 'user, api_key, service or system. Defaults to chainlog.actor_type, then user (service when actor fell back to session_user).';
comment on column chainlog.events.source_ip is 'Defaults to the setting chainlog.source_ip, then inet_client_addr().';
comment on column chainlog.events.request_id is 'Defaults to the setting chainlog.request_id.';
comment on column chainlog.events.data_digest is 'SHA-256 of payload, before and after (docs/FORMAT.md). The chain commits to this digest, so those values can later be redacted without breaking verification.';
comment on column chainlog.events.prev_hash is 'hash of the previous event in the stream; 32 zero bytes for seq 1.';
comment on column chainlog.events.hash is 'SHA-256 of the canonical encoding of this event (docs/FORMAT.md).';

-- The recorded head of every stream: the last committed seq and hash. It is what lets verify() tell a
-- chain cut short at its tail (truncated) from a chain that simply ends there. It is written at most
-- three times per transaction and stream (the first event, the second marking it pending, the settle
-- at commit) and once for a one-event transaction, never once per event: updating one row per event
-- inside a transaction is quadratic, because the row's dead versions cannot be pruned while the
-- transaction is open.
create table chainlog.stream_heads (
  stream      text        primary key,
  head_seq    bigint      not null,
  head_hash   bytea       not null,
  -- The head event's prev_hash: lets the chain trigger claim a stream, chain an event and record it as
  -- the head in one UPDATE (RETURNING sees only the new row). NULL until chainlog records a head.
  prev_hash   bytea,
  -- true only inside the transaction that holds the stream's lock and wrote more than one event to it:
  -- the head is then settled at commit. Never visible to others.
  pending     boolean     not null default false,
  -- The transaction that last recorded this head. Lets a transaction that comes back to a stream
  -- after writing another one see that the head is its own, and leave the rest to the settle.
  recorded_by xid8,
  created_at  timestamptz not null default pg_catalog.clock_timestamp(),
  updated_at  timestamptz not null default pg_catalog.clock_timestamp()
  -- No CHECK constraints: only chainlog's own functions write this table, with values the chain
  -- computed, and verify() compares every head with its stream. PostgreSQL re-reads a table's CHECK
  -- expressions for every statement that writes it, and one head write is part of every transaction.
);

comment on table chainlog.stream_heads is
  'Private. The recorded head of each stream. Read it through the view chainlog.streams.';
