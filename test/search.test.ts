import { beforeAll, describe, expect, it } from 'vitest';
import { buildSearchQuery, createChainlog, type ChainlogEvent, type NewEvent, type SearchQuery } from '../src/client.js';
import { ChainlogInvalidArgumentError } from '../src/errors.js';
import { useChainlogDatabase } from './support/db.js';

const db = useChainlogDatabase();
const log = () => createChainlog({ pool: db.pool });

/** Every page of a search, following nextCursor. */
async function allPages(query: SearchQuery, between?: () => Promise<void>): Promise<ChainlogEvent[]> {
  const events: ChainlogEvent[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const page = await log().search({ ...query, cursor });
    events.push(...page.events);
    if (!page.nextCursor) return events;
    cursor = page.nextCursor;
    await between?.();
  }
  throw new Error('paging did not end');
}

const newestFirst = (a: ChainlogEvent, b: ChainlogEvent) =>
  a.recordedAt === b.recordedAt ? Number(BigInt(b.id) - BigInt(a.id)) : a.recordedAt < b.recordedAt ? 1 : -1;

describe('search() filters', () => {
  const actors = ['alice', 'bob', 'carol'];
  const types = ['INVOICE_CREATED', 'INVOICE_PAID', 'USER_LOGIN'];
  const actions = ['CREATE', 'UPDATE', 'LOGIN', 'DELETE'];
  let all: ChainlogEvent[] = [];

  beforeAll(async () => {
    const events: NewEvent[] = Array.from({ length: 60 }, (_, i) => ({
      stream: i % 2 ? 'f-acme' : 'f-globex',
      actor: actors[i % 3]!,
      eventType: types[i % 3 === 0 ? 0 : (i % 5) % 3]!,
      action: actions[i % 4]!,
      result: i % 7 === 0 ? 'failure' : 'success',
      resourceType: i % 3 ? 'invoice' : 'user',
      resourceId: String(i % 6),
      payload: { i },
    }));
    // Three batches, so recorded_at differs between them and the time filters have something to cut.
    for (const part of [events.slice(0, 20), events.slice(20, 40), events.slice(40)]) await log().appendMany(part);
    all = await allPages({ limit: 1000 });
  });

  const cases: Array<[string, SearchQuery, (e: ChainlogEvent) => boolean]> = [
    ['stream', { stream: 'f-acme' }, (e) => e.stream === 'f-acme'],
    ['eventType', { eventType: 'INVOICE_PAID' }, (e) => e.eventType === 'INVOICE_PAID'],
    ['action', { action: 'DELETE' }, (e) => e.action === 'DELETE'],
    ['result', { result: 'failure' }, (e) => e.result === 'failure'],
    ['resourceType', { resourceType: 'user' }, (e) => e.resourceType === 'user'],
    ['resourceType and resourceId', { resourceType: 'invoice', resourceId: '4' }, (e) => e.resourceType === 'invoice' && e.resourceId === '4'],
    ['actor', { actor: 'bob' }, (e) => e.actor === 'bob'],
    ['stream and actor together', { stream: 'f-globex', actor: 'carol' }, (e) => e.stream === 'f-globex' && e.actor === 'carol'],
  ];
  for (const [name, query, matches] of cases) {
    it(`the ${name} filter returns exactly the matching events, newest first`, async () => {
      const found = await allPages({ ...query, limit: 4 });
      const expected = all.filter(matches);
      expect(expected.length).toBeGreaterThan(0);
      expect(found.map((e) => e.id)).toEqual(expected.map((e) => e.id));
    });
  }

  it('from is inclusive and to is exclusive, on recorded_at', async () => {
    const sorted = [...all].sort(newestFirst).reverse(); // oldest first
    const from = sorted[10]!.recordedAt;
    const to = sorted[40]!.recordedAt;
    const found = await allPages({ from, to, limit: 7 });
    expect(found.map((e) => e.id)).toEqual(all.filter((e) => e.recordedAt >= from && e.recordedAt < to).map((e) => e.id));
    expect(found.length).toBeGreaterThanOrEqual(30);
  });

  it('returns events newest first by recorded_at, then id', () => {
    expect(all.length).toBeGreaterThanOrEqual(60);
    expect(all).toEqual([...all].sort(newestFirst));
  });

  it('has no next cursor on the last page', async () => {
    const page = await log().search({ stream: 'f-acme', limit: 30 });
    expect(page.events).toHaveLength(30);
    expect(page.nextCursor).toBeNull();
  });

  it('refuses a cursor it did not make, and a limit out of range', async () => {
    await expect(log().search({ cursor: 'bm90IGEgY3Vyc29y' })).rejects.toBeInstanceOf(ChainlogInvalidArgumentError);
    // Shaped like one, but with a time or an id PostgreSQL would refuse: refused before the database.
    const crafted = (recordedAt: string, id: string) => Buffer.from(JSON.stringify([recordedAt, id])).toString('base64url');
    for (const cursor of [crafted('2024-13-45T99:99:99Z', '1'), crafted('2024-02-30T00:00:00Z', '1'), crafted('2024-01-31T00:00:00Z', '99999999999999999999')]) {
      await expect(log().search({ cursor })).rejects.toMatchObject({ code: 'CHAINLOG_INVALID_ARGUMENT' });
    }
    await expect(log().search({ limit: 1001 })).rejects.toBeInstanceOf(ChainlogInvalidArgumentError);
  });
});

describe('search() times', () => {
  it('reads an ISO 8601 from/to without an offset as UTC, whatever the server\'s TimeZone', async () => {
    await log().append({ stream: 'tz', eventType: 'T', action: 'CREATE' });
    const { rows } = await db.query(`select to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') as utc from chainlog.events where stream = 'tz'`);
    const utc = rows[0].utc as string;
    const hourBefore = new Date(Date.parse(`${utc}Z`) - 3_600_000).toISOString().slice(0, 19);
    const { rows: [{ name }] } = await db.query('select current_database() as name');
    await db.query(`alter database "${name}" set timezone = 'America/New_York'`);
    try {
      const client = await db.connect();
      expect((await client.query('show timezone')).rows[0].TimeZone).toBe('America/New_York');
      const found = async (query: SearchQuery) => (await createChainlog({ client }).search({ stream: 'tz', ...query })).events.length;
      expect(await found({ from: hourBefore })).toBe(1);
      expect(await found({ from: `${hourBefore}+00:00` })).toBe(1);
      expect(await found({ to: hourBefore })).toBe(0);
      expect(await found({ from: hourBefore.replace('T', ' ') })).toBe(1);
    } finally {
      await db.query(`alter database "${name}" reset timezone`);
    }
  });
});

describe('search() pagination while events arrive', () => {
  it('never repeats or skips an event that existed when paging started', async () => {
    await log().appendMany(Array.from({ length: 250 }, (_, i) => ({ stream: 'live', eventType: 'T', action: 'CREATE', payload: { i } })));
    // A transaction that chained its event before paging starts but commits in the middle of it: its
    // recorded_at is older than events already visible. It did not exist at the start, so either is fine.
    const late = await db.connect();
    await late.query('begin');
    await log().append({ stream: 'live-late', eventType: 'LATE', action: 'CREATE' }, { db: late });

    const before = (await db.query<{ id: string }>(`select id::text from chainlog.events where stream like 'live%'`)).rows.map((r) => r.id);
    let inserted = 0;
    let pages = 0;
    const found = await allPages({ limit: 9 }, async () => {
      pages++;
      // Between pages: new events in the same stream and another, some committed as a batch.
      await log().append({ stream: 'live', eventType: 'NEW', action: 'CREATE' });
      await log().appendMany([{ stream: 'live-other', eventType: 'NEW', action: 'CREATE' }, { stream: 'live', eventType: 'NEW', action: 'CREATE' }]);
      inserted += 3;
      if (pages === 10) await late.query('commit');
    });
    const ids = found.filter((e) => e.stream.startsWith('live')).map((e) => e.id);

    expect(inserted).toBeGreaterThan(50);
    expect(new Set(ids).size).toBe(ids.length); // no event twice
    const seen = new Set(ids);
    expect(before.filter((id) => !seen.has(id))).toEqual([]); // none skipped
    expect(found).toEqual([...found].sort(newestFirst));
  });
});

describe('search() indexes (sql/00007_search.sql)', () => {
  beforeAll(async () => {
    // 200k events written around the chain trigger (the plans do not depend on valid hashes), spread
    // like a real log: 50 streams, 2,000 actors, 40 event types, 1% failures, one event per second,
    // 100 resources of 2,000 events each. A resource must have clearly more events than a page for
    // the ordered index scan to be the only sensible plan: the planner takes resource type and id as
    // independent and estimates a tenth of a resource's events, and with 10 events per resource
    // (estimated 5) sorting them after a bitmap scan cost the same, so it took either plan.
    await db.query(`
      begin;
      set local session_replication_role = replica;
      insert into chainlog.events (stream, seq, recorded_at, actor, actor_type, event_type, action, result,
                                   resource_type, resource_id, format_version, data_digest, prev_hash, hash)
      select 'bulk-' || (g % 50), g / 50 + 1, timestamptz '2024-01-01' + g * interval '1 second',
             'user-' || (g * 7919 % 2000), 'user', 'EVENT_' || (g % 40), (array['CREATE','UPDATE','DELETE','LOGIN','EXECUTE'])[g % 5 + 1],
             case when g % 100 = 0 then 'failure' else 'success' end,
             'type-' || (g % 10), (g % 100)::text, 1, '\\x${'00'.repeat(32)}', '\\x${'00'.repeat(32)}', '\\x${'00'.repeat(32)}'
        from generate_series(0, 199999) g;
      commit;`);
    // Vacuumed, as autovacuum leaves an append-only table: its pages are all-visible, which is what
    // lets an index answer a query alone.
    await db.query('vacuum analyze chainlog.events');
  });

  async function plan(query: SearchQuery): Promise<string> {
    const { text, values } = buildSearchQuery({ limit: 50, ...query });
    const { rows } = await db.query(`explain ${text}`, values);
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  }

  const cursor = async (query: SearchQuery) => (await log().search({ ...query, limit: 5 })).nextCursor!;

  const cases: Array<[string, SearchQuery, string]> = [
    ['no filter', {}, 'events_recorded_at_idx'],
    ['stream', { stream: 'bulk-7' }, 'events_stream_recorded_at_idx'],
    ['actor', { actor: 'user-42' }, 'events_actor_recorded_at_idx'],
    ['eventType', { eventType: 'EVENT_3' }, 'events_event_type_recorded_at_idx'],
    ['resourceType and resourceId', { resourceType: 'type-3', resourceId: '43' }, 'events_resource_recorded_at_idx'],
    ['result failure', { result: 'failure' }, 'events_failures_recorded_at_idx'],
    ['a time range', { from: '2024-01-02T00:00:00Z', to: '2024-01-02T06:00:00Z' }, 'events_recorded_at_idx'],
    ['stream and a time range', { stream: 'bulk-7', from: '2024-01-02T00:00:00Z', to: '2024-01-03T00:00:00Z' }, 'events_stream_recorded_at_idx'],
  ];
  for (const [name, query, index] of cases) {
    it(`the ${name} filter is an index scan on ${index}, first page and later pages alike`, async () => {
      for (const q of [query, { ...query, cursor: await cursor(query) }]) {
        const text = await plan(q);
        expect(text).not.toMatch(/Seq Scan/);
        expect(text).not.toMatch(/Sort/); // ordered by the index itself: stops after `limit` rows
        expect(text).toContain(index);
      }
    });
  }

  for (const [name, query] of [['eventType', { eventType: 'EVENT_3' }], ['action', { action: 'DELETE' }]] as const) {
    it(`actor and ${name} together are answered from the actor index alone, then the page's rows by primary key`, async () => {
      for (const q of [{ actor: 'user-42', ...query }, { actor: 'user-42', ...query, cursor: await cursor({ actor: 'user-42', ...query }) }]) {
        const text = await plan(q);
        expect(text).not.toMatch(/Seq Scan/);
        expect(text).toMatch(/Index Only Scan Backward using events_actor_recorded_at_idx/);
        expect(text).toContain('events_pkey');
      }
    });
  }

  it('two filters return the same events, in the same order, as filtering one filter\'s results', async () => {
    const actor = await log().search({ actor: 'user-42', limit: 1000 });
    const action = actor.events[0]!.action;
    for (const limit of [1000, 7]) {
      const both = await log().search({ actor: 'user-42', action, limit });
      const expected = actor.events.filter((e) => e.action === action).slice(0, limit);
      expect(expected.length).toBeGreaterThan(0);
      expect(both.events.map((e) => e.id)).toEqual(expected.map((e) => e.id));
    }
    expect((await log().search({ actor: 'user-42', action: `${action}-NOT`, limit: 1000 })).events).toEqual([]);
  });

  for (const [name, query] of [['action', { action: 'DELETE' }], ['resourceType alone', { resourceType: 'type-3' }]] as const) {
    it(`the ${name} filter walks an index in order instead of scanning the table`, async () => {
      const text = await plan(query);
      expect(text).not.toMatch(/Seq Scan/);
      expect(text).not.toMatch(/Sort/);
    });
  }
});
