import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChainlog } from '../src/client.js';
import { ChainlogConnectionError, ChainlogError } from '../src/errors.js';
import { EXPORT_COLUMNS, exportEvents, withPinnedSnapshot, type ExportOptions } from '../src/export.js';
import { verifyOfflineFile } from '../src/offline-verify.js';
import { useChainlogDatabase } from './support/db.js';
import { settlesWithin } from './support/settles.js';
import { asAttacker, scenarios, seedStream } from './support/tamper.js';

const db = useChainlogDatabase();
const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-export-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Exports into memory; returns the bytes and the result. */
async function exportToBuffer(options: Omit<ExportOptions, 'output'>) {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const result = await exportEvents({ ...options, output: out });
  return { bytes: Buffer.concat(chunks), result };
}

// Values that print differently under other session settings, or need escaping in CSV and JSON.
async function seedTricky(stream: string): Promise<void> {
  await seedStream(db.pool, stream, 3);
  await db.query(
    `insert into chainlog.events (stream, actor, actor_type, event_type, action, resource_type, resource_id, source_ip,
                                  request_id, occurred_at, payload, before, after)
     values ($1, 'Zoë 中文 😀', 'service', 'X', 'CREATE', '', $2, '2001:db8::1/64', null, '1999-12-31 23:59:59.5+00',
             $3, 'null', null)`,
    [stream, 'tab\there, "quoted"\nnew line \\ back\\slash', '{"price": 1.10, "big": 123456789012345678901234567890, "s": "a\\\\b \\"c\\" \\u0001"}'],
  );
  await seedStream(db.pool, stream, 2);
}

// The NDJSON line as the export once built it in SQL (to_json() of every text column, concatenated):
// the reference the lines now built in Node must match byte for byte.
const SQL_NDJSON_LINE = (() => {
  const json = (c: string) => {
    switch (c) {
      case 'id':
      case 'seq':
      case 'format_version':
      case 'payload':
      case 'before':
      case 'after':
        return `e.${c}::pg_catalog.text`;
      case 'data_digest':
      case 'prev_hash':
      case 'hash':
        return `'"' operator(pg_catalog.||) pg_catalog.encode(e.${c}, 'hex') operator(pg_catalog.||) '"'`;
      default:
        return `pg_catalog.to_json(e.${c})::pg_catalog.text`;
    }
  };
  const parts = EXPORT_COLUMNS.map((c, i) => {
    const piece = `'${i === 0 ? '{' : ','}"${c}":' operator(pg_catalog.||) ${json(c)}`;
    return c === 'id' ? piece : `coalesce(${piece}, '')`;
  });
  return `pg_catalog.concat(${parts.join(', ')}, '}')`;
})();

/** What the SQL-built NDJSON export wrote for the events of `stream` with seq in [fromSeq, toSeq]. */
async function sqlBuiltNdjson(stream: string, fromSeq = 1, toSeq = Number.MAX_SAFE_INTEGER): Promise<Buffer> {
  const { rows } = await withPinnedSnapshot(db.pool, (client) =>
    client.query<{ line: string }>(
      `select ${SQL_NDJSON_LINE} as line from chainlog.events e
        where e.stream = $1 and e.seq between $2 and $3 order by e.seq, e.id`,
      [stream, fromSeq, toSeq],
    ),
  );
  return Buffer.from(rows.map((r) => `${r.line}\n`).join(''), 'utf8');
}

// Text that JSON escapes, and characters where escapers tend to differ: every control character, DEL,
// C1 controls, U+2028/2029, a BOM, multibyte characters. (Most text columns are indexed, which caps a
// value near 2.7 kB: a row longer than a COPY chunk gets its length from the payload.)
const CONTROLS = Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).join('');
const TRICKY_TEXTS = [
  `"quoted" \\ back\\slash \\u0041 \\n`,
  `tab\there\nnew\r\nline\b\f`,
  CONTROLS + '\x7f',
  'Zoë ß é 中文 😀 \u2028 \u2029 \u0085 \u009f \u00a0 \ufeff',
  '',
  `${'x"\\😀\n'.repeat(200)}end`,
  'plain',
  // One special character alone in a value, so that each one is seen escaped, and 0x7f seen not escaped.
  ...[...CONTROLS, '"', '\\', '\x7f'].map((c) => `a${c}z`),
];
const TRICKY_ROWS = TRICKY_TEXTS.length + 3;
const TRICKY_STREAM = `tricky "stream" \\ \t${CONTROLS}\x7f 😀 \u2028`;

async function seedTrickyText(stream: string): Promise<void> {
  const occurredAt = [null, '0044-03-15 12:00:00.000001 BC', '1999-12-31 23:59:59.5+00', '2024-02-29 12:34:56.789012+05:30'];
  const sourceIp = [null, '203.0.113.7', '10.0.0.1/8', '2001:db8::1', '::ffff:192.0.2.1', '2001:db8::/32', '0.0.0.0/0'];
  const json = [
    null,
    'null',
    '{}',
    '[]',
    '"str"',
    '1.10',
    JSON.stringify({ q: '"\\', ctl: CONTROLS + '\x7f', u: 'Zoë 😀 \u2028', n: [1, 1.5e300, -0, null, true], deep: { a: { b: [] } } }),
    JSON.stringify({ long: 'Zoë "😀" \\ \n'.repeat(20_000) }),
  ];
  const at = <T>(list: T[], i: number) => list[i % list.length]!;
  for (let i = 0; i < TRICKY_ROWS; i++) {
    const text = (k: number) => at(TRICKY_TEXTS, i + k);
    // actor, event_type and action must not be empty.
    const required = (k: number) => text(k) || 'required';
    await db.query(
      `insert into chainlog.events (stream, actor, actor_type, event_type, action, result, resource_type, resource_id,
                                    source_ip, request_id, occurred_at, payload, before, after)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
      [
        stream, required(0), at(['user', 'api_key', 'service', 'system'], i), required(1), required(2), at(['success', 'failure'], i),
        i % 5 === 4 ? null : text(3), i % 6 === 5 ? null : text(4), at(sourceIp, i), i % 4 === 3 ? null : text(5),
        at(occurredAt, i), at(json, i), at(json, i + 2), at(json, i + 5),
      ],
    );
  }
}

const seqs = (b: Buffer) => b.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l).seq);

describe('exportEvents()', () => {
  it('writes a CSV header and one line per event, and reports rows, bytes and the head', async () => {
    await seedStream(db.pool, 'csv', 12);
    const file = path.join(dir, 'csv.csv');
    const result = await exportEvents({ db: db.pool, stream: 'csv', format: 'csv', output: file });
    const text = readFileSync(file, 'utf8');
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe(
      'id,stream,seq,recorded_at,occurred_at,actor,actor_type,event_type,action,result,resource_type,resource_id,source_ip,request_id,payload,before,after,format_version,data_digest,prev_hash,hash',
    );
    expect(lines).toHaveLength(13);
    const head = (await db.query(`select head_seq::int, encode(head_hash, 'hex') as hash from chainlog.streams where stream = 'csv'`)).rows[0];
    expect(result).toEqual({ rows: 12, bytes: Buffer.byteLength(text), headSeq: 12, headHash: head.hash, firstSeq: 1, lastSeq: 12, lastHash: head.hash });
  });

  it('produces the same bytes whatever the session TimeZone, DateStyle, bytea_output and extra_float_digits', async () => {
    await seedTricky('stable');
    const plain = await db.connect();
    const odd = await db.connect({ options: '-c TimeZone=America/St_Johns -c DateStyle=German,DMY -c bytea_output=escape -c extra_float_digits=-3 -c IntervalStyle=sql_standard' });
    for (const format of ['csv', 'ndjson'] as const) {
      const a = await exportToBuffer({ db: plain, stream: 'stable', format });
      const b = await exportToBuffer({ db: odd, stream: 'stable', format });
      expect(b.bytes.equals(a.bytes), format).toBe(true);
      expect(a.bytes.toString()).toContain(format === 'csv' ? '1999-12-31 23:59:59.5+00' : '1999-12-31T23:59:59.5+00:00');
    }
    // The caller's session is left as it was.
    expect((await odd.query('show timezone')).rows[0].TimeZone).toBe('America/St_Johns');
  });

  it('NDJSON: one JSON object per line; payload nested exactly as PostgreSQL prints it; backslashes not doubled', async () => {
    const { bytes, result } = await exportToBuffer({ db: db.pool, stream: 'stable', format: 'ndjson' });
    const lines = bytes.toString('utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(result.rows);
    const stored = await db.query<{ payload: string | null; before: string | null; after: string | null; resource_id: string | null }>(
      `select payload::text, before::text, after::text, resource_id from chainlog.events where stream = 'stable' order by seq`,
    );
    lines.forEach((line, i) => {
      const o = JSON.parse(line);
      expect(o.resource_id ?? null).toBe(stored.rows[i]!.resource_id);
      for (const col of ['payload', 'before', 'after'] as const) {
        const text = stored.rows[i]![col];
        // SQL NULL: the key is left out; JSON null: the key is there with null.
        expect(col in o, `${col} of line ${i}`).toBe(text !== null);
        if (text !== null) {
          expect(line).toContain(`"${col}":${text}`);
          expect(o[col]).toEqual(JSON.parse(text));
        }
      }
    });
    expect(lines[3]).toContain('"resource_id":"tab\\there, \\"quoted\\"\\nnew line \\\\ back\\\\slash"');
  });

  it('NDJSON: the same bytes as the lines PostgreSQL built with to_json(), whatever the text holds', async () => {
    await seedTrickyText(TRICKY_STREAM);
    const { bytes, result } = await exportToBuffer({ db: db.pool, stream: TRICKY_STREAM, format: 'ndjson' });
    expect(result.rows).toBe(TRICKY_ROWS);
    const expected = await sqlBuiltNdjson(TRICKY_STREAM);
    expect(bytes.equals(expected)).toBe(true);
    // The lines are JSON and hold the text as stored.
    const stored = await db.query<{ actor: string }>('select actor from chainlog.events where stream = $1 order by seq', [TRICKY_STREAM]);
    const lines = bytes.toString('utf8').trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l).actor)).toEqual(stored.rows.map((r) => r.actor));
    expect(JSON.parse(lines[0]!).stream).toBe(TRICKY_STREAM);
    expect(await verifyOfflineFile({ input: Readable.from([bytes]), format: 'ndjson' })).toMatchObject({ ok: true, checked: TRICKY_ROWS });
    // Other streams and a slice of one.
    for (const stream of ['stable', 'csv']) {
      expect((await exportToBuffer({ db: db.pool, stream, format: 'ndjson' })).bytes.equals(await sqlBuiltNdjson(stream)), stream).toBe(true);
    }
    const slice = await exportToBuffer({ db: db.pool, stream: TRICKY_STREAM, format: 'ndjson', fromSeq: 5, toSeq: 9 });
    expect(slice.bytes.equals(await sqlBuiltNdjson(TRICKY_STREAM, 5, 9))).toBe(true);
  });

  it('NDJSON: onProgress counts the lines and bytes written, and the result agrees', async () => {
    const progress: { rows: number; bytes: number }[] = [];
    const { bytes, result } = await exportToBuffer({ db: db.pool, stream: TRICKY_STREAM, format: 'ndjson', onProgress: (p) => progress.push(p) });
    expect(result).toMatchObject({ rows: TRICKY_ROWS, bytes: bytes.length });
    expect(progress.at(-1)).toEqual({ rows: TRICKY_ROWS, bytes: bytes.length });
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.bytes).toBeGreaterThan(progress[i - 1]!.bytes);
  });

  it('CSV: NULL is an empty field, an empty string is ""', async () => {
    const { bytes } = await exportToBuffer({ db: db.pool, stream: 'stable', format: 'csv' });
    const tricky = bytes.toString('utf8').split('\n').find((l) => l.includes('Zoë'))!;
    // resource_type '' then resource_id (quoted, multi-line) ...
    expect(tricky).toContain(',service,X,CREATE,success,"",');
    const first = bytes.toString('utf8').split('\n')[1]!;
    // seed events have no occurred_at: two commas in a row after recorded_at.
    expect(first).toMatch(/^\d+,stable,1,[^,]+\+00,,seed@example.com,/);
  });

  it('exports only events up to the recorded head at the start, within the requested bounds', async () => {
    await seedStream(db.pool, 'bounds', 10);
    // An event written around chainlog, beyond the recorded head, is not part of the exported chain.
    await asAttacker(
      db.pool,
      `insert into chainlog.events (stream, seq, recorded_at, actor, actor_type, event_type, action, result, format_version,
                                    data_digest, prev_hash, hash)
       select stream, 11, recorded_at, 'mallory', 'user', 'FORGED', 'CREATE', 'success', 1, data_digest, hash, hash
         from chainlog.events where stream = 'bounds' and seq = 10`,
    );
    const all = await exportToBuffer({ db: db.pool, stream: 'bounds', format: 'ndjson' });
    expect(all.result).toMatchObject({ rows: 10, headSeq: 10 });
    expect(seqs((await exportToBuffer({ db: db.pool, stream: 'bounds', format: 'ndjson', fromSeq: 3, toSeq: 5 })).bytes)).toEqual([3, 4, 5]);
    expect(seqs((await exportToBuffer({ db: db.pool, stream: 'bounds', format: 'ndjson', toSeq: 50 })).bytes)).toHaveLength(10);
  });

  it('from/to select by recorded_at: from inclusive, to exclusive', async () => {
    // Events a few milliseconds apart, so a Date (millisecond precision) falls between them.
    for (let i = 0; i < 8; i++) {
      await seedStream(db.pool, 'timed', 1);
      await db.query('select pg_sleep(0.005)');
    }
    const { rows } = await db.query<{ recorded_at: Date }>(
      `select recorded_at from chainlog.events where stream = 'timed' and seq in (4, 7) order by seq`,
    );
    const { bytes } = await exportToBuffer({ db: db.pool, stream: 'timed', format: 'ndjson', from: rows[0]!.recorded_at, to: rows[1]!.recorded_at });
    expect(seqs(bytes)).toEqual([4, 5, 6]);
  });

  it('reports the first and last event written: a cut export verifies against its last event', async () => {
    const hashOf = async (seq: number) =>
      (await db.query(`select encode(hash, 'hex') as h from chainlog.events where stream = 'bounds' and seq = $1`, [seq])).rows[0].h as string;
    const cut = await exportToBuffer({ db: db.pool, stream: 'bounds', format: 'csv', fromSeq: 3, toSeq: 5 });
    expect(cut.result).toMatchObject({ rows: 3, headSeq: 10, firstSeq: 3, lastSeq: 5, lastHash: await hashOf(5) });
    const expectedHead = { seq: cut.result.lastSeq!, hash: cut.result.lastHash! };
    expect(await verifyOfflineFile({ input: Readable.from([cut.bytes]), format: 'csv', fromSeq: 3, expectedHead })).toMatchObject({ ok: true, checked: 3 });
    // The stream's head is not where this file ends.
    const head = { seq: cut.result.headSeq, hash: cut.result.headHash };
    expect(await verifyOfflineFile({ input: Readable.from([cut.bytes]), format: 'csv', fromSeq: 3, expectedHead: head })).toMatchObject({ ok: false, problem: 'truncated' });
    // Beyond the head (the forged event 11 is not exported) and nothing at all.
    expect((await exportToBuffer({ db: db.pool, stream: 'bounds', format: 'ndjson', fromSeq: 9 })).result).toMatchObject({ rows: 2, firstSeq: 9, lastSeq: 10, lastHash: await hashOf(10) });
    expect((await exportToBuffer({ db: db.pool, stream: 'bounds', format: 'ndjson', fromSeq: 11 })).result).toMatchObject({ rows: 0, firstSeq: null, lastSeq: null, lastHash: null });
  });

  it('from/to strings are read by PostgreSQL to the microsecond, as UTC when they give no offset', async () => {
    const utc = `'YYYY-MM-DD"T"HH24:MI:SS.US'`;
    const { rows } = await db.query<{ from: string; to: string }>(
      `select max(to_char(recorded_at at time zone 'UTC', ${utc})) filter (where seq = 4) as from,
              max(to_char((recorded_at + interval '1 microsecond') at time zone 'UTC', ${utc}) || '+00:00') filter (where seq = 6) as to
         from chainlog.events where stream = 'timed'`,
    );
    const { bytes, result } = await exportToBuffer({ db: db.pool, stream: 'timed', format: 'ndjson', from: rows[0]!.from, to: rows[0]!.to });
    expect(seqs(bytes)).toEqual([4, 5, 6]);
    expect(result).toMatchObject({ rows: 3, firstSeq: 4, lastSeq: 6 });
  });

  it('export() takes every time search() takes, JavaScript\'s Date or not: an offset of hours alone, a leap second', async () => {
    const log = createChainlog({ pool: db.pool });
    for (const [key, time] of [['from', '2025-01-31T09:30+02'], ['to', '2999-12-31T23:59:60']] as const) {
      const page = await log.search({ stream: 'timed', [key]: time });
      const out = new PassThrough().resume();
      const exported = await log.export({ stream: 'timed', format: 'ndjson', output: out, [key]: time });
      expect(exported.rows, `${key} ${time}`).toBe(page.events.length);
      expect(exported.rows).toBeGreaterThan(0);
    }
  });

  it('a partial export (fromSeq) verifies from its first event on', async () => {
    const { bytes } = await exportToBuffer({ db: db.pool, stream: 'bounds', format: 'csv', fromSeq: 4 });
    expect(await verifyOfflineFile({ input: Readable.from([bytes]), format: 'csv', fromSeq: 4 })).toMatchObject({ ok: true, checked: 7 });
    // Without fromSeq the file looks like a stream whose first events were removed.
    expect(await verifyOfflineFile({ input: Readable.from([bytes]), format: 'csv' })).toMatchObject({ ok: false, problem: 'deleted', firstBadSeq: 1 });
  });

  it('refuses an unknown stream with LC005', async () => {
    await expect(exportToBuffer({ db: db.pool, stream: 'nope', format: 'csv' })).rejects.toMatchObject({ code: 'LC005' });
  });

  it('joins the caller transaction through a savepoint and leaves it usable', async () => {
    const client: pg.Client = await db.connect();
    await client.query('begin');
    await client.query(`select 1`);
    const { result } = await exportToBuffer({ db: client, stream: 'csv', format: 'csv' });
    expect(result.rows).toBe(12);
    expect((await client.query('select 2 as two')).rows[0].two).toBe(2);
    await client.query('commit');
  });

  describe('an exported file verifies offline, CSV and NDJSON', () => {
    for (const format of ['csv', 'ndjson'] as const) {
      it(`${format}: written to a file, verified from the path with the expected head`, async () => {
        const file = path.join(dir, `stable.${format}`);
        const result = await exportEvents({ db: db.pool, stream: 'stable', format, output: file });
        expect(await verifyOfflineFile({ path: file, expectedHead: { seq: result.headSeq, hash: result.headHash } })).toEqual({
          stream: 'stable',
          ok: true,
          checked: result.rows,
          firstBadSeq: null,
          problem: null,
          detail: null,
        });
      });
    }
  });

  describe('a tampered database, exported and verified from the file, reports what chainlog.verify() reports', () => {
    for (const [i, scenario] of scenarios.entries()) {
      it(`${scenario.name}`, async () => {
        const stream = `tamper-${i}`;
        await seedStream(db.pool, stream, scenario.length);
        await scenario.apply(db.pool, stream);
        const sql = (await db.query('select ok, first_bad_seq::int, problem from chainlog.verify($1)', [stream])).rows[0];
        for (const format of ['csv', 'ndjson'] as const) {
          const { bytes, result } = await exportToBuffer({ db: db.pool, stream, format });
          const report = await verifyOfflineFile({
            input: Readable.from([bytes]),
            format,
            expectedHead: { seq: result.headSeq, hash: result.headHash },
          });
          if (result.headSeq < scenario.length + 1 && scenario.expected.firstBadSeq > result.headSeq) {
            // The forged event lies beyond the recorded head, so it is not part of the export: the
            // exported chain itself is intact.
            expect(report, format).toMatchObject({ ok: true, checked: result.headSeq });
          } else {
            expect(report, format).toMatchObject({ ok: sql.ok, problem: sql.problem, firstBadSeq: sql.first_bad_seq });
          }
        }
      });
    }
  });
});

describe('an export that stops partway leaves its database session usable', () => {
  // Enough events for the COPY to span many chunks (megabytes): it is still running when the consumer fails.
  const BIG = 'stopped-big';
  beforeAll(() => seedStream(db.pool, BIG, 30_000));

  /** A pool of one connection: a session never given back leaves it unable to answer. */
  async function withOnePool(fn: (pool: pg.Pool) => Promise<void>): Promise<void> {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      await fn(pool);
    } finally {
      await settlesWithin(pool.end()).catch(() => {});
    }
  }

  const answers = async (session: pg.Pool | pg.Client) => (await settlesWithin(session.query('select 1 as one'))).rows[0].one;

  /** An output that takes the first chunk and fails on the second. */
  function failingOutput(error: Error): Writable {
    let writes = 0;
    return new Writable({ write: (_chunk, _encoding, done) => done(++writes > 1 ? error : null) });
  }

  it('an output that fails after the first chunk: rejects with that failure, and the pool still answers', async () => {
    const failure = new Error('disk went away');
    await withOnePool(async (pool) => {
      const e = await settlesWithin(exportEvents({ db: pool, stream: BIG, format: 'ndjson', output: failingOutput(failure) }).catch((x: unknown) => x));
      expect(e).toBeInstanceOf(ChainlogError);
      expect(e).toMatchObject({ code: 'CHAINLOG_OUTPUT', cause: failure });
      expect(await answers(pool)).toBe(1);
    });
  });

  for (const format of ['csv', 'ndjson'] as const) {
    it(`${format}: an onProgress that throws: rejects with its error, and the pool still answers`, async () => {
      const boom = new Error('progress bar crashed');
      await withOnePool(async (pool) => {
        const output = new PassThrough().resume();
        const onProgress = () => {
          throw boom;
        };
        await expect(settlesWithin(exportEvents({ db: pool, stream: BIG, format, output, onProgress }))).rejects.toBe(boom);
        expect(await answers(pool)).toBe(1);
      });
    });
  }

  it('a client passed as db keeps working, in the transaction it was in', async () => {
    const boom = new Error('progress bar crashed');
    const onProgress = () => {
      throw boom;
    };
    const client = await db.connect();
    const output = () => new PassThrough().resume();
    await expect(settlesWithin(exportEvents({ db: client, stream: BIG, format: 'csv', output: output(), onProgress }))).rejects.toBe(boom);
    expect(await answers(client)).toBe(1);
    expect(client.getTransactionStatus()).toBe('I');

    await client.query('begin');
    const txid = (await client.query('select pg_catalog.txid_current() as id')).rows[0].id;
    await expect(settlesWithin(exportEvents({ db: client, stream: BIG, format: 'ndjson', output: output(), onProgress }))).rejects.toBe(boom);
    expect((await settlesWithin(client.query('select pg_catalog.txid_current() as id'))).rows[0].id).toBe(txid);
    expect(client.getTransactionStatus()).toBe('T');
    await client.query('commit');
  });

  it('an output that fails with EPIPE is the output\'s error, not a lost database connection, and the session stays in the pool', async () => {
    await seedStream(db.pool, 'epipe', 3);
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' });
    const output = new Writable({ write: (_chunk, _encoding, done) => done(epipe) });
    await withOnePool(async (pool) => {
      const backend = async () => (await settlesWithin(pool.query('select pg_catalog.pg_backend_pid() as pid'))).rows[0].pid;
      const before = await backend();
      const e = await settlesWithin(exportEvents({ db: pool, stream: 'epipe', format: 'csv', output }).catch((x: unknown) => x));
      expect(e).toBeInstanceOf(ChainlogError);
      expect(e).not.toBeInstanceOf(ChainlogConnectionError);
      expect(e).toMatchObject({ code: 'EPIPE', cause: epipe });
      expect((e as Error).message).toMatch(/^could not write the export to the output stream: write EPIPE\. Nothing is wrong with the database/);
      // Not discarded as broken: the same session answers.
      expect(await backend()).toBe(before);
    });
  });
});
