import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { useChainlogDatabase } from './support/db.js';

const db = useChainlogDatabase();

async function verify(stream: string) {
  const { rows } = await db.query('select ok, checked::int, problem, detail from chainlog.verify($1)', [stream]);
  return rows[0];
}

async function seqs(stream: string): Promise<number[]> {
  const { rows } = await db.query<{ seq: string }>('select seq from chainlog.events where stream = $1 order by seq', [stream]);
  return rows.map((r) => Number(r.seq));
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('the chain trigger', () => {
  it('chains a single-row INSERT, a multi-row INSERT and COPY FROM STDIN into one stream', async () => {
    await db.query(`insert into chainlog.events (stream, event_type, action) values ('mixed', 'A', 'CREATE')`);
    await db.query(
      `insert into chainlog.events (stream, event_type, action) values ('mixed', 'B', 'CREATE'), ('mixed', 'C', 'UPDATE')`,
    );
    const client = await db.connect();
    const lines = ['mixed\tD\tDELETE\t{"k": 1}\n', 'mixed\tE\tEXECUTE\t\\N\n'];
    await pipeline(
      Readable.from(lines),
      client.query(copyFrom('copy chainlog.events (stream, event_type, action, payload) from stdin')),
    );
    expect(await seqs('mixed')).toEqual([1, 2, 3, 4, 5]);
    expect(await verify('mixed')).toMatchObject({ ok: true, checked: 5 });
  });

  it('links the first event to the genesis hash and every later event to its predecessor', async () => {
    await db.query(`select chainlog.append('X', 'CREATE', 'links'), chainlog.append('Y', 'CREATE', 'links')`);
    const { rows } = await db.query(
      `select seq, encode(prev_hash, 'hex') as prev, encode(hash, 'hex') as hash from chainlog.events where stream = 'links' order by seq`,
    );
    expect(rows[0].prev).toBe('0'.repeat(64));
    expect(rows[1].prev).toBe(rows[0].hash);
  });

  it('keeps separate streams as separate chains, interleaved in one statement', async () => {
    await db.query(
      `insert into chainlog.events (stream, event_type, action)
       select case when g % 3 = 0 then 'left' else 'right' end, 'E', 'CREATE' from generate_series(1, 30) g`,
    );
    expect(await seqs('left')).toEqual(range(10));
    expect(await seqs('right')).toEqual(range(20));
    expect(await verify('left')).toMatchObject({ ok: true });
    expect(await verify('right')).toMatchObject({ ok: true });
  });

  it('records the head of each stream at commit, visible in chainlog.streams', async () => {
    await db.query(`insert into chainlog.events (stream, event_type, action) select 'headed', 'E', 'CREATE' from generate_series(1, 7)`);
    const { rows } = await db.query(
      `select s.head_seq::int, s.head_hash = e.hash as matches
         from chainlog.streams s join chainlog.events e on e.stream = s.stream and e.seq = s.head_seq
        where s.stream = 'headed'`,
    );
    expect(rows).toEqual([{ head_seq: 7, matches: true }]);
  });

  it('continues the chain after a rolled-back savepoint without a gap', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query(`select chainlog.append('A', 'CREATE', 'savepoint')`);
    await client.query('savepoint s');
    await client.query(`select chainlog.append('B', 'CREATE', 'savepoint')`);
    await client.query('rollback to savepoint s');
    await client.query(`select chainlog.append('C', 'CREATE', 'savepoint')`);
    await client.query('commit');
    const { rows } = await db.query(`select seq::int, event_type from chainlog.events where stream = 'savepoint' order by seq`);
    expect(rows).toEqual([
      { seq: 1, event_type: 'A' },
      { seq: 2, event_type: 'C' },
    ]);
    expect(await verify('savepoint')).toMatchObject({ ok: true, checked: 2 });
  });

  it('forgets a head carried inside a rolled-back savepoint: the next event follows the last one kept', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query(`select chainlog.append('A', 'CREATE', 'savepoint-carried')`);
    await client.query(`select chainlog.append('B', 'CREATE', 'savepoint-carried')`);
    await client.query('savepoint s');
    // The third event is chained on the carried head, with no lookup; then rolled back.
    await client.query(`select chainlog.append('C', 'CREATE', 'savepoint-carried')`);
    await client.query('rollback to savepoint s');
    await client.query(`select chainlog.append('D', 'CREATE', 'savepoint-carried')`);
    await client.query('commit');
    await client.end();
    const { rows } = await db.query(
      `select seq::int, event_type, prev_hash = lag(hash) over (order by seq) as linked
         from chainlog.events where stream = 'savepoint-carried' order by seq`);
    expect(rows).toEqual([
      { seq: 1, event_type: 'A', linked: null },
      { seq: 2, event_type: 'B', linked: true },
      { seq: 3, event_type: 'D', linked: true },
    ]);
    expect(await verify('savepoint-carried')).toMatchObject({ ok: true, checked: 3 });
    expect((await db.query(`select head_seq::int from chainlog.streams where stream = 'savepoint-carried'`)).rows).toEqual([{ head_seq: 3 }]);
  });

  it('refuses to chain a second event of a stream while constraints are immediate, rather than record a stale head', async () => {
    const client = await db.connect();
    await client.query(`select chainlog.append('A', 'CREATE', 'immediate')`);
    await client.query('begin');
    await client.query('set constraints all immediate');
    // The first event of a stream in a transaction records the head itself: nothing is deferred.
    await client.query(`select chainlog.append('B', 'CREATE', 'immediate')`);
    // The second would leave the head to the settle at commit, which immediate constraints fire now.
    await expect(client.query(`select chainlog.append('C', 'CREATE', 'immediate')`)).rejects.toMatchObject({
      code: 'LC007',
      hint: expect.stringContaining('SET CONSTRAINTS'),
    });
    await client.query('rollback');
    expect(await verify('immediate')).toMatchObject({ ok: true, checked: 1 });
  });

  it('settles the head correctly when constraints are made immediate after the events are written', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query(`insert into chainlog.events (stream, event_type, action) values ('late-immediate', 'A', 'CREATE'), ('late-immediate', 'B', 'CREATE')`);
    await client.query('set constraints all immediate');
    await client.query('commit');
    expect(await verify('late-immediate')).toEqual({ ok: true, checked: 2, problem: null, detail: null });
  });

  it('writes the head row at most twice before commit, however many events and statements a transaction runs', async () => {
    const client = await db.connect();
    await client.query(`select chainlog.append('FIRST', 'CREATE', 'many-statements')`);
    const headUpdates = async () =>
      (await client.query(`select n_tup_upd::int as n from pg_stat_xact_user_tables where relid = 'chainlog.stream_heads'::regclass`))
        .rows[0].n as number;
    await client.query('begin');
    const before = await headUpdates();
    await client.query(`select chainlog.append('E', 'UPDATE', 'many-statements')`); // claims the stream, records the head
    await client.query(`select chainlog.append('E', 'UPDATE', 'many-statements')`); // marks it pending
    expect(await headUpdates()).toBe(before + 2);
    for (let i = 0; i < 298; i++) await client.query(`select chainlog.append('E', 'UPDATE', 'many-statements')`);
    // 298 more events, and the head row was not touched again: the next update is the settle at commit.
    expect(await headUpdates()).toBe(before + 2);
    await client.query('commit');
    expect(await verify('many-statements')).toMatchObject({ ok: true, checked: 301 });
  });

  it('a transaction alternating between two streams writes each head row at most twice before commit', async () => {
    const client = await db.connect();
    await client.query(`select chainlog.append('FIRST', 'CREATE', s) from (values ('alt-a'), ('alt-b')) v(s)`);
    const updates = async () =>
      (await client.query(`select n_tup_upd::int as n from pg_stat_xact_user_tables where relid = 'chainlog.stream_heads'::regclass`))
        .rows[0].n as number;
    await client.query('begin');
    const before = await updates();
    // One statement, 2,000 rows, the stream changing at every row; then single-event statements.
    await client.query(
      `insert into chainlog.events (stream, event_type, action) select 'alt-' || (array['a', 'b'])[g % 2 + 1], 'E', 'CREATE' from generate_series(1, 2000) g`,
    );
    for (let i = 0; i < 20; i++) await client.query(`select chainlog.append('E', 'CREATE', 'alt-' || $1)`, [i % 2 ? 'a' : 'b']);
    expect(await updates()).toBeLessThanOrEqual(before + 4); // per stream: recorded once, marked pending once
    await client.query('commit');
    expect(await verify('alt-a')).toMatchObject({ ok: true, checked: 1011 });
    expect(await verify('alt-b')).toMatchObject({ ok: true, checked: 1011 });
  });

  it('a stream\'s carried head survives the first event of another stream in between', async () => {
    const client = await db.connect();
    await client.query(`select chainlog.append('FIRST', 'CREATE', s) from (values ('carry-a'), ('carry-b')) v(s)`);
    await client.query('begin');
    // carry-b's second event in the transaction: its head is carried from here on.
    for (const s of ['carry-b', 'carry-b', 'carry-a', 'carry-b', 'carry-a', 'carry-b']) {
      await client.query(`select chainlog.append('E', 'CREATE', $1)`, [s]);
    }
    await client.query('commit');
    expect(await verify('carry-a')).toMatchObject({ ok: true, checked: 3 });
    expect(await verify('carry-b')).toMatchObject({ ok: true, checked: 5 });
    const { rows } = await db.query(
      `select s.stream, s.head_seq::int as seq, s.head_hash = e.hash as matches from chainlog.stream_heads s
         join chainlog.events e on e.stream = s.stream and e.seq = s.head_seq where s.stream like 'carry-%' order by 1`,
    );
    expect(rows).toEqual([{ stream: 'carry-a', seq: 3, matches: true }, { stream: 'carry-b', seq: 5, matches: true }]);
  });

  it.each([
    ['cleared', ''],
    ['naming another stream', 'order-elsewhere'],
  ])('an event coming back to a stream chains on its stored last event, with the carried stream %s by hand', async (_how, value) => {
    const stream = `order-${value === '' ? 'cleared' : 'other'}`;
    const client = await db.connect();
    await client.query('begin');
    // Two events make the stream's head pending; one of another stream takes the carried head.
    for (const s of [stream, stream, `${stream}-b`]) await client.query(`select chainlog.append('E', 'CREATE', $1)`, [s]);
    await client.query(`select pg_catalog.set_config('chainlog.head_stream', $1, true)`, [value]);
    const { rows } = await client.query(`select seq::int from chainlog.append('E', 'CREATE', $1)`, [stream]);
    expect(rows).toEqual([{ seq: 3 }]);
    await client.query('commit');
    expect(await verify(stream)).toMatchObject({ ok: true, checked: 3 });
    expect(await verify(`${stream}-b`)).toMatchObject({ ok: true, checked: 1 });
  });

  it('a one-event transaction writes the head row once and leaves nothing to do at commit', async () => {
    const client = await db.connect();
    await client.query(`select chainlog.append('FIRST', 'CREATE', 'one-event')`);
    await client.query('begin');
    const updates = async () =>
      (await client.query(`select n_tup_upd::int as n from pg_stat_xact_user_tables where relid = 'chainlog.stream_heads'::regclass`))
        .rows[0].n as number;
    const before = await updates();
    const { rows: [event] } = await client.query(`select seq::int, hash from chainlog.append('SECOND', 'CREATE', 'one-event')`);
    expect(await updates()).toBe(before + 1);
    // Inside the transaction the head row already holds the new event, and it is not pending.
    const { rows: [head] } = await client.query(`select head_seq::int, head_hash, pending from chainlog.stream_heads where stream = 'one-event'`);
    expect(head).toEqual({ head_seq: 2, head_hash: event.hash, pending: false });
    await client.query('commit');
    // The settle would have stamped the head with its own, later clock reading.
    const { rows: [stamp] } = await db.query(
      `select s.last_appended_at = e.recorded_at as unsettled from chainlog.streams s
         join chainlog.events e on e.stream = s.stream and e.seq = s.head_seq where s.stream = 'one-event'`,
    );
    expect(stamp).toEqual({ unsettled: true });
    expect(await verify('one-event')).toMatchObject({ ok: true, checked: 2 });
  });

  it('refuses a direct call of the function that records a stream head (42501)', async () => {
    await db.query(`select chainlog.append('E', 'CREATE', 'direct')`);
    await expect(
      db.query(`select chainlog._chain_first(e) from chainlog.events e where e.stream = 'direct'`),
    ).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('internal to the chain trigger') });
    expect(await verify('direct')).toMatchObject({ ok: true, checked: 1 });
  });

  it('never scans a whole table to find a head, even right after ANALYZE of nearly empty tables', async () => {
    const client = await db.connect();
    await client.query('analyze chainlog.events');
    await client.query('analyze chainlog.stream_heads');
    const scans = async () => {
      await client.query('select pg_stat_force_next_flush()');
      const { rows } = await client.query(
        `select relname, seq_scan::int from pg_stat_user_tables where schemaname = 'chainlog' and relname in ('events', 'stream_heads') order by relname`,
      );
      return rows;
    };
    const before = await scans();
    // Alternating streams inside one statement forces a head lookup for every row.
    await client.query(
      `insert into chainlog.events (stream, event_type, action)
       select 'plan-' || (g % 2), 'E', 'CREATE' from generate_series(1, 2000) g`,
    );
    for (let i = 0; i < 20; i++) await client.query(`select chainlog.append('E', 'CREATE', 'plan-' || ${i % 3})`);
    expect(await scans()).toEqual(before);
  });
});

describe('concurrent writers', () => {
  // Three fresh streams: the race that once forked a chain happened while a new stream's head row was
  // being created, so every round starts with a stream nobody has written yet.
  it.each(['contended-1', 'contended-2', 'contended-3'])(
    '16 clients on one new stream (%s), some rolling back, leave one contiguous chain of exactly the committed events',
    async (stream) => {
    let committed = 0;
    const worker = async (w: number) => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        for (let i = 0; i < 12; i++) {
          await client.query('begin');
          const rows = 1 + ((w + i) % 3);
          for (let r = 0; r < rows; r++) {
            await client.query(`select chainlog.append('E', 'UPDATE', $1, actor => $2)`, [stream, `worker-${w}`]);
          }
          if ((w * 7 + i) % 4 === 0) {
            await client.query('rollback');
          } else {
            await client.query('commit');
            committed += rows;
          }
        }
      } finally {
        await client.end();
      }
    };
    await Promise.all(range(16).map(worker));
    expect(committed).toBeGreaterThan(0);
    expect(await seqs(stream)).toEqual(range(committed));
    expect(await verify(stream)).toMatchObject({ ok: true, checked: committed });
    },
  );

  for (const isolation of ['repeatable read', 'serializable']) {
    it(`a ${isolation} writer whose snapshot predates another writer's commit gets 40001, never a fork`, async () => {
      const stream = `stale-${isolation.replace(' ', '-')}`;
      await db.query(`select chainlog.append('A', 'CREATE', $1)`, [stream]);
      const stale = await db.connect();
      const other = await db.connect();
      await stale.query(`begin isolation level ${isolation}`);
      await stale.query('select count(*) from chainlog.events'); // takes the snapshot
      await other.query(`select chainlog.append('B', 'CREATE', $1)`, [stream]);
      await expect(stale.query(`select chainlog.append('C', 'CREATE', $1)`, [stream])).rejects.toMatchObject({
        code: '40001',
      });
      await stale.query('rollback');
      // Retried, the transaction succeeds and the chain stays linear.
      await stale.query(`begin isolation level ${isolation}`);
      await stale.query(`select chainlog.append('C', 'CREATE', $1)`, [stream]);
      await stale.query('commit');
      expect(await seqs(stream)).toEqual([1, 2, 3]);
      expect(await verify(stream)).toMatchObject({ ok: true, checked: 3 });
    });
  }

  it('a repeatable read writer that sees a brand-new stream created meanwhile gets 40001', async () => {
    const stale = await db.connect();
    const other = await db.connect();
    await stale.query('begin isolation level repeatable read');
    await stale.query('select count(*) from chainlog.events');
    await other.query(`select chainlog.append('A', 'CREATE', 'born-meanwhile')`);
    await expect(stale.query(`select chainlog.append('B', 'CREATE', 'born-meanwhile')`)).rejects.toMatchObject({ code: '40001' });
    await stale.query('rollback');
    expect(await verify('born-meanwhile')).toMatchObject({ ok: true, checked: 1 });
  });

  it('two transactions writing two streams in opposite order: one is chosen as deadlock victim (40P01), no chain breaks', async () => {
    const a = await db.connect();
    const b = await db.connect();
    await a.query('begin');
    await b.query('begin');
    await a.query(`select chainlog.append('A1', 'CREATE', 'north')`);
    await b.query(`select chainlog.append('B1', 'CREATE', 'south')`);
    const results = await Promise.allSettled([
      a.query(`select chainlog.append('A2', 'CREATE', 'south')`),
      b.query(`select chainlog.append('B2', 'CREATE', 'north')`),
    ]);
    const failures = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(failures).toHaveLength(1);
    expect(failures[0]!.reason).toMatchObject({ code: '40P01' });
    await a.query(results[0].status === 'fulfilled' ? 'commit' : 'rollback');
    await b.query(results[1].status === 'fulfilled' ? 'commit' : 'rollback');
    expect(await verify('north')).toMatchObject({ ok: true, checked: 1 });
    expect(await verify('south')).toMatchObject({ ok: true, checked: 1 });
  });

  it('a writer that waited for the stream chains on the head committed meanwhile, with a later recorded_at', async () => {
    const stream = 'waited-for';
    await db.query(`select chainlog.append('A0', 'CREATE', $1)`, [stream]);
    const holder = await db.connect();
    const waiter = await db.connect();
    await holder.query('begin');
    await holder.query(`select chainlog.append('A1', 'CREATE', $1)`, [stream]);
    const waiterPid = (await waiter.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    const waited = waiter.query(`select chainlog.append('B1', 'CREATE', $1)`, [stream]);
    // Until the waiter is blocked on the holder's lock on the stream.
    for (let i = 0; ; i++) {
      const { rows } = await db.query<{ blocked: boolean }>(
        'select cardinality(pg_blocking_pids($1)) > 0 as blocked', [waiterPid]);
      if (rows[0]!.blocked) break;
      if (i > 500) throw new Error('the second writer never waited for the stream');
      await new Promise((r) => setTimeout(r, 10));
    }
    // The holder's last event is chained after the waiter began waiting.
    await new Promise((r) => setTimeout(r, 20));
    await holder.query(`select chainlog.append('A2', 'CREATE', $1)`, [stream]);
    await holder.query('commit');
    await waited;
    const { rows } = await db.query<{ event_type: string; linked: boolean; later: boolean }>(
      `select event_type,
              prev_hash = lag(hash) over w as linked,
              recorded_at >= lag(recorded_at) over w as later
         from chainlog.events where stream = $1 window w as (order by seq) order by seq offset 1`,
      [stream],
    );
    expect(rows).toEqual([
      { event_type: 'A1', linked: true, later: true },
      { event_type: 'A2', linked: true, later: true },
      { event_type: 'B1', linked: true, later: true },
    ]);
    expect(await verify(stream)).toMatchObject({ ok: true, checked: 4 });
  });
});

describe('the hash does not depend on the session', () => {
  it('events written under unusual TimeZone, DateStyle, IntervalStyle, extra_float_digits and search_path verify in a default session', async () => {
    const client = await db.connect();
    await client.query(`set timezone = 'Asia/Kathmandu'`);
    await client.query(`set datestyle = 'SQL, DMY'`);
    await client.query(`set intervalstyle = 'sql_standard'`);
    await client.query(`set extra_float_digits = -15`);
    await client.query(`set search_path = ''`);
    await client.query(
      `select chainlog.append('ÉVÉNEMENT', 'CREATE', 'sessions', actor => 'zoë', occurred_at => '2024-02-29 23:59:59.123456+05:45',
                              payload => '{"amount": 1.10000000000000008881784197001, "naïve": "back\\\\slash"}')`,
    );
    await client.end();
    expect(await verify('sessions')).toMatchObject({ ok: true, checked: 1 });
    const { rows } = await db.query(
      `select occurred_at = '2024-02-29 18:14:59.123456+00' as utc_ok, actor from chainlog.events where stream = 'sessions'`,
    );
    expect(rows).toEqual([{ utc_ok: true, actor: 'zoë' }]);
  });

  it('computes identical canonical bytes for a stored event under different session settings', async () => {
    await db.query(
      `select chainlog.append('É', 'CREATE', 'bytes', actor => 'zoë', occurred_at => now(), source_ip => '2001:db8::1',
                              payload => '{"naïve": 1.5e300}')`,
    );
    const canonical = `select encode(chainlog.canonical_bytes(format_version, prev_hash, seq, recorded_at, data_digest,
      stream, occurred_at, actor, actor_type, event_type, action, result, resource_type, resource_id, source_ip, request_id), 'hex') as b
      from chainlog.events where stream = 'bytes'`;
    const results = new Set<string>();
    for (const settings of [
      `set timezone = 'UTC'`,
      `set timezone = 'America/St_Johns'; set datestyle = 'German'`,
      `set datestyle = 'Postgres, MDY'; set extra_float_digits = 3; set bytea_output = 'escape'`,
      `set client_encoding = 'LATIN1'; set search_path = ''`,
    ]) {
      const client = await db.connect();
      await client.query(settings);
      results.add((await client.query(canonical)).rows[0].b);
      await client.end();
    }
    expect(results.size).toBe(1);
  });
});
