import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createChainlog, type NewEvent } from '../src/client.js';
import { ChainlogConnectionError, ChainlogInvalidArgumentError, ChainlogInvalidEventError } from '../src/errors.js';
import { verifyOfflineFile } from '../src/offline-verify.js';
import { useChainlogDatabase } from './support/db.js';
import { asAttacker } from './support/tamper.js';

const db = useChainlogDatabase();
const log = () => createChainlog({ pool: db.pool });
const HEX64 = /^[0-9a-f]{64}$/;

async function countIn(stream: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>('select count(*)::int as n from chainlog.events where stream = $1', [stream]);
  return rows[0]!.n;
}

describe('append()', () => {
  it('returns the new event\'s id, stream, seq and hash, with seq counting up per stream', async () => {
    const first = await log().append({ stream: 'ap', eventType: 'INVOICE_PAID', action: 'UPDATE' });
    const second = await log().append({ stream: 'ap', eventType: 'INVOICE_PAID', action: 'UPDATE' });
    expect(first).toEqual({ id: expect.stringMatching(/^\d+$/), stream: 'ap', seq: '1', hash: expect.stringMatching(HEX64) });
    expect(second.seq).toBe('2');
    const { rows } = await db.query(`select encode(hash, 'hex') as hash from chainlog.events where id = $1`, [second.id]);
    expect(rows[0].hash).toBe(second.hash);
  });

  it('puts an event without a stream in \'default\' with result \'success\'', async () => {
    const { id } = await log().append({ eventType: 'T', action: 'CREATE' });
    expect(await log().get(id)).toMatchObject({ stream: 'default', result: 'success' });
  });

  it('runs on the caller\'s transaction when given { db }: nothing is stored if it rolls back', async () => {
    const client = await db.connect();
    await client.query('begin');
    await log().append({ stream: 'ap-tx', eventType: 'T', action: 'CREATE' }, { db: client });
    expect(await countIn('ap-tx')).toBe(0); // not visible outside the transaction
    await client.query('rollback');
    expect(await countIn('ap-tx')).toBe(0);
  });
});

describe('JSON as text: payloadJson, beforeJson, afterJson', () => {
  it('append() and appendMany() store the JSON text as written: numbers keep every digit', async () => {
    const payloadJson = '{"amount": 12345678901234567890, "rate": 0.1000, "qty": 1.0}';
    const one = await log().append({ stream: 'exact', eventType: 'T', action: 'CREATE', payloadJson, beforeJson: '[1.10]', afterJson: '2.50' });
    const many = await log().appendMany([
      { stream: 'exact', eventType: 'T', action: 'CREATE', payloadJson: '{\n\t"big": 98765432109876543210.000,\n\t"s": "tab\\there \\\\ \\n"\n}' },
      { stream: 'exact', eventType: 'T', action: 'CREATE', payload: { plain: 0.5 } },
    ]);
    expect(many.count).toBe(2);
    const { rows } = await db.query(
      `select payload::text as payload, before::text as before, after::text as after from chainlog.events where stream = 'exact' order by seq`,
    );
    expect(rows).toEqual([
      { payload: '{"qty": 1.0, "rate": 0.1000, "amount": 12345678901234567890}', before: '[1.10]', after: '2.50' },
      { payload: '{"s": "tab\\there \\\\ \\n", "big": 98765432109876543210.000}', before: null, after: null },
      { payload: '{"plain": 0.5}', before: null, after: null },
    ]);
    const stored = (await log().get(one.id))!;
    expect(stored.payload).toEqual({ qty: 1, rate: 0.1, amount: 12345678901234567890 });
    // JSON.parse rounds the amount; the text is what PostgreSQL stored, every digit kept.
    expect(stored.payloadJson).toBe('{"qty": 1.0, "rate": 0.1000, "amount": 12345678901234567890}');
    expect([stored.beforeJson, stored.afterJson]).toEqual(['[1.10]', '2.50']);
    const [found] = (await log().search({ stream: 'exact', limit: 1 })).events;
    expect(found!.payloadJson).toBe('{"plain": 0.5}');
    expect(await log().verifyOffline({ stream: 'exact' })).toEqual(await log().verify({ stream: 'exact' }));
    expect(await log().verify({ stream: 'exact' })).toMatchObject({ ok: true, checked: 3 });
  });

  it('refuses a value and its JSON text together, and text that is not JSON', async () => {
    await expect(log().append({ stream: 'exact-bad', eventType: 'T', action: 'CREATE', payload: {}, payloadJson: '{}' })).rejects.toThrow(
      ChainlogInvalidArgumentError,
    );
    await expect(log().appendMany([{ stream: 'exact-bad', eventType: 'T', action: 'CREATE', afterJson: '{"a": ' }])).rejects.toMatchObject({
      code: '22P02',
      message: expect.stringMatching(/^appendMany\(\): events\[0\]: invalid input syntax for type json/),
    });
    expect(await countIn('exact-bad')).toBe(0);
  });
});

describe('get()', () => {
  it('returns every field in camelCase, timestamps exact to the microsecond', async () => {
    const { id } = await log().append({
      stream: 'get', eventType: 'USER_ROLE_CHANGED', action: 'UPDATE', actor: 'alice', actorType: 'user',
      resourceType: 'user', resourceId: 'bob', before: { role: 'viewer' }, after: { role: 'admin' },
      payload: { reason: 'promotion', n: [1, 2] }, occurredAt: '2025-03-01T10:00:00.123456Z',
      sourceIp: '2001:db8::7', requestId: 'req-1',
    });
    const event = await log().get(id);
    expect(event).toMatchObject({
      id, stream: 'get', seq: '1', actor: 'alice', actorType: 'user', eventType: 'USER_ROLE_CHANGED',
      action: 'UPDATE', result: 'success', resourceType: 'user', resourceId: 'bob', sourceIp: '2001:db8::7',
      requestId: 'req-1', payload: { reason: 'promotion', n: [1, 2] }, before: { role: 'viewer' },
      after: { role: 'admin' }, occurredAt: '2025-03-01T10:00:00.123456Z', formatVersion: 1,
      prevHash: '0'.repeat(64), hash: expect.stringMatching(HEX64), dataDigest: expect.stringMatching(HEX64),
    });
    const { rows } = await db.query('select recorded_at = $2::timestamptz as same from chainlog.events where id = $1', [id, event!.recordedAt]);
    expect(event!.recordedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(rows[0].same).toBe(true);
  });

  it('returns null for an id that does not exist', async () => {
    expect(await log().get('999999999')).toBeNull();
  });
});

describe('appendMany()', () => {
  it('writes a batch across streams and returns the count and each stream\'s head', async () => {
    const events: NewEvent[] = Array.from({ length: 300 }, (_, i) => ({
      stream: ['many-b', 'many-a', 'many-c'][i % 3],
      eventType: 'RECORD_UPDATED',
      action: 'UPDATE',
      payload: { n: i },
    }));
    const result = await log().appendMany(events);
    expect(result.count).toBe(300);
    const streams = (await log().streams()).filter((s) => s.stream.startsWith('many-'));
    expect(result.heads).toEqual(streams.map((s) => ({ stream: s.stream, seq: '100', hash: s.headHash })));
    // Within a stream, the batch's order is kept.
    const { rows } = await db.query(`select (payload->>'n')::int as n from chainlog.events where stream = 'many-a' order by seq`);
    expect(rows.map((r) => r.n)).toEqual(events.flatMap((e, i) => (e.stream === 'many-a' ? [i] : [])));
    for (const s of ['many-a', 'many-b', 'many-c']) expect(await log().verify({ stream: s })).toMatchObject({ ok: true, checked: 100 });
  });

  it('stores tabs, newlines, backslashes, quotes and non-ASCII text exactly', async () => {
    const tricky = 'tab\there\nnew line\r\\N \\ back\\slash "quoted" ünïcødé 🎉';
    const [head] = (await log().appendMany([{ stream: 'tricky', eventType: tricky, action: 'UPDATE', actor: tricky, resourceId: '\\N', payload: { s: tricky } }])).heads;
    const [event] = (await log().search({ stream: 'tricky' })).events;
    expect(event).toMatchObject({ eventType: tricky, actor: tricky, resourceId: '\\N', payload: { s: tricky }, hash: head!.hash });
  });

  it('is all or nothing, and the error names the caller\'s index of the bad event', async () => {
    const events: NewEvent[] = [
      { stream: 'aon-z', eventType: 'T', action: 'CREATE' },
      { stream: 'aon-z', eventType: 'T', action: 'CREATE' },
      { stream: 'aon-a', eventType: 'T', action: 'CREATE' },
      { stream: 'aon-z', eventType: 'T', action: '' },
    ];
    const error = await log().appendMany(events).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChainlogInvalidEventError);
    expect((error as Error).message).toMatch(/^appendMany\(\): events\[3\]: action is required/);
    expect((await countIn('aon-z')) + (await countIn('aon-a'))).toBe(0);
  });

  it('names the event whose payload is not JSON, stores nothing, and leaves the pool usable', async () => {
    const events: NewEvent[] = Array.from({ length: 3000 }, (_, i) => ({ stream: 'bad-json', eventType: 'T', action: 'CREATE', payload: i === 2500 ? { n: 1n } : { i } }));
    const error = await log().appendMany(events).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChainlogInvalidArgumentError);
    expect((error as Error).message).toMatch(/^appendMany\(\): events\[2500\]: payload cannot be stored as JSON/);
    expect(await countIn('bad-json')).toBe(0);
    expect((await log().appendMany(events.slice(0, 10))).count).toBe(10);
  });

  it('joins the caller\'s transaction: its events commit or roll back with it', async () => {
    const client = await db.connect();
    await client.query('begin');
    const result = await log().appendMany([{ stream: 'many-tx', eventType: 'T', action: 'CREATE' }], { db: client });
    expect(result.heads).toEqual([{ stream: 'many-tx', seq: '1', hash: expect.stringMatching(HEX64) }]);
    expect(await countIn('many-tx')).toBe(0);
    await client.query('rollback');
    expect(await countIn('many-tx')).toBe(0);
  });

  it('concurrent batches over the same streams in different orders neither deadlock nor fork', async () => {
    const streams = ['cc-1', 'cc-2', 'cc-3', 'cc-4'];
    const batch = (k: number): NewEvent[] =>
      Array.from({ length: 400 }, (_, i) => ({ stream: streams[(i + k) % 4], eventType: 'T', action: 'CREATE', payload: { k, i } }));
    const results = await Promise.all([0, 1, 2, 3, 0, 1, 2, 3].map((k) => log().appendMany([...batch(k)].reverse())));
    expect(results.map((r) => r.count)).toEqual(Array(8).fill(400));
    for (const stream of streams) expect(await log().verify({ stream })).toMatchObject({ ok: true, checked: 800 });
  });

  it('returns a zero count for an empty batch without touching the database', async () => {
    const broken = createChainlog({ connectionString: 'postgres://nobody@127.0.0.1:1/none' });
    expect(await broken.appendMany([])).toEqual({ count: 0, heads: [] });
    await broken.close();
  });
});

describe('withContext()', () => {
  it('stamps actor, actor type, source IP and request ID on events appended inside it', async () => {
    const context = { actor: 'svc-billing', actorType: 'service' as const, sourceIp: '10.1.2.3', requestId: 'req-42' };
    const ids = await log().withContext(context, async (tx) => {
      const a = await tx.append({ stream: 'ctx', eventType: 'T', action: 'CREATE' });
      // The caller's own SQL in the same transaction gets the context too.
      const { rows } = await (tx.db as pg.ClientBase).query(
        `insert into chainlog.events (stream, event_type, action) values ('ctx', 'T', 'UPDATE') returning id::text`,
      );
      return [a.id, rows[0].id as string];
    });
    for (const id of ids) {
      expect(await log().get(id)).toMatchObject({ actor: 'svc-billing', actorType: 'service', sourceIp: '10.1.2.3', requestId: 'req-42' });
    }
    const after = await log().append({ stream: 'ctx', eventType: 'T', action: 'CREATE' });
    expect(await log().get(after.id)).toMatchObject({ requestId: null, actorType: 'service' }); // the role's default, not svc-billing
    expect((await log().get(after.id))!.actor).not.toBe('svc-billing');
  });

  it('lets an event override the context', async () => {
    const { id } = await log().withContext({ actor: 'ctx-actor' }, (tx) => tx.append({ stream: 'ctx2', eventType: 'T', action: 'CREATE', actor: 'explicit' }));
    expect((await log().get(id))!.actor).toBe('explicit');
  });

  it('rolls back everything when the function throws', async () => {
    await expect(
      log().withContext({ actor: 'x' }, async (tx) => {
        await tx.append({ stream: 'ctx-rb', eventType: 'T', action: 'CREATE' });
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');
    expect(await countIn('ctx-rb')).toBe(0);
  });

  it('inside the caller\'s transaction, the context ends with the function', async () => {
    const client = await db.connect();
    await client.query('begin');
    await log().withContext({ actor: 'inner' }, (tx) => tx.append({ stream: 'ctx-join', eventType: 'T', action: 'CREATE' }), { db: client });
    const later = await log().append({ stream: 'ctx-join', eventType: 'T', action: 'CREATE' }, { db: client });
    await client.query('commit');
    const events = (await log().search({ stream: 'ctx-join' })).events;
    expect(events.map((e) => e.actor)).toEqual([expect.not.stringMatching(/^inner$/), 'inner']);
    expect(events[0]!.id).toBe(later.id);
  });
});

describe('verify(), verifyAll() and streams()', () => {
  it('verify() reports an intact stream, then the first bad seq and the kind once an event is changed', async () => {
    await log().appendMany(Array.from({ length: 5 }, () => ({ stream: 'vf', eventType: 'T', action: 'CREATE' })));
    expect(await log().verify({ stream: 'vf' })).toEqual({ stream: 'vf', ok: true, checked: 5, firstBadSeq: null, problem: null, detail: null });
    await asAttacker(db.pool, `update chainlog.events set actor = 'mallory' where stream = 'vf' and seq = 3`);
    expect(await log().verify({ stream: 'vf' })).toEqual({
      stream: 'vf', ok: false, checked: 2, firstBadSeq: '3', problem: 'modified', detail: expect.stringContaining('3'),
    });
    expect(await log().verify({ stream: 'vf', upToSeq: 2 })).toMatchObject({ ok: true, checked: 2 });
  });

  it('verifyAll() has one report per stream', async () => {
    const reports = await log().verifyAll();
    const streams = await log().streams();
    expect(reports.map((r) => r.stream)).toEqual(streams.map((s) => s.stream));
    expect(reports.find((r) => r.stream === 'vf')).toMatchObject({ ok: false, problem: 'modified' });
    expect(reports.find((r) => r.stream === 'ap')).toMatchObject({ ok: true, checked: 2 });
  });

  it('streams() lists each stream with its head seq and hash', async () => {
    const head = await log().append({ stream: 'st', eventType: 'T', action: 'CREATE' });
    expect((await log().streams()).find((s) => s.stream === 'st')).toEqual({
      stream: 'st', headSeq: '1', headHash: head.hash, createdAt: expect.stringMatching(/Z$/), lastAppendedAt: expect.stringMatching(/Z$/),
    });
  });
});

describe('verifyOffline() and export()', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-client-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('verifyOffline() recomputes a stream\'s chain outside the database and agrees with verify()', async () => {
    await log().appendMany(Array.from({ length: 20 }, (_, i) => ({ stream: 'off', eventType: 'T', action: 'CREATE', payload: { i } })));
    expect(await log().verifyOffline({ stream: 'off' })).toEqual(await log().verify({ stream: 'off' }));
    await asAttacker(db.pool, `update chainlog.events set payload = '{"i": 99}' where stream = 'off' and seq = 7`);
    const offline = await log().verifyOffline({ stream: 'off' });
    expect(offline).toMatchObject({ ok: false, problem: 'modified', firstBadSeq: '7', checked: 6 });
    expect(offline).toEqual(await log().verify({ stream: 'off' }));
  });

  it('export() writes a stream to a file that verifies offline against the head it reports', async () => {
    await log().appendMany(Array.from({ length: 10 }, () => ({ stream: 'exp', eventType: 'T', action: 'CREATE' })));
    const file = path.join(dir, 'exp.ndjson');
    const summary = await log().export({ stream: 'exp', format: 'ndjson', output: file, fromSeq: '1' });
    const headHash = (await log().streams()).find((s) => s.stream === 'exp')!.headHash;
    expect(summary).toEqual({ rows: 10, bytes: statSync(file).size, headSeq: '10', headHash, firstSeq: '1', lastSeq: '10', lastHash: headHash });
    const report = await verifyOfflineFile({ path: file, expectedHead: { seq: Number(summary.headSeq), hash: summary.headHash } });
    expect(report).toMatchObject({ stream: 'exp', ok: true, checked: 10 });
  });
});

describe('a connection lost during a COPY', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-client-lost-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // What would end a process outside the test runner: an 'error' event nobody listened to.
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => uncaught.push(e);
  beforeEach(() => {
    uncaught.length = 0;
    process.on('uncaughtException', onUncaught);
  });
  afterEach(async () => {
    await new Promise((resolve) => setTimeout(resolve, 50)); // the socket's close comes after the failed query
    process.off('uncaughtException', onUncaught);
    expect(uncaught.map(String), 'errors nothing caught (each would have ended the process)').toEqual([]);
  });

  /**
   * Starts `call` while another session holds an ACCESS EXCLUSIVE lock on chainlog.events, so its COPY
   * waits; terminates that COPY's backend, then lets the lock go. Resolves to what `call` rejected with.
   */
  async function lostDuringCopy(call: () => Promise<unknown>): Promise<unknown> {
    const locker = await db.connect();
    await locker.query('begin');
    await locker.query('lock table chainlog.events in access exclusive mode');
    const settled = call().then((value) => ({ resolved: value }), (e: unknown) => e);
    try {
      let pid: number | undefined;
      for (let i = 0; i < 1000 && pid === undefined; i++) {
        const { rows } = await db.query<{ pid: number }>(
          `select pid from pg_stat_activity where datname = current_database() and query ilike 'copy%' and state = 'active'`,
        );
        pid = rows[0]?.pid;
        if (pid === undefined) await new Promise((r) => setTimeout(r, 10));
      }
      expect(pid, 'the COPY never started').toBeDefined();
      await db.query('select pg_terminate_backend($1)', [pid]);
    } finally {
      await locker.query('rollback');
    }
    return settled;
  }

  it('export(), verifyOffline() and appendMany() reject with ChainlogConnectionError; the process and the pool carry on', async () => {
    await log().appendMany(Array.from({ length: 5 }, () => ({ stream: 'lost', eventType: 'T', action: 'CREATE' })));
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['export ndjson', () => log().export({ stream: 'lost', format: 'ndjson', output: path.join(dir, 'lost.ndjson') })],
      ['export csv', () => log().export({ stream: 'lost', format: 'csv', output: path.join(dir, 'lost.csv') })],
      ['verifyOffline', () => log().verifyOffline({ stream: 'lost' })],
      ['appendMany', () => log().appendMany([{ stream: 'lost', eventType: 'T', action: 'CREATE' }])],
    ];
    for (const [name, call] of calls) {
      const error = await lostDuringCopy(call);
      expect(error, name).toBeInstanceOf(ChainlogConnectionError);
      expect((error as Error).message, name).toMatch(/connection/i);
    }
    // Nothing half-done was kept (no file cut short), and the pool hands out working connections.
    expect(existsSync(path.join(dir, 'lost.ndjson')) || existsSync(path.join(dir, 'lost.csv'))).toBe(false);
    expect(await countIn('lost')).toBe(5);
    expect(await log().verifyOffline({ stream: 'lost' })).toMatchObject({ ok: true, checked: 5 });
  });

  it('withContext(): a connection dropped while fn runs no query is a ChainlogConnectionError on its next call', async () => {
    const error = await log()
      .withContext({ actor: 'x' }, async (tx) => {
        const session = tx.db as pg.Client;
        const { rows } = await session.query<{ pid: number }>('select pg_backend_pid() as pid');
        const ended = new Promise((resolve) => session.once('end', resolve));
        await db.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
        // The client emits 'error', then 'end', with no query running.
        await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 5000))]);
        return tx.append({ stream: 'lost-ctx', eventType: 'T', action: 'CREATE' });
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChainlogConnectionError);
    expect(await countIn('lost-ctx')).toBe(0);
  });

  it('on a client the caller passed, the call rejects too instead of crashing the process', async () => {
    await log().appendMany([{ stream: 'lost-client', eventType: 'T', action: 'CREATE' }]);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const error = await lostDuringCopy(() => createChainlog({ client }).verifyOffline({ stream: 'lost-client' }));
    expect(error).toBeInstanceOf(ChainlogConnectionError);
  });
});

describe('export() time bounds', () => {
  it('reads a string to the microsecond, and one without an offset as UTC whatever the machine\'s time zone', async () => {
    for (let i = 0; i < 8; i++) {
      await log().append({ stream: 'exp-time', eventType: 'T', action: 'CREATE' });
      await db.query('select pg_sleep(0.003)');
    }
    // The recorded time of event 4, and one microsecond after event 6, in UTC without an offset.
    const utc = `'YYYY-MM-DD"T"HH24:MI:SS.US'`;
    const { rows } = await db.query<{ from: string; to: string }>(
      `select max(to_char(recorded_at at time zone 'UTC', ${utc})) filter (where seq = 4) as from,
              max(to_char((recorded_at + interval '1 microsecond') at time zone 'UTC', ${utc})) filter (where seq = 6) as to
         from chainlog.events where stream = 'exp-time'`,
    );
    const tz = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      const out = new PassThrough();
      const lines: string[] = [];
      out.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
      const summary = await log().export({ stream: 'exp-time', format: 'ndjson', output: out, from: rows[0]!.from, to: rows[0]!.to });
      expect(lines.map((l) => JSON.parse(l).seq)).toEqual([4, 5, 6]);
      expect(summary).toMatchObject({ rows: 3, firstSeq: '4', lastSeq: '6', headSeq: '8' });
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });
});

describe('createChainlog()', () => {
  it('close() leaves a pool it was given open', async () => {
    const pool = new pg.Pool({ connectionString: db.url });
    await createChainlog({ pool }).close();
    expect((await pool.query('select 1 as one')).rows[0].one).toBe(1);
    await pool.end();
  });

  it('close() ends the pool it opened from connectionString', async () => {
    const chainlog = createChainlog({ connectionString: db.url });
    await chainlog.streams();
    await chainlog.close();
    await expect(chainlog.streams()).rejects.toThrow();
  });
});
