-- chainlog 6: the remaining public interface (append(), the streams view) and the roles.

-- What append() returns: the stored event's id and its place in its chain.
create type chainlog.appended_event as (id bigint, stream text, seq bigint, hash bytea);

comment on type chainlog.appended_event is 'A row of chainlog.append(): the new event''s id, stream, seq and hash.';

create function chainlog.append(
  event_type    text,
  action        text,
  stream        text        default 'default',
  actor         text        default null,
  actor_type    text        default null,
  result        text        default 'success',
  resource_type text        default null,
  resource_id   text        default null,
  payload       jsonb       default null,
  before        jsonb       default null,
  after         jsonb       default null,
  occurred_at   timestamptz default null,
  source_ip     inet        default null,
  request_id    text        default null)
returns setof chainlog.appended_event
-- PL/pgSQL, not SQL: PL/pgSQL keeps the INSERT's plan for the session, while a SQL function's INSERT
-- is planned again at every call (before PostgreSQL 18), a quarter of a one-event transaction's cost.
-- The rows are a named type because a PL/pgSQL result column cannot share the name of the parameter
-- `stream`.
language plpgsql
-- Invoker's rights: append() is INSERT with named parameters, so the caller needs INSERT on
-- chainlog.events (chainlog_writer has it), and actor defaults to the caller's session_user.
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
  return query
    insert into chainlog.events as e
      (event_type, action, stream, actor, actor_type, result, resource_type, resource_id,
       payload, before, after, occurred_at, source_ip, request_id)
    values
      (append.event_type, append.action, append.stream, append.actor, append.actor_type, append.result,
       append.resource_type, append.resource_id, append.payload, append.before, append.after,
       append.occurred_at, append.source_ip, append.request_id)
    returning e.id, e.stream, e.seq, e.hash;
end;
$$;

comment on function chainlog.append(text, text, text, text, text, text, text, text, jsonb, jsonb, jsonb, timestamptz, inet, text) is
  'Appends one event and returns its id, stream, seq and hash. Omitted context comes from the settings chainlog.actor, chainlog.actor_type, chainlog.source_ip and chainlog.request_id. '
  'Example: SELECT * FROM chainlog.append(event_type => ''INVOICE_PAID'', action => ''UPDATE'', stream => ''acme'', resource_type => ''invoice'', resource_id => ''42'');';

create view chainlog.streams
with (security_barrier)
as
select h.stream,
       h.head_seq,
       h.head_hash,
       h.created_at,
       h.updated_at as last_appended_at,
       -- As verify() reads it: only the row's own transaction sees it pending.
       coalesce(h.pending and h.recorded_by = pg_catalog.pg_current_xact_id_if_assigned(), false) as head_pending
  from chainlog.stream_heads h;

comment on view chainlog.streams is
  'One row per stream: its recorded head (head_seq, head_hash: the last committed event), when it was created and last appended to. '
  'head_pending is true only inside a transaction that has appended two or more events to the stream: its own events then run past the head shown, which is recorded at its commit.';

-- Roles. They are cluster-wide, so another database may have created them already, possibly at this
-- very moment: tolerate both.
do $$
declare
  role_name text;
begin
  foreach role_name in array array['chainlog_reader', 'chainlog_writer', 'chainlog_admin'] loop
    if not exists (select from pg_catalog.pg_roles r where r.rolname = role_name) then
      begin
        execute pg_catalog.format('create role %I nologin', role_name);
      exception when duplicate_object or unique_violation then
        null; -- created concurrently by another install
      end;
    end if;
  end loop;
end $$;

-- Privileges the install did not mean to give. ALTER DEFAULT PRIVILEGES (of the installing role, or in
-- a schema) gives other roles privileges on every new table, sequence, function, type or schema, so on
-- chainlog's too: a role given TRIGGER that way could rewrite events before the chain trigger hashes
-- them. Everything anyone but the owner holds on chainlog's objects is taken back here (PUBLIC's USAGE
-- on types excepted: a type's default), and the grants below give the documented ones.
do $$
declare
  held record;
begin
  for held in
    select o.kind, o.name, a.grantee
      from (select case c.relkind when 'S' then 'sequence' else 'table' end as kind,
                   c.oid::pg_catalog.regclass::pg_catalog.text as name, c.relacl as acl, c.relowner as owner
              from pg_catalog.pg_class c
             where c.relnamespace in ('chainlog'::pg_catalog.regnamespace, 'chainlog_guard'::pg_catalog.regnamespace)
               and c.relkind in ('r', 'p', 'v', 'm', 'S')
            union all
            select 'function', p.oid::pg_catalog.regprocedure::pg_catalog.text, p.proacl, p.proowner
              from pg_catalog.pg_proc p
             where p.pronamespace in ('chainlog'::pg_catalog.regnamespace, 'chainlog_guard'::pg_catalog.regnamespace)
            union all
            select 'type', t.oid::pg_catalog.regtype::pg_catalog.text, t.typacl, t.typowner
              from pg_catalog.pg_type t
             where t.typnamespace in ('chainlog'::pg_catalog.regnamespace, 'chainlog_guard'::pg_catalog.regnamespace)
            union all
            select 'schema', pg_catalog.quote_ident(n.nspname), n.nspacl, n.nspowner
              from pg_catalog.pg_namespace n
             where n.nspname in ('chainlog', 'chainlog_guard')) o
      cross join lateral pg_catalog.aclexplode(o.acl) a
     where a.grantee <> o.owner and not (o.kind = 'type' and a.grantee = 0)
     group by o.kind, o.name, a.grantee
  loop
    execute pg_catalog.format('revoke all on %s %s from %s', held.kind, held.name,
      case held.grantee when 0 then 'public' else pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(held.grantee)) end);
  end loop;
end $$;

-- Nobody gets UPDATE, DELETE or TRUNCATE, the owner included (the owner could grant them back, but
-- the append-only triggers refuse the statements anyway).
revoke all on chainlog.events, chainlog.stream_heads from public;
revoke update, delete, truncate on chainlog.events from current_user;
revoke all on all functions in schema chainlog from public;

grant usage on schema chainlog to chainlog_reader, chainlog_writer, chainlog_admin;

-- Readers read and verify.
grant select on chainlog.events, chainlog.streams to chainlog_reader;
grant execute on function chainlog.verify(text, bigint), chainlog.verify_all(),
  chainlog.last_event(text), chainlog.genesis_hash(), chainlog.data_digest(jsonb, jsonb, jsonb),
  chainlog.canonical_bytes(smallint, bytea, bigint, timestamptz, bytea, text, timestamptz, text, text, text, text, text, text, text, inet, text),
  chainlog.text_field(text), chainlog.timestamp_field(timestamptz), chainlog.inet_field(inet),
  chainlog._content_ok(chainlog.events, bigint)
  to chainlog_reader;

-- Writers insert (directly, by COPY or with append()) and read. The chain trigger runs with the
-- writer's rights and calls these helpers; _chain_first is security definer and writes stream_heads.
grant chainlog_reader to chainlog_writer;
-- Every column but id: INSERT ... OVERRIDING SYSTEM VALUE could otherwise take ids, either ahead of the
-- identity (later inserts then fail) or already used, which with ON CONFLICT DO NOTHING skips the row
-- after the chain trigger gave it a seq. The columns chainlog assigns stay in the grant so that
-- supplying one gets LC001, which names it, rather than a bare permission error.
grant insert (stream, seq, recorded_at, occurred_at, actor, actor_type, event_type, action, result,
              resource_type, resource_id, source_ip, request_id, payload, before, after,
              format_version, data_digest, prev_hash, hash)
  on chainlog.events to chainlog_writer;
grant execute on function
  chainlog.append(text, text, text, text, text, text, text, text, jsonb, jsonb, jsonb, timestamptz, inet, text),
  chainlog._chain_first(chainlog.events), chainlog._setting_inet(text), chainlog._refuse_reserved_stream(text),
  chainlog._reject_invalid_event(text, text, text, text, text, text, timestamptz),
  chainlog._refuse_long_fields(text, text, text, text, text, text)
  to chainlog_writer;

-- Admins do both and may open a maintenance window.
grant chainlog_writer to chainlog_admin;
grant execute on function chainlog.begin_maintenance(text) to chainlog_admin;
