-- chainlog 4: append-only. No role, the table owner included, can UPDATE, DELETE or TRUNCATE an event.
--
-- Three layers: the privileges are revoked (00006), these triggers refuse the statements for every
-- role that privileges would not stop (the owner, a superuser), and where the installing role may
-- create event triggers, DDL that would switch these triggers off is refused too, outside the
-- documented maintenance path chainlog.begin_maintenance().
--
-- A superuser can still bypass all of it (session_replication_role = replica, or dropping the event
-- triggers first). That is what chainlog.verify() detects afterwards, and what an external checkpoint
-- covers when the attacker also rewrites the chain (docs/THREAT-MODEL.md).

create function chainlog._refuse_change() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception 'chainlog: % on %.% is not allowed: the audit log is append-only', tg_op, tg_table_schema, tg_table_name
    using errcode = 'LC003',
          hint = case when tg_table_name = 'events'
                      then 'Record a correction as a new event. Events are never changed or removed.'
                      else 'chainlog maintains this table itself.' end;
end;
$$;

create trigger events_append_only
  before update or delete on chainlog.events
  for each row execute function chainlog._refuse_change();

create trigger events_no_truncate
  before truncate on chainlog.events
  for each statement execute function chainlog._refuse_change();

create trigger stream_heads_no_delete
  before delete on chainlog.stream_heads
  for each row execute function chainlog._refuse_change();

create trigger stream_heads_no_truncate
  before truncate on chainlog.stream_heads
  for each statement execute function chainlog._refuse_change();

-- The maintenance path: DDL that touches chainlog's protection is allowed only in a transaction that
-- first called this. The call itself is recorded as an event in the stream 'chainlog.maintenance'.
create function chainlog.begin_maintenance(reason text) returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  event_id bigint;
begin
  if reason is null or pg_catalog.btrim(reason) = '' then
    raise exception 'chainlog: begin_maintenance needs a reason'
      using errcode = 'LC006', hint = 'Say why, e.g. chainlog.begin_maintenance(''upgrade to chainlog 0.2'').';
  end if;
  -- On a logical subscriber the record below would take an id from this database's identity, which
  -- the replicated events do not advance: it collides with a replicated event's id, and then the
  -- publisher's event with its id stops the subscription for good.
  if exists (select from pg_catalog.pg_subscription_rel r where r.srrelid = 'chainlog.events'::pg_catalog.regclass) then
    raise exception 'chainlog: begin_maintenance cannot run on a logical-replication subscriber of chainlog.events'
      using errcode = 'LC004',
            hint = 'Its record would take an event id the publisher also uses, and stop replication. Run maintenance on the publisher; chainlog migrate upgrades a subscriber without a record (docs/SQL.md, "Replication").';
  end if;
  -- The insert runs with the owner's rights, so the reserved-name check lets it through: it must not
  -- follow a head the caller carried into chainlog.maintenance by hand (a seq and predecessor of their
  -- choosing). Without a carried head it claims the stream like any first event.
  if pg_catalog.current_setting('chainlog.head_stream', true) = 'chainlog.maintenance' then
    perform pg_catalog.set_config('chainlog.head_stream', '', true);
  end if;
  insert into chainlog.events (stream, event_type, action, actor, actor_type, payload)
  values ('chainlog.maintenance', 'CHAINLOG_MAINTENANCE_BEGAN', 'EXECUTE', session_user, 'user',
          pg_catalog.jsonb_build_object('reason', reason))
  returning id into event_id;
  perform pg_catalog.set_config('chainlog.maintenance', 'on', true);
  return event_id;
end;
$$;

comment on function chainlog.begin_maintenance(text) is
  'Allows, for the rest of this transaction only, DDL that disables or drops chainlog''s triggers or tables. Records who and why as an event in stream ''chainlog.maintenance''. Returns that event''s id.';

-- Event trigger bodies. They live in their own schema: a function in schema chainlog would be dropped
-- by DROP SCHEMA chainlog CASCADE together with its event trigger, before the trigger could refuse it.
-- Installed only when the installing role may create event triggers (superuser).
create schema chainlog_guard;
comment on schema chainlog_guard is
  'chainlog: event trigger functions refusing DDL that would switch chainlog''s protection off (see chainlog.begin_maintenance).';
revoke all on schema chainlog_guard from public;

create function chainlog_guard.refuse_disabling_triggers() returns event_trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  moved text;
  unlogged text;
  disabled text;
  ids_given boolean;
begin
  if pg_catalog.current_setting('chainlog.maintenance', true) = 'on' then
    return;
  end if;
  -- chainlog's two tables, found in the catalogs by the triggers only they carry, wherever they are now
  -- (renamed, moved, their schema renamed). Not by name through to_regclass(), which needs USAGE on
  -- schema chainlog: this runs as whoever ran the ALTER, on any table of the database, and must not fail
  -- for roles that have nothing to do with chainlog. Once chainlog is removed (in a maintenance window)
  -- nothing is found and nothing refused. The trigger's function and the table must belong to the role
  -- that installed chainlog (who owns this event trigger): any role may create a table with a trigger
  -- and a function named like chainlog's, which would otherwise make every ALTER TABLE fail.
  with chainlog_tables as (
    select c.oid, c.relpersistence, pg_catalog.format('%I.%I', n.nspname, c.relname) as name, t.tgname,
           case t.tgname when 'zz_chainlog_chain' then 'chainlog.events' else 'chainlog.stream_heads' end as meant
      from pg_catalog.pg_trigger t
      join pg_catalog.pg_proc p on p.oid = t.tgfoid
      join pg_catalog.pg_class c on c.oid = t.tgrelid
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where ((t.tgname = 'zz_chainlog_chain' and p.proname = '_chain_event')
            or (t.tgname = 'stream_heads_settle' and p.proname = '_settle_head'))
       and (p.proowner, c.relowner) = (select e.evtowner, e.evtowner from pg_catalog.pg_event_trigger e
                                        where e.evtname = 'chainlog_guard_ddl'))
  select pg_catalog.string_agg(pg_catalog.format('%s (now %s)', ct.meant, ct.name), ', ') filter (where ct.name <> ct.meant),
         pg_catalog.string_agg(ct.name, ', ') filter (where ct.relpersistence <> 'p'),
         (select pg_catalog.string_agg(tr.tgname::text, ', ')
            from pg_catalog.pg_trigger tr
           where tr.tgrelid in (select ct2.oid from chainlog_tables ct2)
             and not tr.tgisinternal
             -- 'O' fires in normal sessions, 'A' always; 'D' (disabled) and 'R' (replica only) switch it off.
             and tr.tgenabled not in ('O', 'A')),
         -- The events' ids come from their identity, GENERATED ALWAYS: dropping it (and its sequence) or
         -- making it BY DEFAULT would let writers choose ids.
         pg_catalog.bool_or(ct.tgname = 'zz_chainlog_chain'
                            and not exists (select from pg_catalog.pg_attribute a
                                             where a.attrelid = ct.oid and a.attname = 'id' and a.attidentity = 'a'))
    into moved, unlogged, disabled, ids_given
    from chainlog_tables ct;
  if moved is not null then
    raise exception 'chainlog: renaming or moving chainlog''s tables or their schema is not allowed: %', moved
      using errcode = 'LC004',
            hint = 'chainlog''s functions find its tables by name. For planned maintenance run SELECT chainlog.begin_maintenance(''why'') in the same transaction first.';
  end if;
  if unlogged is not null then
    raise exception 'chainlog: making chainlog''s tables unlogged is not allowed: %', unlogged
      using errcode = 'LC004',
            hint = 'An unlogged table is emptied after a crash and is neither replicated nor archived. For planned maintenance run SELECT chainlog.begin_maintenance(''why'') in the same transaction first.';
  end if;
  if ids_given then
    raise exception 'chainlog: chainlog.events.id must stay GENERATED ALWAYS AS IDENTITY'
      using errcode = 'LC004',
            hint = 'chainlog numbers the events itself. For planned maintenance run SELECT chainlog.begin_maintenance(''why'') in the same transaction first.';
  end if;
  if disabled is not null then
    raise exception 'chainlog: disabling chainlog''s triggers (%) is not allowed', disabled
      using errcode = 'LC004',
            hint = 'Outside maintenance these triggers must stay enabled. For planned maintenance run SELECT chainlog.begin_maintenance(''why'') in the same transaction first.';
  end if;
end;
$$;

create function chainlog_guard.refuse_dropping_chainlog() returns event_trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  dropped text;
begin
  if pg_catalog.current_setting('chainlog.maintenance', true) = 'on' then
    return;
  end if;
  select pg_catalog.string_agg(d.object_identity, ', ') into dropped
    from pg_catalog.pg_event_trigger_dropped_objects() d
   where d.schema_name = 'chainlog'
     and d.object_type in ('schema', 'table', 'table column', 'trigger', 'function', 'view', 'index', 'table constraint');
  if dropped is null then
    select pg_catalog.string_agg(d.object_identity, ', ') into dropped
      from pg_catalog.pg_event_trigger_dropped_objects() d
     where d.object_type = 'schema' and d.object_name = 'chainlog';
  end if;
  if dropped is not null then
    raise exception 'chainlog: dropping % is not allowed', dropped
      using errcode = 'LC004',
            hint = 'chainlog''s objects hold the audit log and its protection. For planned maintenance or removal run SELECT chainlog.begin_maintenance(''why'') in the same transaction first.';
  end if;
end;
$$;

do $$
begin
  if (select r.rolsuper from pg_catalog.pg_roles r where r.rolname = current_user) then
    create event trigger chainlog_guard_ddl on ddl_command_end
      when tag in ('ALTER TABLE', 'ALTER SCHEMA')
      execute function chainlog_guard.refuse_disabling_triggers();
    create event trigger chainlog_guard_drop on sql_drop
      execute function chainlog_guard.refuse_dropping_chainlog();
  else
    raise notice 'chainlog: % may not create event triggers, so DDL that disables chainlog''s triggers is not refused. UPDATE, DELETE and TRUNCATE still are, and verify() detects tampering.', current_user;
  end if;
end $$;
