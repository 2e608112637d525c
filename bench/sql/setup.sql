-- Installed by `npm run bench` into its template database, after chainlog. Nothing here is part of
-- chainlog: these are the baselines chainlog is compared with, and the generator of realistic events.
create schema bench;

-- Baseline 1: a plain table with chainlog.events' columns, constraints and indexes, read from the
-- catalog now (so indexes added by later migrations, such as search indexes, come along), and no
-- trigger. Its rows carry real-looking seq and hash values, so the rows are as wide as chainlog's.
-- CHECK constraints are copied too: the difference between the two tables is then exactly the triggers.
create table bench.plain (
  like chainlog.events including defaults including identity including indexes including constraints
);
-- What chainlog's trigger assigns, an ordinary audit table would default.
alter table bench.plain
  alter column recorded_at set default clock_timestamp(),
  alter column format_version set default 1;

-- Baseline 2: the same table with a trigger that only computes the hashes, with chainlog's own format
-- functions, and does no chaining (no head lookup, no lock, no carried head). The client supplies seq
-- and prev_hash. chainlog minus this baseline is the cost of the chain itself.
create table bench.hashed (
  like chainlog.events including defaults including identity including indexes including constraints
);

create function bench.hash_only() returns trigger
language plpgsql
as $$
begin
  new.recorded_at := clock_timestamp();
  new.format_version := 1;
  new.data_digest := chainlog.data_digest(new.payload, new.before, new.after);
  new.hash := sha256(chainlog.canonical_bytes(
    new.format_version, new.prev_hash, new.seq, new.recorded_at, new.data_digest,
    new.stream, new.occurred_at, new.actor, new.actor_type, new.event_type, new.action,
    new.result, new.resource_type, new.resource_id, new.source_ip, new.request_id));
  return new;
end;
$$;

create trigger hash_only before insert on bench.hashed
  for each row execute function bench.hash_only();

-- The kinds of event the generator draws from: (event_type, action, resource_type).
create table bench.kinds (k int primary key, event_type text not null, action text not null, resource_type text not null);
insert into bench.kinds values
  (0, 'INVOICE_CREATED', 'CREATE', 'invoice'),
  (1, 'INVOICE_UPDATED', 'UPDATE', 'invoice'),
  (2, 'INVOICE_PAID', 'UPDATE', 'invoice'),
  (3, 'USER_LOGIN', 'LOGIN', 'session'),
  (4, 'USER_LOGOUT', 'LOGOUT', 'session'),
  (5, 'DOCUMENT_VIEWED', 'READ', 'document'),
  (6, 'DOCUMENT_DELETED', 'DELETE', 'document'),
  (7, 'ROLE_GRANTED', 'UPDATE', 'role'),
  (8, 'API_KEY_CREATED', 'CREATE', 'api_key'),
  (9, 'WORKFLOW_EXECUTED', 'EXECUTE', 'workflow'),
  (10, 'SETTINGS_CHANGED', 'UPDATE', 'settings'),
  (11, 'EXPORT_REQUESTED', 'EXECUTE', 'export');

-- Events number g = p_first .. p_first + p_count - 1 of a stream. Deterministic: the same formulas as
-- makeEvent() in bench/lib/data.ts, so events made here and in Node have the same shape and sizes
-- (about 350 hashed bytes: see the run's "event shape" line).
create function bench.gen_events(p_stream text, p_first bigint, p_count bigint)
returns table (
  stream text, occurred_at timestamptz, actor text, actor_type text, event_type text, action text,
  result text, resource_type text, resource_id text, source_ip inet, request_id text,
  payload jsonb, before jsonb, after jsonb)
language sql stable
as $$
  select p_stream,
         timestamptz '2025-01-01 00:00:00+00' + g * interval '37 milliseconds',
         'user-' || lpad((x.h % 5000)::text, 4, '0') || '@example.com',
         case when x.h % 10 < 7 then 'user' when x.h % 10 < 9 then 'api_key' else 'service' end,
         k.event_type,
         k.action,
         case when x.h % 50 = 0 then 'failure' else 'success' end,
         k.resource_type,
         k.resource_type || '-' || lpad((x.h % 100000)::text, 6, '0'),
         '203.0.113.0'::inet + (x.h % 250),
         'req-' || lpad(to_hex(x.h), 8, '0') || '-' || g,
         jsonb_build_object(
           'amount', x.h % 100000, 'currency', 'EUR', 'reason', 'monthly billing run',
           'client', jsonb_build_object('app', 'web', 'version', '4.18.2'), 'tags', jsonb_build_array('billing', 'q3')),
         case when k.action = 'UPDATE' then jsonb_build_object('status', 'open', 'amount', x.h % 100000) end,
         case when k.action = 'UPDATE' then jsonb_build_object('status', 'paid', 'amount', x.h % 100000) end
    from generate_series(p_first, p_first + p_count - 1) g
   cross join lateral (select (g * 2654435761) % 4294967296 as h) x
    join bench.kinds k on k.k = (x.h / 256) % 12
$$;

-- 1000 ready-made events for INSERT ... SELECT workloads, so that generating rows costs the server
-- nothing during a timed statement. The hashes are realistic 32-byte values for the plain baseline.
create table bench.src as
select n, e.*,
       sha256(convert_to('digest' || n, 'UTF8')) as data_digest,
       sha256(convert_to('prev' || n, 'UTF8')) as prev_hash,
       sha256(convert_to('hash' || n, 'UTF8')) as hash
  from generate_series(1, 1000) n
  cross join lateral bench.gen_events('src', n, 1) e;
alter table bench.src add primary key (n);
