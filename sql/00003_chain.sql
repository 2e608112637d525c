-- chainlog 3: the chain. A BEFORE INSERT trigger gives every event its place in its stream's chain.
--
-- How a writer gets a stream's head, and why it is fast:
--   * The first event a transaction writes to a stream "claims" the stream: one UPDATE of the stream's
--     row in chainlog.stream_heads locks it until commit, chains the event on the head it finds there
--     and records the event as the new head. Writers of one stream therefore take turns, seq is
--     assigned inside that critical section, and no two events can get the same predecessor. Under
--     REPEATABLE READ or SERIALIZABLE the claim raises SQLSTATE 40001 when another transaction moved
--     the head after this one's snapshot: retry, never a fork.
--   * A one-event transaction (an application logging one event per request) runs that one statement
--     on the head row and is done.
--   * The second event finds the head row recorded by its own transaction, marks it pending, and from
--     then on a deferred trigger "settles" the recorded head once, at commit. The head row is written
--     at most three times per transaction and stream, never once per event.
--   * From the second event on, the head is carried in transaction-local settings
--     (chainlog.head_stream and chainlog.head: the hash in hex followed by the seq), so every further
--     event of that stream in the transaction costs no lookup and no lock: the insert cost does not
--     grow with the transaction or the table.
-- Settings set with is_local roll back with a failed savepoint and vanish at transaction end, so the
-- carried head is never stale. They are not private, though: any role can set them. A writer that
-- does so chains its own later events of the transaction on a head of its choosing, which verify()
-- then reports as a broken chain (detected, not prevented: docs/THREAT-MODEL.md). The recorded head
-- never comes from them: the settle at commit reads the stored last event.

-- The last event of a stream, by seq. The planner settings make this an index scan whatever the
-- statistics say: a prototype's cached plan flipped to a full scan + sort per insert after
-- TRUNCATE/ANALYZE of an empty table. PL/pgSQL, not SQL, because PL/pgSQL keeps the query's plan for
-- the session, while a SQL function with SET clauses is planned again at every call: a transaction
-- that interleaves streams calls this for every event that returns to a stream.
create function chainlog.last_event(stream text, out seq bigint, out hash bytea, out prev_hash bytea)
language plpgsql stable
set search_path = pg_catalog, pg_temp
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
as $$
begin
  select e.seq, e.hash, e.prev_hash into last_event.seq, last_event.hash, last_event.prev_hash
    from chainlog.events e
   where e.stream = last_event.stream
   order by e.seq desc
   limit 1;
end;
$$;

comment on function chainlog.last_event(text) is
  'The last stored event of a stream (seq, hash, prev_hash), or NULLs for an empty stream.';

-- after_seq, or the last seq of the unbroken run of stored events right after it: the next event takes
-- the seq after that. Called for a stream's first event (after_seq 0: events stored without a head
-- row) and when events lie beyond a stream's recorded head (see _chain_first). PL/pgSQL, so that the
-- query's plan is kept for the session: a SQL function with SET clauses is planned at every call.
create function chainlog._last_taken_after(stream text, after_seq bigint) returns bigint
language plpgsql stable
set search_path = pg_catalog, pg_temp
set enable_seqscan = off
as $$
begin
  return (select coalesce(min(s.seq), _last_taken_after.after_seq) from chainlog.events s
           where s.stream = _last_taken_after.stream and s.seq > _last_taken_after.after_seq
             and exists (select from chainlog.events r where r.stream = s.stream and r.seq = _last_taken_after.after_seq + 1)
             and not exists (select from chainlog.events n where n.stream = s.stream and n.seq = s.seq + 1));
end;
$$;

-- This transaction's own pending head of a stream: the stream's stored last event, when the stream's
-- head row is marked pending by this transaction (see _chain_first). No row otherwise. A SQL function
-- without a SET clause, so that the planner inlines it into the statements that use it; like the
-- format functions (sql/00002_format.sql), its body is parsed when it is created and its operators
-- are written with their schema.
create function chainlog._own_pending_head(stream text) returns table (seq bigint, hash bytea)
language sql stable
begin atomic
  select l.seq, l.hash
    from chainlog.stream_heads h cross join lateral chainlog.last_event(h.stream) l
   where h.stream operator(pg_catalog.=) _own_pending_head.stream and h.pending
     and h.recorded_by operator(pg_catalog.=) pg_catalog.pg_current_xact_id();
end;

-- Chains the first event a transaction writes to a stream, and claims the stream for the transaction.
-- Called by the chain trigger with the event as it will be stored; returns it with seq, recorded_at,
-- format_version, prev_hash, data_digest and hash filled in. Runs for a transaction's first two
-- events of a stream, and again for each event that comes back to a stream after another one.
--
-- Commonly one UPDATE locks the stream's head row, chains the event on the head it holds and writes
-- that event as the new head: a one-event transaction, the commonest kind, then needs nothing more at
-- commit. The statements after it handle the rest. The next event of the stream in the transaction
-- comes back here, finds the head recorded by its own transaction, and hands it to the settle at
-- commit by marking the row pending; only then is the head carried (chainlog.head_stream,
-- chainlog.head), so that the events after it skip the lookup. An event that comes back to a stream
-- after another one finds the row pending and chains on the stream's stored last event. A new stream
-- gets its head row in the loop at the end, and stored events beyond the recorded head are stepped
-- over there.
-- Like last_event(), it must find the head row by its primary key whatever the statistics say (a
-- stream_heads analyzed while nearly empty would otherwise be scanned).
-- Settings are set by assignment, not PERFORM: an assignment is evaluated directly, PERFORM runs a query.
create function chainlog._chain_first(e chainlog.events) returns chainlog.events
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set enable_seqscan = off
as $$
declare
  head_seq bigint;
  head_hash bytea;
  -- Where the locked head row is: while we hold its lock nobody else can move it.
  head_row tid;
  -- The last stored event beyond the recorded head, if any (see below).
  beyond_seq bigint;
  -- false when the settle records this stream's head at commit (see below).
  record_head boolean := true;
  ignored text;
begin
  -- Only the chain trigger may call this: called directly, it would record a head no stored event has.
  -- A role's own trigger can still call it (docs/THREAT-MODEL.md), so it also refuses what the chain
  -- trigger would: a head row for an empty stream name would make verify_all() fail for every stream.
  if pg_catalog.pg_trigger_depth() < 1 or e.stream is null or e.stream = '' then
    raise exception 'chainlog: _chain_first() is internal to the chain trigger'
      using errcode = '42501', hint = 'Insert into chainlog.events or call chainlog.append().';
  end if;
  -- The commonest claim, in one statement instead of a locking SELECT and an UPDATE (one WAL record
  -- and one statement less per transaction): the UPDATE waits while another writer holds the row and
  -- then re-evaluates it on the head that writer committed, so the event is chained on the latest
  -- head. The sub-select runs once for the row, so hash and recorded_at share one clock reading,
  -- taken after the wait: recorded_at never goes back along a stream. The old head's hash comes back
  -- through the row's prev_hash, since RETURNING sees only the new row (old.* needs PostgreSQL 18).
  -- The WHERE leaves to the loop below this transaction's own head (its next event of the stream)
  -- and stored events beyond the recorded head; a new stream has no row to update.
  e.format_version := 1;
  e.data_digest := chainlog.data_digest(e.payload, e.before, e.after);
  update chainlog.stream_heads h
     set (head_seq, head_hash, prev_hash, updated_at, recorded_by) = (
           select h.head_seq + 1,
                  pg_catalog.sha256(chainlog.canonical_bytes(
                    e.format_version, h.head_hash, h.head_seq + 1, c.now, e.data_digest,
                    e.stream, e.occurred_at, e.actor, e.actor_type, e.event_type, e.action,
                    e.result, e.resource_type, e.resource_id, e.source_ip, e.request_id)),
                  h.head_hash, c.now, pg_catalog.pg_current_xact_id()
             from (values (pg_catalog.clock_timestamp())) c (now))
   where h.stream = e.stream
     and h.recorded_by is distinct from pg_catalog.pg_current_xact_id()
     and (select pg_catalog.max(s.seq) from chainlog.events s where s.stream = h.stream and s.seq > h.head_seq) is null
  returning h.head_seq, h.head_hash, h.prev_hash, h.updated_at
       into e.seq, e.hash, e.prev_hash, e.recorded_at;
  if found then
    return e;
  end if;

  -- A row this transaction marked pending earlier: it holds the lock and the settle is queued; its own
  -- latest event of the stream is the head (the carried head is another stream's). This is the path of
  -- every event that returns to a stream in a transaction that interleaves streams, so it is tried
  -- first when the transaction carries a head, which it does once it has a pending stream. The setting
  -- only orders the attempts: whatever it says, each of them checks the head row itself.
  if pg_catalog.current_setting('chainlog.head_stream', true) operator(pg_catalog.<>) '' then
    select p.seq, p.hash into head_seq, head_hash from chainlog._own_pending_head(e.stream) p;
    record_head := not found;
  end if;

  -- This transaction recorded the stream's head itself, at its last event of the stream: this is its
  -- next one, right after or after other streams. Recording every event would update the row once per
  -- event (the quadratic trap): mark the row pending, which queues the settle at commit, and chain on
  -- the head it holds. The settle trigger must fire at commit. If it fires now, inside this statement,
  -- constraints were made immediate and the head it recorded would be stale: it checks the flag set
  -- around the statement and refuses.
  if record_head then
    ignored := pg_catalog.set_config('chainlog.claiming', 'on', true);
    update chainlog.stream_heads h set pending = true
     where h.stream = e.stream and h.recorded_by = pg_catalog.pg_current_xact_id() and not h.pending
    returning h.head_seq, h.head_hash into head_seq, head_hash;
    record_head := not found;
    ignored := pg_catalog.set_config('chainlog.claiming', 'off', true);
  end if;

  while record_head loop
    -- Not pending: the committed head, now locked by us (waits while another writer holds it). A row
    -- this transaction has pending is looked for at the end of the loop; one another transaction has
    -- pending is not visible.
    select h.head_seq, h.head_hash, h.ctid,
           (select pg_catalog.max(s.seq) from chainlog.events s where s.stream = h.stream and s.seq > h.head_seq)
      into head_seq, head_hash, head_row, beyond_seq
      from chainlog.stream_heads h
     where h.stream = e.stream and not (h.pending and h.recorded_by = pg_catalog.pg_current_xact_id())
       for no key update;
    if found then
      if beyond_seq is not null then
        -- Stored events beyond the recorded head, which no transaction recorded: written on a carried
        -- head set by hand (docs/THREAT-MODEL.md), or around chainlog. If one holds the next seq, this
        -- event would collide with it, and so would every later writer's: the stream would take no
        -- more events. It takes the first free seq after the head instead (not the seq after the last
        -- of them, which a writer could place just below the CHECK's limit), still chained on the
        -- recorded head, so that verify() keeps reporting them rather than the chain absorbing them.
        -- Only forward: a stored tail behind the recorded head (events cut off) stays a visible gap.
        head_seq := chainlog._last_taken_after(e.stream, head_seq);
      end if;
      exit;
    end if;

    -- A new stream: its head row, locked by us until commit.
    insert into chainlog.stream_heads (stream, head_seq, head_hash)
    values (e.stream, 0, chainlog.genesis_hash())
    on conflict (stream) do nothing
    returning ctid into head_row;
    if found then
      -- Events stored without a head row (written around chainlog, or on a carried head set by hand)
      -- hold the seqs from 1 on: take the seq after them, as above.
      head_seq := chainlog._last_taken_after(e.stream, 0);
      head_hash := chainlog.genesis_hash();
      exit;
    end if;
    -- The row exists, but the lock above did not find it. It is this transaction's own pending row,
    -- looked for first only when the transaction carries a head, and a writer can clear that setting
    -- by hand. Or another transaction created the stream and committed meanwhile: claim its row.
    select p.seq, p.hash into head_seq, head_hash from chainlog._own_pending_head(e.stream) p;
    record_head := not found;
  end loop;

  -- The same assignments as the chain trigger's for later events (format_version and data_digest are
  -- set above): this copy runs with chainlog's rights so that it can record the result as the head in
  -- the same call. verify() checks both.
  e.seq := head_seq + 1;
  e.recorded_at := pg_catalog.clock_timestamp();
  e.prev_hash := head_hash;
  e.hash := pg_catalog.sha256(chainlog.canonical_bytes(
    e.format_version, e.prev_hash, e.seq, e.recorded_at, e.data_digest,
    e.stream, e.occurred_at, e.actor, e.actor_type, e.event_type, e.action,
    e.result, e.resource_type, e.resource_id, e.source_ip, e.request_id));

  -- By the row's address rather than its key: a TID scan costs less to start than an index scan.
  if record_head then
    update chainlog.stream_heads h
       set head_seq = e.seq, head_hash = e.hash, prev_hash = e.prev_hash, updated_at = e.recorded_at,
           recorded_by = pg_catalog.pg_current_xact_id()
     where h.ctid = head_row;
    if not found then  -- cannot happen while we hold the row's lock; never chain without a head
      raise exception 'chainlog: the head row of stream "%" moved while locked', e.stream using errcode = 'XX000';
    end if;
  end if;

  -- A head recorded here is not carried: the stream's next event must come back here to defer it.
  -- The carried head is left as it is then: the trigger calls this function only for a stream other
  -- than the carried one, and that stream's carried head is still its last event. Clearing it cost a
  -- setting to set and to undo at commit, in every one-event transaction.
  if not record_head then
    ignored := pg_catalog.set_config('chainlog.head_stream', e.stream, true)
               operator(pg_catalog.||) pg_catalog.set_config('chainlog.head', pg_catalog.encode(e.hash, 'hex') operator(pg_catalog.||) e.seq::text, true);
  end if;
  return e;
end;
$$;

-- At commit (deferred), write the stream's final head once.
-- The lookup of the stored last event is last_event()'s query written out, under the same planner
-- settings: a call of last_event() would save and restore its four settings once more, which costs
-- more than the query (about 3% of a two-event transaction).
create function chainlog._settle_head() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
as $$
declare
  final_seq bigint;
  final_hash bytea;
  final_prev bytea;
  -- How many stored events lie beyond the head this transaction recorded first (new.head_seq).
  stored_beyond bigint;
  ignored text;
begin
  if pg_catalog.current_setting('chainlog.claiming', true) = 'on' then
    raise exception 'chainlog: cannot chain events while constraints are immediate'
      using errcode = 'LC007',
            hint = 'chainlog records each stream''s head at commit through a deferred trigger. Do not run SET CONSTRAINTS ALL IMMEDIATE in a transaction that writes events; name the constraints you need instead.';
  end if;
  -- The stored last event, not the head carried in the settings: any role can set those, and a head
  -- recorded from a forged setting would name an event that does not exist. One index probe per
  -- transaction and stream, and a count of the events beyond the head this transaction recorded at its
  -- first event of the stream (new.head_seq): its own events follow that head without a gap.
  -- The count's ORDER BY, with enable_sort off, keeps it on the (stream, seq) index: counting a few rows
  -- is planned cheaper through the (stream, recorded_at) index, which reads the whole stream.
  select e.seq, e.hash, e.prev_hash,
         (select pg_catalog.count(*) from (select from chainlog.events c
                                            where c.stream = new.stream and c.seq > new.head_seq order by c.seq) own)
    into final_seq, final_hash, final_prev, stored_beyond
    from chainlog.events e where e.stream = new.stream order by e.seq desc limit 1;
  -- A gap means the last event is not this transaction's: one stored beyond its events, written on a
  -- head carried in settings set by hand (docs/THREAT-MODEL.md). Recording it would let a writer end
  -- the stream, by placing it just below the seq limit: record the end of this transaction's own run.
  if final_seq - new.head_seq <> stored_beyond then
    final_seq := chainlog._last_taken_after(new.stream, new.head_seq);
    select e.hash, e.prev_hash into final_hash, final_prev
      from chainlog.events e where e.stream = new.stream and e.seq = final_seq order by e.id limit 1;
  end if;

  update chainlog.stream_heads h
     set head_seq = coalesce(final_seq, 0),
         head_hash = coalesce(final_hash, chainlog.genesis_hash()),
         prev_hash = final_prev,
         pending = false,
         recorded_by = pg_catalog.pg_current_xact_id(),
         updated_at = pg_catalog.clock_timestamp()
   where h.stream = new.stream;

  -- Normally this is the end of the transaction. If SET CONSTRAINTS ALL IMMEDIATE made it fire earlier,
  -- forget the carried head so that a later event claims the stream again (and is then refused above).
  ignored := pg_catalog.set_config('chainlog.head_stream', '', true);
  return null;
end;
$$;

-- UPDATE OF pending: the statements that mark a row pending name the column; the one that records a
-- one-event transaction's head does not, so that update skips this trigger without parsing its WHEN.
create constraint trigger stream_heads_settle
  after insert or update of pending on chainlog.stream_heads
  deferrable initially deferred
  for each row when (new.pending)
  execute function chainlog._settle_head();

-- A recorded head never moves backwards.
create function chainlog._guard_stream_head() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  -- The triggers' WHEN clauses call this only for an update that moves a head back or renames it.
  if new.stream <> old.stream then
    raise exception 'chainlog: the recorded head of stream "%" cannot be given to stream "%"', old.stream, new.stream
      using errcode = 'LC003',
            hint = 'A recorded head belongs to its stream for good. This is tampering or a bug; run chainlog.verify().';
  end if;
  raise exception 'chainlog: the recorded head of stream "%" cannot move back from seq % to %',
      old.stream, old.head_seq, new.head_seq
      using errcode = 'LC003',
            hint = 'Stream heads only move forward. This is tampering or a bug; run chainlog.verify().';
end;
$$;

-- Two triggers, each on the column it guards: a WHEN clause is parsed again at every statement that
-- fires its trigger, and an UPDATE that does not name the column skips the trigger before that. Recording
-- a head names head_seq, never stream.
create trigger stream_heads_forward_only
  before update of head_seq on chainlog.stream_heads
  for each row
  when (new.head_seq < old.head_seq)
  execute function chainlog._guard_stream_head();

create trigger stream_heads_no_rename
  before update of stream on chainlog.stream_heads
  for each row
  when (new.stream <> old.stream)
  execute function chainlog._guard_stream_head();

-- The chain trigger. Runs once per inserted row, so it is written for speed: one IF for all the
-- rejections, the head carried in settings, and the format functions inlined into two expressions.
-- It is neither SECURITY DEFINER nor has a SET clause, because either costs a context switch or a
-- settings save/restore per row; the step that needs chainlog's own privileges, _chain_first(), is
-- security definer and runs at most twice per transaction and stream. Names are schema-qualified,
-- types and operators included: without a SET clause it resolves them with the caller's search_path,
-- which puts the session's temporary schema first for types, and a writer can put a schema of its own
-- before pg_catalog (an "=" of its own would wave empty fields through the checks below). It also runs
-- with chainlog's rights when begin_maintenance() inserts (a look-alike pg_temp.text there would run
-- its code as the owner).
create function chainlog._chain_event() returns trigger
language plpgsql
as $$
declare
  actor_from_role pg_catalog.bool := false;
  ignored pg_catalog.text;
  carried pg_catalog.text;
  setting pg_catalog.text;
begin
  if new.seq is not null or new.recorded_at is not null or new.prev_hash is not null
     or new.hash is not null or new.data_digest is not null or new.format_version is not null then
    raise exception 'chainlog: % is assigned by chainlog and must not be supplied',
      case when new.seq is not null then 'seq'
           when new.recorded_at is not null then 'recorded_at'
           when new.prev_hash is not null then 'prev_hash'
           when new.hash is not null then 'hash'
           when new.data_digest is not null then 'data_digest'
           else 'format_version' end
      using errcode = 'LC001',
            hint = 'Leave seq, recorded_at, format_version, data_digest, prev_hash and hash out of the INSERT column list.';
  end if;

  -- Context not given in the row comes from the transaction's settings (SET LOCAL chainlog.actor = ...).
  -- An empty setting counts as unset. (Written with a qualified operator rather than NULLIF, whose
  -- equality operator would be looked up in the caller's search_path.)
  if new.actor is null or new.actor_type is null or new.source_ip is null or new.request_id is null then
    if new.actor is null then
      setting := pg_catalog.current_setting('chainlog.actor', true);
      if setting operator(pg_catalog.<>) '' then
        new.actor := setting;
      else
        new.actor := session_user;
        actor_from_role := true;
      end if;
    end if;
    if new.actor_type is null then
      setting := pg_catalog.current_setting('chainlog.actor_type', true);
      new.actor_type := case when setting operator(pg_catalog.<>) '' then setting
                             when actor_from_role then 'service' else 'user' end;
    end if;
    if new.source_ip is null then
      -- _setting_inet() only when the setting is set: its exception block costs a subtransaction per
      -- call, ≈ 20k instructions per row that gives no source_ip.
      new.source_ip := coalesce(
        case when pg_catalog.current_setting('chainlog.source_ip', true) operator(pg_catalog.<>) ''
             then chainlog._setting_inet('chainlog.source_ip') end,
        pg_catalog.inet_client_addr());
    end if;
    if new.request_id is null then
      setting := pg_catalog.current_setting('chainlog.request_id', true);
      if setting operator(pg_catalog.<>) '' then
        new.request_id := setting;
      end if;
    end if;
  end if;

  if new.stream is null or new.stream operator(pg_catalog.=) '' or new.event_type is null
     or new.event_type operator(pg_catalog.=) '' or new.action is null or new.action operator(pg_catalog.=) ''
     or new.actor operator(pg_catalog.=) '' or new.result is null
     or not (new.result operator(pg_catalog.=) any ('{success,failure}'::pg_catalog.text[]))
     or not (new.actor_type operator(pg_catalog.=) any ('{user,api_key,service,system}'::pg_catalog.text[]))
     or not pg_catalog.isfinite(new.occurred_at)
     -- A text field the search indexes hold is long: _refuse_long_fields() refuses the row, naming the
     -- field, if an index entry's text would exceed 2,600 bytes (PostgreSQL would refuse it naming the
     -- index). No entry holds more than three of these fields, so one of them then exceeds 2,600 / 3
     -- bytes. The test costs ≈ 8.8k instructions per one-event transaction (1.3%; ≈ 1.2k per row in a
     -- 200-row statement), most of it reading the six fields of NEW.
     or greatest(pg_catalog.octet_length(new.stream), pg_catalog.octet_length(new.actor),
                 pg_catalog.octet_length(new.event_type), pg_catalog.octet_length(new.action),
                 pg_catalog.octet_length(new.resource_type), pg_catalog.octet_length(new.resource_id))
        operator(pg_catalog.>) 866 then
    perform chainlog._reject_invalid_event(new.stream, new.event_type, new.action, new.actor,
                                           new.actor_type, new.result, new.occurred_at);
    perform chainlog._refuse_long_fields(new.stream, new.actor, new.event_type, new.action,
                                         new.resource_type, new.resource_id);
  end if;

  -- Streams named chainlog.* are chainlog's own (begin_maintenance() records in chainlog.maintenance):
  -- checked with the caller's rights, for every event. Not only for the first: the carried head below
  -- is in settings any role can set, so a writer could otherwise reach such a stream through it.
  if pg_catalog.left(new.stream, 9) operator(pg_catalog.=) 'chainlog.' then
    perform chainlog._refuse_reserved_stream(new.stream);
  end if;

  -- Not the first event of this stream in this transaction: chain it on the carried head.
  if pg_catalog.current_setting('chainlog.head_stream', true) operator(pg_catalog.=) new.stream then
    carried := pg_catalog.current_setting('chainlog.head');   -- the hash in hex, then the seq
    new.seq := pg_catalog.substr(carried, 65)::pg_catalog.int8 operator(pg_catalog.+) 1;
    new.recorded_at := pg_catalog.clock_timestamp();
    new.format_version := 1;
    new.prev_hash := pg_catalog.decode(pg_catalog.left(carried, 64), 'hex');
    new.data_digest := chainlog.data_digest(new.payload, new.before, new.after);
    new.hash := pg_catalog.sha256(chainlog.canonical_bytes(
      new.format_version, new.prev_hash, new.seq, new.recorded_at, new.data_digest,
      new.stream, new.occurred_at, new.actor, new.actor_type, new.event_type, new.action,
      new.result, new.resource_type, new.resource_id, new.source_ip, new.request_id));
    -- An assignment, not PERFORM: PL/pgSQL evaluates it on its fast path for simple expressions.
    ignored := pg_catalog.set_config('chainlog.head', pg_catalog.encode(new.hash, 'hex') operator(pg_catalog.||) new.seq::pg_catalog.text, true);
    return new;
  end if;

  -- The first or second event of the stream in this transaction, or one coming back to it after another
  -- stream's: claim the stream, chain the event and record it as the head, or hand the head to the
  -- settle at commit, with chainlog's rights.
  new := chainlog._chain_first(new);
  return new;
end;
$$;

-- Only the role that owns chainlog (as inside begin_maintenance()) writes to streams named chainlog.*:
-- a writer could otherwise forge maintenance records.
create function chainlog._refuse_reserved_stream(stream text) returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if not pg_catalog.pg_has_role(current_user,
           (select c.relowner from pg_catalog.pg_class c where c.oid = 'chainlog.events'::pg_catalog.regclass), 'MEMBER') then
    raise exception 'chainlog: stream "%" is reserved: stream names starting with "chainlog." are chainlog''s own', stream
      using errcode = 'LC002',
            hint = 'Name your stream otherwise. chainlog.maintenance is written by chainlog.begin_maintenance().';
  end if;
end;
$$;

-- Reads an inet from a setting and says which setting is wrong when it is not one.
create function chainlog._setting_inet(setting_name text) returns inet
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  raw text := nullif(pg_catalog.current_setting(setting_name, true), '');
begin
  return raw::inet;
exception when invalid_text_representation then
  raise exception 'chainlog: setting % is not an IP address: "%"', setting_name, raw
    using errcode = 'LC002',
          hint = 'SET LOCAL chainlog.source_ip to an address such as ''203.0.113.7'' or ''2001:db8::1'', or leave it unset.';
end;
$$;

-- Called when the chain trigger found a bad row, or one with a long text field: names the first bad
-- field, if any (_refuse_long_fields() checks the long ones).
create function chainlog._reject_invalid_event(
  stream text, event_type text, action text, actor text, actor_type text, result text,
  occurred_at timestamptz) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if stream is null or stream = '' then
    raise exception 'chainlog: stream must be a non-empty text'
      using errcode = 'LC002', hint = 'Leave stream out to use ''default'', or name the chain (a tenant, an organization).';
  elsif event_type is null or event_type = '' then
    raise exception 'chainlog: event_type is required'
      using errcode = 'LC002', hint = 'Name what happened, e.g. event_type => ''WORKFLOW_CREATED''.';
  elsif action is null or action = '' then
    raise exception 'chainlog: action is required'
      using errcode = 'LC002', hint = 'Use a verb such as CREATE, UPDATE, DELETE, EXECUTE or LOGIN.';
  elsif actor = '' then
    raise exception 'chainlog: actor must not be empty'
      using errcode = 'LC002', hint = 'Leave actor out (it defaults to chainlog.actor, then session_user) or name who did it.';
  elsif result is null or result not in ('success', 'failure') then
    raise exception 'chainlog: result must be ''success'' or ''failure'', not %', pg_catalog.quote_nullable(result)
      using errcode = 'LC002', hint = 'Leave result out for ''success''.';
  elsif actor_type not in ('user', 'api_key', 'service', 'system') then
    raise exception 'chainlog: actor_type must be user, api_key, service or system, not %', pg_catalog.quote_literal(actor_type)
      using errcode = 'LC002', hint = 'Set actor_type in the row or with SET LOCAL chainlog.actor_type.';
  elsif not isfinite(occurred_at) then
    raise exception 'chainlog: occurred_at must be a finite timestamp, not %', occurred_at
      using errcode = 'LC002', hint = 'Leave occurred_at out or give the time the event happened.';
  end if;
end;
$$;

-- Called when an indexed text field of an event is long (see the chain trigger): refuses the row if one index
-- entry's text would exceed 2,600 bytes, naming the field. A B-tree entry holds at most 2,704 bytes,
-- headers and the entry's other columns (a timestamp, an id) included. PostgreSQL compresses long
-- entries, so some longer values would fit, but a limit that depends on how well a value compresses
-- is not one a writer can keep to. Which fields share an entry: sql/00001_schema.sql and
-- sql/00007_search.sql (stream alone; actor with event_type and action; resource_type with
-- resource_id).
create function chainlog._refuse_long_fields(
  stream text, actor text, event_type text, action text, resource_type text, resource_id text) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  max_bytes constant integer := 2600;
  hint constant text := 'Keep names and identifiers short; long text belongs in payload, which is not indexed.';
  together integer;
  longest text;
begin
  if octet_length(stream) > max_bytes then
    raise exception 'chainlog: stream is too long: % bytes, at most %', octet_length(stream), max_bytes
      using errcode = 'LC002', hint = hint;
  end if;
  together := octet_length(actor) + octet_length(event_type) + octet_length(action);
  if together > max_bytes then
    longest := case greatest(octet_length(actor), octet_length(event_type), octet_length(action))
                 when octet_length(actor) then 'actor' when octet_length(event_type) then 'event_type' else 'action' end;
    raise exception 'chainlog: % is too long: actor, event_type and action take % bytes together, at most %',
        longest, together, max_bytes
      using errcode = 'LC002', hint = hint;
  end if;
  together := coalesce(octet_length(resource_type), 0) + coalesce(octet_length(resource_id), 0);
  if together > max_bytes then
    longest := case when coalesce(octet_length(resource_type), 0) > coalesce(octet_length(resource_id), 0)
                    then 'resource_type' else 'resource_id' end;
    raise exception 'chainlog: % is too long: resource_type and resource_id take % bytes together, at most %',
        longest, together, max_bytes
      using errcode = 'LC002', hint = hint;
  end if;
end;
$$;

-- Named to fire after any other BEFORE INSERT trigger (triggers fire in name order): an event must be
-- chained as it will be stored.
create trigger zz_chainlog_chain
  before insert on chainlog.events
  for each row execute function chainlog._chain_event();
