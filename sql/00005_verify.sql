-- chainlog 5: verification. chainlog.verify(stream) recomputes every hash and checks every link, and
-- names the first broken event and the kind of tampering. docs/SQL.md explains each kind.
--
-- It is read-only and STABLE (every query sees one snapshot, so a writer committing meanwhile cannot
-- make a stream look truncated), and so it also runs on a hot standby.
--
-- The scan is split in two, because that is faster than one pass: the content check recomputes each
-- event's hash from its own row only (prev_hash is stored), so it can use parallel workers; the link
-- check then reads only narrow columns in seq order. The classification that follows runs only for a
-- broken stream and looks at a handful of rows.

-- Does this stored row hash to its stored hash, if it sat at seq `as_seq`? (as_seq = e.seq: as stored.)
create function chainlog._content_ok(e chainlog.events, as_seq bigint) returns boolean
language sql stable parallel safe
return coalesce(
  e.data_digest operator(pg_catalog.=) chainlog.data_digest(e.payload, e.before, e.after)
  and e.hash operator(pg_catalog.=) pg_catalog.sha256(chainlog.canonical_bytes(
    e.format_version, e.prev_hash, as_seq, e.recorded_at, e.data_digest, e.stream, e.occurred_at,
    e.actor, e.actor_type, e.event_type, e.action, e.result, e.resource_type, e.resource_id,
    e.source_ip, e.request_id)),
  false);

-- The first seq (up to limit_seq) whose content does not match its hash, or NULL.
-- It exists only to run its query through RETURN QUERY: PL/pgSQL runs SELECT ... INTO with a row
-- limit, and PostgreSQL never starts parallel workers for a query with a row limit, while RETURN QUERY
-- runs it to completion and may use them. The filtered aggregate (rather than WHERE ... min(seq))
-- keeps the planner from turning it into a serial index scan.
create function chainlog._first_bad_content(p_stream text, limit_seq bigint) returns setof bigint
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return query
    select pg_catalog.min(e.seq) filter (where not chainlog._content_ok(e, e.seq))
      from chainlog.events e
     where e.stream = p_stream and e.seq <= limit_seq;
end;
$$;

create function chainlog.verify(stream text, up_to_seq bigint default null)
returns table (ok boolean, checked bigint, first_bad_seq bigint, problem text, detail text)
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  p_stream constant text := verify.stream;
  limit_seq constant bigint := coalesce(verify.up_to_seq, 9223372036854775807);
  recorded_seq bigint;
  recorded_hash bytea;
  -- A pending head is visible only inside the transaction that is appending to the stream: the head
  -- is recorded at its commit, so events beyond it are this transaction's own, not forgeries. Only
  -- the row's own transaction counts as pending: a pending flag committed by tampering must not
  -- excuse a rewritten tail.
  head_pending boolean;
  bad_content bigint;
  bad_link bigint;
  last_seq bigint;
  last_hash bytea;
  k bigint;
  at_k integer;
  r chainlog.events;
  nxt chainlog.events;
  expected_prev bytea;
  prev_row_prev bytea;
  linked_seq bigint;
  pred_seq bigint;
  removed bigint;
  next_present bigint;
  successor_seq bigint;
begin
  if p_stream is null or p_stream = '' then
    raise exception 'chainlog: verify needs a stream name'
      using errcode = 'LC006', hint = 'SELECT stream FROM chainlog.streams lists them; chainlog.verify_all() checks every stream.';
  end if;
  if verify.up_to_seq is not null and verify.up_to_seq < 0 then
    raise exception 'chainlog: up_to_seq must be >= 0, not %', verify.up_to_seq
      using errcode = 'LC006', hint = 'Leave up_to_seq out (NULL) to verify the whole stream.';
  end if;

  select h.head_seq, h.head_hash,
         coalesce(h.pending and h.recorded_by = pg_catalog.pg_current_xact_id_if_assigned(), false)
    into recorded_seq, recorded_hash, head_pending
    from chainlog.stream_heads h where h.stream = p_stream;

  -- 1. Content: the first event whose stored hash or data digest no longer matches its content.
  bad_content := (select c from chainlog._first_bad_content(p_stream, limit_seq) c);

  -- 2. Links: the first position where the seq is not the next one or prev_hash is not the hash of
  --    the event before. For a gap, the position is the first missing seq.
  select pg_catalog.count(*), pg_catalog.min(least(l.seq, l.expected_seq)) filter (where l.broken), pg_catalog.max(l.seq)
    into checked, bad_link, last_seq
    from (select e.seq,
                 coalesce(pg_catalog.lag(e.seq) over w, 0) + 1 as expected_seq,
                 e.seq is distinct from coalesce(pg_catalog.lag(e.seq) over w, 0) + 1
                   or e.prev_hash is distinct from coalesce(pg_catalog.lag(e.hash) over w, chainlog.genesis_hash()) as broken
            from chainlog.events e
           where e.stream = p_stream and e.seq <= limit_seq
          window w as (order by e.seq)) l;

  if checked = 0 and recorded_seq is null then
    raise exception 'chainlog: there is no stream "%"', p_stream
      using errcode = 'LC005', hint = 'SELECT stream FROM chainlog.streams lists the streams.';
  end if;

  -- Events without any recorded head were written around chainlog, or moved here from another stream:
  -- none of them was recorded, whatever their chain looks like.
  if recorded_seq is null then
    detail := pg_catalog.format('stream has %s events but no recorded head: they were written around chainlog', checked);
    ok := false; first_bad_seq := 1; problem := 'inserted'; checked := 0;
    return next;
    return;
  end if;

  k := least(bad_content, bad_link);

  -- Both scans stop at up_to_seq. A gap that starts within it and ends beyond it is not the end of the
  -- chain: events after it are stored, so the ones from last_seq + 1 on are missing, not cut off. It is
  -- classified below as the same gap found by a scan of the whole stream.
  if k is null and recorded_seq > coalesce(last_seq, 0) and limit_seq > coalesce(last_seq, 0)
     and exists (select from chainlog.events e where e.stream = p_stream and e.seq > coalesce(last_seq, 0)) then
    k := coalesce(last_seq, 0) + 1;
  end if;

  if k is null then
    -- Every stored event is intact and linked. Compare the end of the chain with the recorded head.
    ok := true;
    last_seq := coalesce(last_seq, 0);
    select e.hash into last_hash from chainlog.events e where e.stream = p_stream and e.seq = last_seq;
    if recorded_seq > last_seq and limit_seq > last_seq then
      ok := false; first_bad_seq := last_seq + 1; problem := 'truncated';
      detail := pg_catalog.format('the recorded head is seq %s but the last stored event is seq %s: events %s..%s are missing',
                                  recorded_seq, last_seq, last_seq + 1, recorded_seq);
    elsif recorded_seq < last_seq and not head_pending then
      -- Also with up_to_seq: the events checked stop at it, and any of them beyond the head is forged.
      ok := false; first_bad_seq := recorded_seq + 1; problem := 'inserted'; checked := recorded_seq;
      detail := pg_catalog.format('events %s..%s lie beyond the recorded head (seq %s)', recorded_seq + 1, last_seq, recorded_seq);
    elsif recorded_seq = last_seq and not head_pending
          and recorded_hash is distinct from coalesce(last_hash, chainlog.genesis_hash()) then
      ok := false; first_bad_seq := last_seq; problem := 'modified'; checked := last_seq - 1;
      detail := pg_catalog.format('event %s does not have the recorded head hash: the chain was rewritten with recomputed hashes up to here', last_seq);
    end if;
    return next;
    return;
  end if;

  -- Something is broken at position k. Classify it by looking at the rows around k.
  ok := false;
  first_bad_seq := k;
  checked := (select pg_catalog.count(*) from chainlog.events e where e.stream = p_stream and e.seq < k);
  expected_prev := case when k = 1 then chainlog.genesis_hash()
                        else (select e.hash from chainlog.events e where e.stream = p_stream and e.seq = k - 1
                               order by e.id limit 1) end;
  select pg_catalog.count(*)::integer into at_k from chainlog.events e where e.stream = p_stream and e.seq = k;

  if at_k = 0 then
    select pg_catalog.min(e.seq) into next_present from chainlog.events e where e.stream = p_stream and e.seq > k;
    if k > recorded_seq then
      -- Every event up to the recorded head is there: the ones after the gap were stored beyond it.
      first_bad_seq := next_present; problem := 'inserted';
      detail := pg_catalog.format('events from seq %s on lie beyond the recorded head (seq %s), after a gap', next_present, recorded_seq);
      return next;
      return;
    end if;
    problem := 'deleted';
    detail := case when next_present = k + 1 then pg_catalog.format('event %s is missing', k)
                   else pg_catalog.format('events %s..%s are missing', k, next_present - 1) end;
    return next;
    return;
  end if;

  if at_k > 1 then
    -- One intact event stored more than once (only possible with the unique key on (stream, seq)
    -- gone): copies added, not a fork, which takes two different events.
    if (select pg_catalog.count(distinct e.hash) = 1 and pg_catalog.bool_and(chainlog._content_ok(e, e.seq))
          from chainlog.events e where e.stream = p_stream and e.seq = k) then
      problem := 'inserted';
      detail := pg_catalog.format('event %s is stored %s times: copies of one event', k, at_k);
    elsif (select pg_catalog.count(*) from chainlog.events e
         where e.stream = p_stream and e.seq = k and e.prev_hash = expected_prev and chainlog._content_ok(e, e.seq)) >= 2 then
      problem := 'forked';
      detail := pg_catalog.format('%s events hold seq %s and claim the same predecessor', at_k, k);
    else
      problem := 'inserted';
      detail := pg_catalog.format('%s events hold seq %s; only one belongs to the chain', at_k, k);
    end if;
    return next;
    return;
  end if;

  select e.* into r from chainlog.events e where e.stream = p_stream and e.seq = k;
  select e.* into nxt from chainlog.events e where e.stream = p_stream and e.seq = k + 1 order by e.id limit 1;
  prev_row_prev := (select e.prev_hash from chainlog.events e where e.stream = p_stream and e.seq = k - 1
                     order by e.id limit 1);
  -- The seq of the stored event whose hash r names as its predecessor, if any.
  linked_seq := (select pg_catalog.min(e.seq) from chainlog.events e
                  where e.stream = p_stream and e.hash = r.prev_hash and e.seq <> k);
  -- The same, counting the genesis hash as seq 0's: r names no stored predecessor when it is the
  -- stream's first event, moved up by events put before it.
  pred_seq := coalesce(linked_seq, case when r.prev_hash = chainlog.genesis_hash() then 0 end);
  -- Events removed from the middle, with the later ones renumbered to hide the gap, leave the stream
  -- that many events short of its recorded head: r then hashes correctly that many seqs later.
  removed := recorded_seq - (select pg_catalog.max(e.seq) from chainlog.events e where e.stream = p_stream);

  if chainlog._content_ok(r, k) then
    -- r is intact but does not link to the event before it.
    if k > 1 and r.prev_hash = prev_row_prev then
      problem := 'forked';
      detail := pg_catalog.format('events %s and %s both claim event %s as their predecessor', k - 1, k, k - 2);
    elsif linked_seq is not null then
      problem := 'reordered';
      detail := pg_catalog.format('event %s links to event %s instead of event %s', k, linked_seq, k - 1);
    elsif k > recorded_seq then
      problem := 'inserted';
      detail := pg_catalog.format('event %s lies beyond the recorded head (seq %s) and does not link to it', k, recorded_seq);
    elsif k = 1 then
      problem := 'modified';
      detail := 'event 1 does not start from the genesis hash';
    else
      first_bad_seq := k - 1; checked := checked - 1;
      problem := 'modified';
      detail := pg_catalog.format('event %s no longer has the hash that event %s recorded for it: it was changed and its hash recomputed', k - 1, k);
    end if;
  elsif k > recorded_seq and linked_seq is null then
    problem := 'inserted';
    detail := pg_catalog.format('event %s lies beyond the recorded head (seq %s) and its hash does not match its content', k, recorded_seq);
  elsif chainlog._content_ok(r, k + 1) and nxt.id is not null and chainlog._content_ok(nxt, k) then
    problem := 'reordered';
    detail := pg_catalog.format('events %s and %s have swapped places', k, k + 1);
  elsif nxt.id is not null and chainlog._content_ok(nxt, k) and nxt.prev_hash is not distinct from expected_prev then
    -- The chain skips r. A forged event, unless r is a genuine one moved here from further on: then a
    -- later event still names r as its predecessor, and r hashes correctly at the seq before that one.
    -- (Only here, for a broken stream: prev_hash has no index, so this reads the rest of the stream.)
    successor_seq := (select pg_catalog.min(e.seq) from chainlog.events e
                       where e.stream = p_stream and e.seq > k + 1 and e.prev_hash = r.hash);
    if successor_seq is not null and chainlog._content_ok(r, successor_seq - 1) then
      problem := 'reordered';
      detail := pg_catalog.format('event %s was recorded at seq %s', k, successor_seq - 1);
    else
      problem := 'inserted';
      detail := pg_catalog.format('event %s does not belong: the chain continues from event %s to the event now at %s', k, k - 1, k + 1);
    end if;
  elsif chainlog._content_ok(r, k + 1) then
    -- r belongs one seq later: the event before it in the chain is gone from here. Its hash is the one r
    -- names as its predecessor; if a stored event still has it, that event was moved, not removed.
    if linked_seq is not null then
      problem := 'reordered';
      detail := pg_catalog.format('the event recorded at seq %s now sits at seq %s, and the events after it were renumbered', k, linked_seq);
    else
      problem := 'deleted';
      detail := pg_catalog.format('the event at seq %s was removed and later events renumbered to hide the gap', k);
    end if;
  elsif linked_seq is null and removed > 1 and chainlog._content_ok(r, k + removed) then
    -- The same for several events (r's predecessor is gone too: linked_seq would name it).
    problem := 'deleted';
    detail := pg_catalog.format('events %s..%s were removed and later events renumbered to hide the gap', k, k + removed - 1);
  elsif pred_seq is not null and chainlog._content_ok(r, pred_seq + 1) then
    if k > recorded_seq then
      -- Beyond the recorded head, a copy of a recorded event: the events up to the head are not to blame.
      problem := 'inserted';
      detail := pg_catalog.format('event %s lies beyond the recorded head (seq %s) and repeats the event recorded at seq %s', k, recorded_seq, pred_seq + 1);
    elsif pred_seq < k then
      -- r was recorded right after pred_seq, and the events stored between them (seq pred_seq + 1 to
      -- k - 1, a chain of their own since k is the first break) were put there: the first of them is
      -- the first that does not belong.
      first_bad_seq := pred_seq + 1; checked := checked - (k - first_bad_seq);
      problem := 'inserted';
      detail := case when first_bad_seq = k - 1
                     then pg_catalog.format('event %s does not belong: later events were renumbered to make room for it', k - 1)
                     else pg_catalog.format('events %s..%s do not belong: later events were renumbered to make room for them', first_bad_seq, k - 1) end;
    else
      problem := 'reordered';
      detail := pg_catalog.format('event %s was recorded at seq %s', k, pred_seq + 1);
    end if;
  else
    problem := 'modified';
    detail := pg_catalog.format('event %s no longer matches its hash', k);
  end if;
  return next;
end;
$$;

comment on function chainlog.verify(text, bigint) is
  'Verifies one stream''s chain (up to up_to_seq, default all): recomputes every hash, checks every link and the recorded head. '
  'Returns ok, checked (events verified intact before the first problem), first_bad_seq, problem (modified, deleted, inserted, reordered, truncated, forked; NULL when intact) and detail. Read-only.';

create function chainlog.verify_all()
returns table (stream text, ok boolean, checked bigint, first_bad_seq bigint, problem text, detail text)
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  s text;
begin
  for s in
    select h.stream from chainlog.stream_heads h
    union
    select distinct e.stream from chainlog.events e
    order by 1
  loop
    return query select s, v.ok, v.checked, v.first_bad_seq, v.problem, v.detail from chainlog.verify(s) v;
  end loop;
end;
$$;

comment on function chainlog.verify_all() is
  'Runs chainlog.verify() on every stream, in one snapshot. One row per stream. Read-only.';
