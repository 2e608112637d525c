import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { exportEvents } from '../src/export.js';
import { verifyOffline, verifyOfflineFile, type VerifyReport } from '../src/offline-verify.js';
import { useChainlogDatabase } from './support/db.js';
import { asAttacker, scenarios, seedStream } from './support/tamper.js';
import { VECTORS_PATH, type VectorFile } from './vectors/generate.js';

const db = useChainlogDatabase();

/** A stream exported into memory: its bytes, and the head exportEvents() reports. */
async function exported(stream: string, format: 'csv' | 'ndjson') {
  const chunks: Buffer[] = [];
  const out = new PassThrough();
  out.on('data', (c: Buffer) => chunks.push(c));
  const result = await exportEvents({ db: db.pool, stream, format, output: out });
  return { bytes: Buffer.concat(chunks), expectedHead: { seq: result.headSeq, hash: result.headHash } };
}

/** The bytes as a stream of one-byte chunks: every value and line ends at a chunk boundary somewhere. */
function byteByByte(bytes: Buffer): Readable {
  return Readable.from((function* () {
    for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1);
  })());
}

/** chainlog.verify() in the report shape of verifyOffline(). */
async function sqlVerify(stream: string, upToSeq?: number): Promise<VerifyReport> {
  const { rows } = await db.query(
    'select ok, checked::int, first_bad_seq::int, problem, detail from chainlog.verify($1, $2)',
    [stream, upToSeq ?? null],
  );
  const r = rows[0];
  return { stream, ok: r.ok, checked: r.checked, firstBadSeq: r.first_bad_seq, problem: r.problem, detail: r.detail };
}

describe('verifyOffline() from the database', () => {
  it('reports an intact stream as ok with every event checked, like chainlog.verify()', async () => {
    await seedStream(db.pool, 'intact', 40);
    const report = await verifyOffline({ db: db.pool, stream: 'intact' });
    expect(report).toEqual({ stream: 'intact', ok: true, checked: 40, firstBadSeq: null, problem: null, detail: null });
    expect(report).toEqual(await sqlVerify('intact'));
    // The same with the hashes recomputed on worker threads (the default for 10,000 events or more).
    expect(await verifyOffline({ db: db.pool, stream: 'intact', workers: 2 })).toEqual(report);
  });

  it('refuses a workers count that is not an integer >= 0', async () => {
    await expect(verifyOffline({ db: db.pool, stream: 'intact', workers: -1 })).rejects.toMatchObject({ code: 'CHAINLOG_INVALID_ARGUMENT' });
  });

  it('verifies a prefix with upToSeq', async () => {
    await seedStream(db.pool, 'prefix', 10);
    expect(await verifyOffline({ db: db.pool, stream: 'prefix', upToSeq: 4 })).toEqual(await sqlVerify('prefix', 4));
    expect(await verifyOffline({ db: db.pool, stream: 'prefix', upToSeq: 4 })).toMatchObject({ ok: true, checked: 4 });
  });

  it('recomputes events holding every kind of value in the format vectors, from the database and from both exports', async () => {
    // The vectors' values (unicode, IPv6, BC and far-future timestamps, JSON null, empty strings ...)
    // chained by the trigger, then verified through COPY's binary form and through CSV and NDJSON text.
    const vectors = (JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as VectorFile).vectors;
    for (const { input: v } of vectors) {
      await db.query(
        `insert into chainlog.events (stream, actor, actor_type, event_type, action, result, resource_type, resource_id,
                                      source_ip, request_id, occurred_at, payload, before, after)
         values ('varied', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
        [v.actor, v.actor_type, v.event_type, v.action, v.result, v.resource_type, v.resource_id, v.source_ip ?? '192.0.2.99',
         v.request_id, v.occurred_at, v.payload, v.before, v.after],
      );
    }
    const intact = { stream: 'varied', ok: true, checked: vectors.length, firstBadSeq: null, problem: null, detail: null };
    expect(await verifyOffline({ db: db.pool, stream: 'varied' })).toEqual(intact);
    for (const format of ['csv', 'ndjson'] as const) {
      const { bytes, expectedHead } = await exported('varied', format);
      expect(await verifyOfflineFile({ input: Readable.from([bytes]), format, expectedHead }), format).toEqual(intact);
    }
  });

  it('reports progress as rows arrive', async () => {
    await seedStream(db.pool, 'progress', 300);
    const seen: number[] = [];
    await verifyOffline({ db: db.pool, stream: 'progress', onProgress: (p) => seen.push(p.rows) });
    expect(seen.at(-1)).toBe(300);
  });

  it('numbers its passes in progress: a chain the worker threads find broken is read again, from row 0', async () => {
    await seedStream(db.pool, 'progress-passes', 2000);
    const passes = async () => {
      const seen: { rows: number; pass: number }[] = [];
      const report = await verifyOffline({ db: db.pool, stream: 'progress-passes', workers: 1, onProgress: ({ rows, pass }) => seen.push({ rows, pass }) });
      return { report, seen };
    };
    const intact = await passes();
    expect(intact.report.ok).toBe(true);
    expect(new Set(intact.seen.map((p) => p.pass))).toEqual(new Set([1]));

    await asAttacker(db.pool, `update chainlog.events set actor = 'mallory' where stream = 'progress-passes' and seq = 1500`);
    const broken = await passes();
    expect(broken.report).toMatchObject({ ok: false, firstBadSeq: 1500 });
    const second = broken.seen.filter((p) => p.pass === 2);
    expect(broken.seen.slice(0, broken.seen.length - second.length).every((p) => p.pass === 1)).toBe(true);
    expect(second.length).toBeGreaterThan(0);
    expect(second[0]!.rows).toBeLessThan(broken.seen[broken.seen.length - second.length - 1]!.rows);
  });

  it('refuses an unknown stream with LC005, like chainlog.verify()', async () => {
    await expect(verifyOffline({ db: db.pool, stream: 'no-such-stream' })).rejects.toMatchObject({ code: 'LC005' });
  });

  it('refuses a negative upToSeq before touching the database', async () => {
    await expect(verifyOffline({ db: db.pool, stream: 'intact', upToSeq: -1 })).rejects.toMatchObject({
      code: 'CHAINLOG_INVALID_ARGUMENT',
    });
  });

  describe('agrees with chainlog.verify() on every kind of tampering (problem, first bad seq, checked, detail)', () => {
    for (const [i, scenario] of scenarios.entries()) {
      it(`${scenario.name}: ${scenario.expected.problem} at seq ${scenario.expected.firstBadSeq}`, async () => {
        const stream = `tamper-${i}`;
        await seedStream(db.pool, stream, scenario.length);
        await scenario.apply(db.pool, stream);
        const offline = await verifyOffline({ db: db.pool, stream });
        expect(offline).toMatchObject({ ok: false, ...scenario.expected });
        expect(offline).toEqual(await sqlVerify(stream));
        // Worker threads find that something is wrong; the scan that names it is the same.
        expect(await verifyOffline({ db: db.pool, stream, workers: 1 })).toEqual(offline);
      });
    }
  });

  it('does not rely on chainlog functions: replaced by an attacker, they cannot hide tampering', async () => {
    await seedStream(db.pool, 'sabotaged', 10);
    await asAttacker(db.pool, `update chainlog.events set actor = 'mallory' where stream = 'sabotaged' and seq = 7`);
    const client = await db.connect();
    await client.query('begin');
    // In the caller's open transaction (joined through a savepoint), and rolled back afterwards.
    await client.query(`
      create or replace function chainlog.verify(stream text, up_to_seq bigint default null)
        returns table (ok boolean, checked bigint, first_bad_seq bigint, problem text, detail text)
        language sql as $$ select true, 10::bigint, null::bigint, null::text, null::text $$;
      create or replace function chainlog.data_digest(payload jsonb, before jsonb, after jsonb) returns bytea
        language plpgsql as $$ begin raise exception 'sabotaged'; end $$;
      create or replace function chainlog.genesis_hash() returns bytea
        language plpgsql as $$ begin raise exception 'sabotaged'; end $$`);
    try {
      expect((await client.query(`select ok from chainlog.verify('sabotaged')`)).rows[0].ok).toBe(true);
      const report = await verifyOffline({ db: client, stream: 'sabotaged' });
      expect(report).toMatchObject({ ok: false, problem: 'modified', firstBadSeq: 7 });
      // The caller's transaction is still usable and its settings untouched.
      expect((await client.query('show timezone')).rows[0].TimeZone).not.toBe('UTC_pinned');
    } finally {
      await client.query('rollback');
    }
  });

  it('inside the transaction appending several events to the stream, agrees with chainlog.verify(): ok', async () => {
    await seedStream(db.pool, 'own-tx', 2);
    const client = await db.connect(); // closed with the file's other clients
    await client.query('begin');
    for (let i = 0; i < 3; i++) await client.query(`select chainlog.append('E', 'CREATE', 'own-tx')`);
    // The head is recorded at commit: inside, the view says so; outside, nobody sees it pending.
    const inside = await client.query(`select head_seq::int, head_pending from chainlog.streams where stream = 'own-tx'`);
    expect(inside.rows).toEqual([{ head_seq: 3, head_pending: true }]);
    const outside = await db.query(`select head_seq::int, head_pending from chainlog.streams where stream = 'own-tx'`);
    expect(outside.rows).toEqual([{ head_seq: 2, head_pending: false }]);
    const sql = (await client.query(`select ok, checked::int from chainlog.verify('own-tx')`)).rows[0];
    expect(sql).toEqual({ ok: true, checked: 5 });
    expect(await verifyOffline({ db: client, stream: 'own-tx' })).toMatchObject({ ok: true, checked: 5, problem: null });
    await client.query('commit');
    expect(await verifyOffline({ db: db.pool, stream: 'own-tx' })).toMatchObject({ ok: true, checked: 5 });
  });

  it('leaves a client joined inside a transaction with its own session settings', async () => {
    const client = await db.connect();
    await client.query(`set timezone = 'Asia/Tokyo'`);
    await client.query('begin');
    await verifyOffline({ db: client, stream: 'intact' });
    expect((await client.query('show timezone')).rows[0].TimeZone).toBe('Asia/Tokyo');
    await client.query('commit');
    await verifyOffline({ db: client, stream: 'intact' });
    expect((await client.query('show timezone')).rows[0].TimeZone).toBe('Asia/Tokyo');
  });
});

describe('verifyOfflineFile() from an export', () => {
  it('verifies an intact CSV and NDJSON export, with and without the expected head', async () => {
    await seedStream(db.pool, 'file-intact', 25);
    for (const format of ['csv', 'ndjson'] as const) {
      const { bytes, expectedHead } = await exported('file-intact', format);
      const expected = { stream: 'file-intact', ok: true, checked: 25, firstBadSeq: null, problem: null, detail: null };
      expect(await verifyOfflineFile({ input: Readable.from([bytes]), format })).toEqual(expected);
      expect(await verifyOfflineFile({ input: Readable.from([bytes]), format, expectedHead })).toEqual(expected);
    }
  });

  it('a file cut short verifies only against the expected head: truncated', async () => {
    await seedStream(db.pool, 'file-cut', 10);
    const { bytes, expectedHead } = await exported('file-cut', 'ndjson');
    const lines = bytes.toString('utf8').split('\n').slice(0, 6).join('\n') + '\n';
    expect(await verifyOfflineFile({ input: Readable.from([Buffer.from(lines)]), format: 'ndjson' })).toMatchObject({ ok: true, checked: 6 });
    expect(
      await verifyOfflineFile({
        input: Readable.from([Buffer.from(lines)]),
        format: 'ndjson',
        expectedHead,
      }),
    ).toMatchObject({ ok: false, problem: 'truncated', firstBadSeq: 7 });
  });

  it('an edit made to the file itself is found: modified', async () => {
    await seedStream(db.pool, 'file-edit', 10);
    const { bytes } = await exported('file-edit', 'csv');
    const edited = Buffer.from(bytes.toString('utf8').replace('seed event 6"', 'seed event 7"'));
    expect(await verifyOfflineFile({ input: Readable.from([edited]), format: 'csv' })).toMatchObject({
      ok: false,
      problem: 'modified',
      firstBadSeq: 6,
    });
  });

  it('verifies a file given by path on worker threads, and still names an edit made to it', async () => {
    await seedStream(db.pool, 'file-workers', 30);
    const dir = mkdtempSync(join(tmpdir(), 'chainlog-verify-'));
    try {
      for (const format of ['csv', 'ndjson'] as const) {
        const path = join(dir, `events.${format}`);
        const { headSeq, headHash } = await exportEvents({ db: db.pool, stream: 'file-workers', format, output: path });
        const expectedHead = { seq: headSeq, hash: headHash };
        expect(await verifyOfflineFile({ path, expectedHead, workers: 1 })).toMatchObject({ ok: true, checked: 30 });
        writeFileSync(path, readFileSync(path, 'utf8').replace('seed event 12"', 'seed event 13"'));
        const edited = await verifyOfflineFile({ path, expectedHead, workers: 1 });
        expect(edited).toMatchObject({ ok: false, problem: 'modified', firstBadSeq: 12, checked: 11 });
        expect(edited).toEqual(await verifyOfflineFile({ path, expectedHead, workers: 0 }));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads NDJSON whose lines carry keys it does not know, before and among its own', async () => {
    await seedStream(db.pool, 'file-keys', 6);
    const lines = (await exported('file-keys', 'ndjson')).bytes.toString('utf8').trimEnd().split('\n');
    const extended = lines.map((l) => l.replace(/^\{/, '{"note": "added", ').replace('"actor":', '"extra": [1, {"a": "}"}], "actor":'));
    expect(extended[0]).toMatch(/^\{"note": "added", .*"extra": \[1, .*"actor":/);
    expect(await verifyOfflineFile({ input: Readable.from([Buffer.from(extended.join('\n') + '\n')]), format: 'ndjson' })).toMatchObject({
      ok: true,
      checked: 6,
    });
    const edited = extended.map((l, i) => (i === 2 ? l.replace('seed event 3"', 'seed event 4"') : l));
    expect(await verifyOfflineFile({ input: Readable.from([Buffer.from(edited.join('\n') + '\n')]), format: 'ndjson' })).toMatchObject({
      ok: false,
      problem: 'modified',
      firstBadSeq: 3,
    });
  });

  it('parses a file fed in one-byte chunks like one fed at once', async () => {
    await seedStream(db.pool, 'file-bytes', 5);
    await db.query(
      `insert into chainlog.events (stream, actor, event_type, action, resource_id, payload)
       values ('file-bytes', E'tab\\there, "quoted"\\nnewline', 'X', 'CREATE', E'back\\\\slash', '{"k": "é\\\\u0001 \\"q\\""}')`,
    );
    for (const format of ['csv', 'ndjson'] as const) {
      const { bytes } = await exported('file-bytes', format);
      expect(await verifyOfflineFile({ input: byteByByte(bytes), format })).toMatchObject({ ok: true, checked: 6 });
    }
  });

  it('reads a CSV file whose lines end in CRLF, at once and byte by byte, and still finds an edit', async () => {
    await seedStream(db.pool, 'file-crlf', 5);
    // The seeded values hold no newline, so every LF ends a line.
    const crlf = Buffer.from((await exported('file-crlf', 'csv')).bytes.toString('utf8').replace(/\n/g, '\r\n'));
    expect(await verifyOfflineFile({ input: Readable.from([crlf]), format: 'csv' })).toMatchObject({ ok: true, checked: 5 });
    expect(await verifyOfflineFile({ input: byteByByte(crlf), format: 'csv' })).toMatchObject({ ok: true, checked: 5 });
    const edited = Buffer.from(crlf.toString('utf8').replace('seed event 4"', 'seed event 5"'));
    expect(await verifyOfflineFile({ input: byteByByte(edited), format: 'csv' })).toMatchObject({ ok: false, problem: 'modified', firstBadSeq: 4 });
  });
});
