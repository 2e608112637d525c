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
  disabled text;
  events_table pg_catalog.regclass := pg_catalog.to_regclass('chainlog.events');
  heads_table pg_catalog.regclass := pg_catalog.to_regclass('chainlog.stream_heads');
begin
  if pg_catalog.current_setting('chainlog.maintenance', true) = 'on' then
    return;
  end if;
  -- By name, and without a cast that fails: after chainlog was removed (in a maintenance window) this
  -- trigger must not break ALTER TABLE on the database's other tables.
  if events_table is null or heads_table is null then
    if pg_catalog.to_regnamespace('chainlog') is null then
      return;
    end if;
    raise exception 'chainlog: renaming or moving chainlog.events or chainlog.stream_heads is not allowed'
      using errcode = 'LC004',
            hint = 'chainlog''s functions find its tables by name. For planned maintenance run SELECT chainlog.begin_maintenance(''why'') in the same transaction first.';
  end if;
  -- 'O' fires in normal sessions, 'A' always; 'D' (disabled) and 'R' (replica only) switch it off.
  select pg_catalog.string_agg(t.tgname::text, ', ') into disabled
    from pg_catalog.pg_trigger t
   where t.tgrelid in (events_table, heads_table)
     and not t.tgisinternal
     and t.tgenabled not in ('O', 'A');
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
      when tag in ('ALTER TABLE')
      execute function chainlog_guard.refuse_disabling_triggers();
    create event trigger chainlog_guard_drop on sql_drop
      execute function chainlog_guard.refuse_dropping_chainlog();
  else
    raise notice 'chainlog: % may not create event triggers, so DDL that disables chainlog''s triggers is not refused. UPDATE, DELETE and TRUNCATE still are, and verify() detects tampering.', current_user;
  end if;
end $$;
