-- chainlog 7: indexes for searching the log (the TypeScript search(), the CLI's `chainlog search`).
--
-- search() returns events newest first by (recorded_at, id): recorded_at is when the event was
-- chained, id makes the key unique, and neither ever changes, so keyset pagination over it never
-- repeats or skips an event. Every index below ends with that key, so
--   WHERE <filter> [AND recorded_at in a range] [AND (recorded_at, id) < cursor] ORDER BY recorded_at DESC, id DESC LIMIT n
-- is one backward index range scan that stops after n rows, however large the table.
--
-- Indexes cost insert speed: each is one more B-tree insert per event, and the ones led by a column
-- whose values arrive in random order (actor, resource, event type, stream) cost the most. Measured
-- with appendMany(), these six together take bulk inserts from about 41k to 23k events/s (PostgreSQL
-- 15, 2 cores). So there are six, for the filters an audit UI uses most, and a deployment that never
-- searches by some of them may drop those (inside chainlog.begin_maintenance()). The other filters
-- ride on them:
--   * action (a handful of verbs, each common) walks events_recorded_at_idx and filters;
--   * resource_type without resource_id walks events_recorded_at_idx and filters;
--   * two filters at once use the index of the more selective one and filter by the other; search()
--     then picks the page's ids first, so an index that carries the other column answers alone.
-- The existing unique index (stream, seq) serves chains, not search: within a stream seq and
-- recorded_at agree only as long as the server clock never steps back.
--
-- On an existing installation with many events these builds block writes to chainlog.events while
-- they run. To avoid that, build them beforehand with CREATE INDEX CONCURRENTLY IF NOT EXISTS and
-- the same names and definitions; this migration then skips them.

create index if not exists events_recorded_at_idx
  on chainlog.events (recorded_at, id);

create index if not exists events_stream_recorded_at_idx
  on chainlog.events (stream, recorded_at, id);

-- It also carries event_type and action, the filters most often combined with an actor ("what did
-- this user delete"): search() then finds such a page in this index alone, without reading each of the
-- actor's events from the table to check them (one heap page per event: an actor's events are spread
-- over the whole table).
create index if not exists events_actor_recorded_at_idx
  on chainlog.events (actor, recorded_at, id) include (event_type, action);

create index if not exists events_event_type_recorded_at_idx
  on chainlog.events (event_type, recorded_at, id);

create index if not exists events_resource_recorded_at_idx
  on chainlog.events (resource_type, resource_id, recorded_at, id);

-- Failures are rare and the ones people look for; successes are found through the other indexes.
create index if not exists events_failures_recorded_at_idx
  on chainlog.events (recorded_at, id) where result = 'failure';

comment on index chainlog.events_recorded_at_idx is 'search(): all events, or a time range, newest first.';
comment on index chainlog.events_stream_recorded_at_idx is 'search({ stream }): one stream''s events newest first.';
comment on index chainlog.events_actor_recorded_at_idx is 'search({ actor }): what one actor did, newest first; with eventType or action, from the index alone.';
comment on index chainlog.events_event_type_recorded_at_idx is 'search({ eventType }).';
comment on index chainlog.events_resource_recorded_at_idx is 'search({ resourceType, resourceId }): the history of one resource.';
comment on index chainlog.events_failures_recorded_at_idx is 'search({ result: ''failure'' }).';
