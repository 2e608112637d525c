import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { ChainlogError, ChainlogFileFormatError } from '../src/errors.js';
import { exportEvents } from '../src/export.js';
import { verifyOffline, verifyOfflineFile } from '../src/offline-verify.js';
import { useChainlogDatabase } from './support/db.js';
import { settlesWithin } from './support/settles.js';
import { asAttacker, scenarios, seedStream, sqlVerifyReport } from './support/tamper.js';
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

const sqlVerify = (stream: string, upToSeq?: number) => sqlVerifyReport(db.pool, stream, upToSeq);

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

  it('agrees with chainlog.verify() on events missing within upToSeq when the stream goes on past it (deleted), and on a cut end', async () => {
    await seedStream(db.pool, 'gap-within', 10);
    await asAttacker(db.pool, `delete from chainlog.events where stream = 'gap-within' and seq in (5, 6, 7)`);
    await seedStream(db.pool, 'cut-within', 10);
    await asAttacker(db.pool, `delete from chainlog.events where stream = 'cut-within' and seq > 7`);
    for (const [stream, upToSeq] of [['gap-within', 4], ['gap-within', 5], ['gap-within', 8], ['cut-within', 9]] as const) {
      expect(await verifyOffline({ db: db.pool, stream, upToSeq })).toEqual(await sqlVerify(stream, upToSeq));
    }
    expect(await verifyOffline({ db: db.pool, stream: 'gap-within', upToSeq: 6 })).toMatchObject({
      ok: false, checked: 4, firstBadSeq: 5, problem: 'deleted', detail: 'events 5..7 are missing',
    });
  });

  it('recomputes events holding every kind of value in the format vectors, from the database and from both exports', async () => {
    // The vectors' values (unicode, IPv6, BC and far-future timestamps, JSON null, empty strings ...)
    // chained by the trigger, then verified through COPY's binary form and through CSV and NDJSON text.
    // Not the infinite occurred_at ones: the trigger refuses those (test/format.test.ts checks their bytes).
    const vectors = (JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as VectorFile).vectors
      .filter(({ input }) => !/infinity/.test(input.occurred_at ?? ''));
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

  it('agrees with chainlog.verify() on a stream without a recorded head, whatever its chain: an event moved to a stream of its own', async () => {
    await seedStream(db.pool, 'moved-from', 5);
    await asAttacker(db.pool, `update chainlog.events set stream = 'moved-to' where stream = 'moved-from' and seq = 5`);
    const offline = await verifyOffline({ db: db.pool, stream: 'moved-to' });
    expect(offline).toMatchObject({ ok: false, firstBadSeq: 1, problem: 'inserted', checked: 0 });
    expect(offline).toEqual(await sqlVerify('moved-to'));
    expect(await verifyOffline({ db: db.pool, stream: 'moved-from' })).toEqual(await sqlVerify('moved-from'));
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

  it('joined inside a READ COMMITTED transaction, an append committed between its reads is not reported as tampering', async () => {
    await seedStream(db.pool, 'read-committed', 50);
    const append = () => db.query(`select chainlog.append('E', 'CREATE', 'read-committed')`);
    const client = await db.connect();
    // verifyOffline reads the recorded head, then the rows: one round trip apart. This holds the head's
    // answer back until another session has committed an append, so that the rows read next hold it.
    const query = client.query;
    let holdHeadRead = false;
    let appended = 0;
    const appendAfterHeadRead = (...args: unknown[]) => {
      const result = (query as (...a: unknown[]) => unknown).apply(client, args);
      if (!holdHeadRead || typeof args[0] !== 'string' || !args[0].includes('chainlog.streams')) return result;
      holdHeadRead = false;
      return (result as Promise<unknown>).then(async (r) => {
        await append();
        appended++;
        return r;
      });
    };
    Object.assign(client, { query: appendAfterHeadRead });
    try {
      await client.query('begin'); // READ COMMITTED: each statement sees what was committed when it started
      holdHeadRead = true;
      const e = await verifyOffline({ db: client, stream: 'read-committed' }).catch((x: unknown) => x);
      expect(appended).toBe(1);
      expect(e).toBeInstanceOf(ChainlogError);
      expect(e).toMatchObject({ code: 'CHAINLOG_CONCURRENT_APPEND' });
      expect((e as Error).message).toMatch(/^stream "read-committed" was appended to while verifyOffline read it in a READ COMMITTED transaction \(its recorded head went from seq 50 to seq 51\)/);
      expect((e as ChainlogError).hint).toMatch(/pool.*REPEATABLE READ/);
      // The caller's transaction is still usable.
      expect(client.getTransactionStatus()).toBe('T');
      await client.query('rollback');

      // In REPEATABLE READ the head and the rows come from one snapshot: the append is simply not seen.
      await client.query('begin isolation level repeatable read');
      holdHeadRead = true;
      expect(await verifyOffline({ db: client, stream: 'read-committed' })).toMatchObject({ ok: true, checked: 51 });
      expect(appended).toBe(2);
      await client.query('rollback');
    } finally {
      Object.assign(client, { query });
    }
    expect(await verifyOffline({ db: db.pool, stream: 'read-committed' })).toMatchObject({ ok: true, checked: 52 });
  });
});

describe('verifyOffline() stopped partway leaves its database session usable', () => {
  // Enough events for the COPY to span many chunks (megabytes): it is still running when onProgress throws.
  const BIG = 'stopped-big';
  beforeAll(() => seedStream(db.pool, BIG, 30_000));
  const boom = new Error('progress bar crashed');
  const onProgress = () => {
    throw boom;
  };
  const answers = async (session: pg.Pool | pg.Client) => (await settlesWithin(session.query('select 1 as one'))).rows[0].one;

  it('an onProgress that throws: rejects with its error, and a pool of one connection still answers', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      for (const workers of [0, 1]) {
        await expect(settlesWithin(verifyOffline({ db: pool, stream: BIG, workers, onProgress }))).rejects.toBe(boom);
        expect(await answers(pool)).toBe(1);
      }
    } finally {
      await settlesWithin(pool.end()).catch(() => {});
    }
  });

  it('a client passed as db keeps working, in the transaction it was in', async () => {
    const client = await db.connect();
    await expect(settlesWithin(verifyOffline({ db: client, stream: BIG, onProgress }))).rejects.toBe(boom);
    expect(await answers(client)).toBe(1);
    expect(client.getTransactionStatus()).toBe('I');

    await client.query('begin');
    const txid = (await client.query('select pg_catalog.txid_current() as id')).rows[0].id;
    await expect(settlesWithin(verifyOffline({ db: client, stream: BIG, onProgress }))).rejects.toBe(boom);
    expect((await settlesWithin(client.query('select pg_catalog.txid_current() as id'))).rows[0].id).toBe(txid);
    expect(client.getTransactionStatus()).toBe('T');
    await client.query('commit');
    expect(await verifyOffline({ db: client, stream: BIG })).toMatchObject({ ok: true, checked: 30_000 });
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

  it('takes the expected head as chainlog.export() returns it: the seq as a decimal string, or a bigint', async () => {
    await seedStream(db.pool, 'file-string-head', 4);
    const { bytes, expectedHead } = await exported('file-string-head', 'csv');
    for (const seq of [String(expectedHead.seq), BigInt(expectedHead.seq)]) {
      expect(await verifyOfflineFile({ input: Readable.from([bytes]), format: 'csv', expectedHead: { seq, hash: expectedHead.hash } }))
        .toMatchObject({ ok: true, checked: 4 });
    }
    for (const seq of ['4.0', '-1', ' 4', '']) {
      await expect(verifyOfflineFile({ input: Readable.from([bytes]), format: 'csv', expectedHead: { seq, hash: expectedHead.hash } }), seq)
        .rejects.toMatchObject({ code: 'CHAINLOG_INVALID_ARGUMENT' });
    }
  });

  it('an input that cannot be read is a ChainlogError naming it with the system error, not a malformed file', async () => {
    // Reading /proc/self/mem from offset 0 fails with EIO, as a failing disk would.
    const fromPath = await verifyOfflineFile({ path: '/proc/self/mem', format: 'ndjson' }).catch((e: unknown) => e);
    expect(fromPath).toBeInstanceOf(ChainlogError);
    expect(fromPath).not.toBeInstanceOf(ChainlogFileFormatError);
    expect(fromPath).toMatchObject({ code: 'EIO', message: expect.stringMatching(/^could not read the file "\/proc\/self\/mem": /) });
    const failing = new Readable({
      read() {
        this.destroy(new Error('the network share went away'));
      },
    });
    await expect(verifyOfflineFile({ input: failing, format: 'csv' })).rejects.toMatchObject({
      code: 'CHAINLOG_INPUT',
      message: expect.stringContaining('could not read the input stream: the network share went away'),
    });
  });

  it('with upToSeq, names events missing within it when the file goes on past it: deleted', async () => {
    await seedStream(db.pool, 'file-gap-up-to', 7);
    const lines = (await exported('file-gap-up-to', 'ndjson')).bytes.toString('utf8').trimEnd().split('\n');
    // Events 4 and 5 deleted from the file; 6 and 7 remain.
    const gapped = Buffer.from([...lines.slice(0, 3), ...lines.slice(5)].join('\n') + '\n');
    const verify = (upToSeq?: number) => verifyOfflineFile({ input: Readable.from([gapped]), format: 'ndjson', upToSeq });
    const deleted = { ok: false, checked: 3, firstBadSeq: 4, problem: 'deleted', detail: 'events 4..5 are missing' };
    expect(await verify()).toMatchObject(deleted);
    expect(await verify(5)).toMatchObject(deleted);
    expect(await verify(4)).toMatchObject(deleted);
    expect(await verify(3)).toMatchObject({ ok: true, checked: 3 });
  });

  it('reads a pipe once, even when workers are asked for: the problem in it is still named', async () => {
    await seedStream(db.pool, 'file-pipe', 30);
    const { bytes, expectedHead } = await exported('file-pipe', 'csv');
    const edited = Buffer.from(bytes.toString('utf8').replace('seed event 12"', 'seed event 13"'));
    const dir = mkdtempSync(join(tmpdir(), 'chainlog-pipe-'));
    try {
      const fifo = join(dir, 'events.csv');
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      // The writer opens the pipe once and closes it: a second read of it would wait for another writer.
      const writer = new Promise<void>((resolve, reject) => {
        const out = createWriteStream(fifo);
        out.on('error', reject);
        out.end(edited, resolve);
      });
      const report = await verifyOfflineFile({ path: fifo, expectedHead, workers: 1 });
      await writer;
      expect(report).toMatchObject({ ok: false, problem: 'modified', firstBadSeq: 12, checked: 11 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses NDJSON whose lines carry keys it does not know, before or among its own, naming the line and key', async () => {
    await seedStream(db.pool, 'file-keys', 6);
    const lines = (await exported('file-keys', 'ndjson')).bytes.toString('utf8').trimEnd().split('\n');
    const feed = (edited: string[]) => verifyOfflineFile({ input: Readable.from([Buffer.from(edited.join('\n') + '\n')]), format: 'ndjson' });
    const before = lines.map((l, i) => (i === 2 ? l.replace(/^\{/, '{"note": "added", ') : l));
    await expect(feed(before)).rejects.toMatchObject({ code: 'CHAINLOG_BAD_FILE', line: 3, seq: undefined, field: 'note' });
    await expect(feed(before)).rejects.toThrow(/line 3\b.*unknown key "note"/);
    const among = lines.map((l, i) => (i === 4 ? l.replace('"actor":', '"extra": [1, {"a": "}"}], "actor":') : l));
    await expect(feed(among)).rejects.toMatchObject({ code: 'CHAINLOG_BAD_FILE', line: 5, field: 'extra' });
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

describe('verifyOfflineFile() reads a file only as an export writes it: anything the hashes do not cover is refused', () => {
  /** Lines of a stream's export (no trailing empty line). */
  async function exportedLines(stream: string, format: 'csv' | 'ndjson', count = 5): Promise<string[]> {
    await seedStream(db.pool, stream, count);
    return (await exported(stream, format)).bytes.toString('utf8').trimEnd().split('\n');
  }
  const feed = (lines: string[] | Buffer, format: 'csv' | 'ndjson', more: { stream?: string } = {}) =>
    verifyOfflineFile({ input: Readable.from([Buffer.isBuffer(lines) ? lines : Buffer.from(lines.join('\n') + '\n')]), format, ...more });
  const edit = (lines: string[], index: number, fn: (line: string) => string) => lines.map((l, i) => (i === index ? fn(l) : l));
  const refusal = async (promise: Promise<unknown>): Promise<ChainlogFileFormatError> => {
    const e = await promise.then(
      (report) => { throw new Error(`verified instead of refusing: ${JSON.stringify(report)}`); },
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(ChainlogFileFormatError);
    expect(e).toBeInstanceOf(ChainlogError);
    expect(e).toMatchObject({ code: 'CHAINLOG_BAD_FILE' });
    return e as ChainlogFileFormatError;
  };

  it('NDJSON: a key written with escapes is the key a JSON reader sees (a hidden "after" is read, a second "actor" refused)', async () => {
    const lines = await exportedLines('strict-escaped-keys', 'ndjson');
    // The reviewer's file: every JSON reader sees after = {"role":"viewer"} in event 3.
    const hidden = edit(lines, 2, (l) => l.replace('"format_version"', '"\\u0061fter":{"role":"viewer"},"format_version"'));
    expect(JSON.parse(hidden[2]!).after).toEqual({ role: 'viewer' });
    expect(await feed(hidden, 'ndjson')).toMatchObject({ ok: false, problem: 'modified', firstBadSeq: 3 });
    // The same key twice, once escaped.
    const twice = edit(lines, 1, (l) => l.replace('"actor":', '"\\u0061ctor":"mallory@example.com","actor":'));
    const e = await refusal(feed(twice, 'ndjson'));
    expect(e).toMatchObject({ line: 2, field: 'actor' });
    expect(e.message).toMatch(/^line 2: the key "actor" appears twice/);
    // An escaped key on its own is just that key.
    expect(await feed(edit(lines, 1, (l) => l.replace('"actor":', '"\\u0061ctor":')), 'ndjson')).toMatchObject({ ok: true, checked: 5 });
  });

  it('NDJSON: a duplicate key is refused (readers disagree on which one counts)', async () => {
    const lines = await exportedLines('strict-dup-keys', 'ndjson');
    const e = await refusal(feed(edit(lines, 3, (l) => l.replace('"actor":', '"actor":"mallory@example.com","actor":')), 'ndjson'));
    expect(e).toMatchObject({ line: 4, field: 'actor' });
  });

  it('NDJSON: a line that is not strict JSON, or holds a value of the wrong JSON type, is refused with its line', async () => {
    await seedStream(db.pool, 'strict-json', 3);
    await db.query(`insert into chainlog.events (stream, event_type, action, resource_id) values ('strict-json', 'X', 'CREATE', E'a\\tb')`);
    const lines = (await exported('strict-json', 'ndjson')).bytes.toString('utf8').trimEnd().split('\n');
    expect(lines[3]).toContain('"resource_id":"a\\tb"');
    const cases: [string, number, (l: string) => string, RegExp][] = [
      ['an escape JSON does not have', 2, (l) => l.replace('"seed@example.com"', '"seed\\@example.com"'), /escape/],
      ['\\u without four hex digits', 2, (l) => l.replace('"seed@example.com"', '"seed\\u00zz@example.com"'), /escape/],
      ['a lone surrogate', 2, (l) => l.replace('"seed@example.com"', '"seed\\ud800@example.com"'), /surrogate/],
      ['a NUL character in text', 2, (l) => l.replace('"seed@example.com"', '"seed\\u0000@example.com"'), /NUL/],
      ['a raw control character in a string', 4, (l) => l.replace('a\\tb', 'a\tb'), /control character/],
      ['a missing comma', 2, (l) => l.replace(',"actor":', ' "actor":'), /expected "," or "}"/],
      ['a trailing comma', 2, (l) => l.replace(/\}$/, ',}'), /expected a key/],
      ['a second object glued on', 2, (l) => `${l}{"actor":"mallory@example.com"}`, /after the closing "}"/],
      ['seq as a string', 2, (l) => l.replace('"seq":2,', '"seq":"2",'), /seq.*number/],
      ['seq as 2.0', 2, (l) => l.replace('"seq":2,', '"seq":2.0,'), /seq/],
      ['format_version as a string of 16 digits', 2, (l) => l.replace('"format_version":1,', '"format_version":"0000000000065537",'), /format_version.*number/],
      ['format_version with a leading zero', 2, (l) => l.replace('"format_version":1,', '"format_version":01,'), /format_version/],
      ['a text value as a number', 2, (l) => l.replace('"resource_id":"2"', '"resource_id":2'), /resource_id.*string/],
      ['an id that is not an integer', 2, (l) => l.replace(/"id":\d+/, '"id":"x"'), /id.*number/],
      ['a key without quotes', 2, (l) => l.replace('"actor":', 'actor:'), /expected a key/],
      ['a missing column', 2, (l) => l.replace(/"hash":"[0-9a-f]+"/, '"hash":null'), /hash/],
    ];
    for (const [name, line, fn, message] of cases) {
      const e = await refusal(feed(edit(lines, line - 1, fn), 'ndjson'));
      expect(e.line, name).toBe(line);
      expect(e.message, name).toMatch(new RegExp(`^line ${line}\\b`));
      expect(e.message, name).toMatch(message);
    }
    // Whitespace between tokens, CRLF and blank lines are JSON a reader reads the same: still intact.
    // (payload's own text is hashed as it is: only the line's structure around it is spaced out.)
    const spaced = lines.map((l) => `{ ${l.slice(1, -1).replace(/,"/g, ' ,\t"').replace(/"(actor|seq|hash)":/g, '"$1" :\t')} }\r`).join('\n\n');
    expect(await feed(Buffer.from(spaced + '\n'), 'ndjson')).toMatchObject({ ok: true, checked: 4 });
  });

  it('CSV: the header must name exactly the export\'s columns, each once', async () => {
    const lines = await exportedLines('strict-header', 'csv');
    expect(lines[0]).toBe('id,stream,seq,recorded_at,occurred_at,actor,actor_type,event_type,action,result,resource_type,resource_id,source_ip,request_id,payload,before,after,format_version,data_digest,prev_hash,hash');
    const extra = lines.map((l, i) => `${l},${i === 0 ? 'note' : 'x'}`);
    expect(await refusal(feed(extra, 'csv'))).toMatchObject({ line: 1, field: 'note' });
    // A second actor placed first: a reader keyed by name may take either.
    const dup = lines.map((l, i) => `${i === 0 ? 'actor' : 'mallory@example.com'},${l}`);
    const e = await refusal(feed(dup, 'csv'));
    expect(e).toMatchObject({ line: 1, field: 'actor' });
    expect(e.message).toMatch(/"actor" appears twice/);
    const noId = lines.map((l) => l.replace(/^[^,]*,/, ''));
    expect(await refusal(feed(noId, 'csv'))).toMatchObject({ line: 1, field: 'id' });
  });

  it('CSV: quotes only around a whole value, carriage returns only before a newline', async () => {
    const lines = await exportedLines('strict-csv-quotes', 'csv');
    // Quoting a value that needs no quotes is still the same value.
    expect(await feed(edit(lines, 2, (l) => l.replace(',seed@example.com,', ',"seed@example.com",')), 'csv')).toMatchObject({ ok: true, checked: 5 });
    const cases: [string, (l: string) => string, RegExp][] = [
      ['text after a closing quote', (l) => l.replace(',seed@example.com,', ',"seed@exa"mple.com,'), /closing quote/],
      ['a quote inside an unquoted value', (l) => l.replace(',seed@example.com,', ',seed@"example".com,'), /quote/],
      ['a carriage return inside an unquoted value', (l) => l.replace(',seed@example.com,', ',seed@exa\rmple.com,'), /carriage return/],
    ];
    for (const [name, fn, message] of cases) {
      const e = await refusal(feed(edit(lines, 2, fn), 'csv'));
      expect(e, name).toMatchObject({ line: 3, field: 'actor' });
      expect(e.message, name).toMatch(message);
    }
  });

  it('integers are range-checked and must be written as PostgreSQL prints them: format_version, seq, id', async () => {
    const lines = await exportedLines('strict-integers', 'csv');
    const tail = /,1,(\\x[0-9a-f]{64},\\x[0-9a-f]{64},\\x[0-9a-f]{64})$/;
    expect(lines[2]).toMatch(tail);
    // 2^64 + 1 wrapped around to 1 and verified.
    for (const [value, message] of [['18446744073709551617', /out of range/], ['65537', /out of range/], ['01', /leading zero/], ['+1', /integer/]] as const) {
      const e = await refusal(feed(edit(lines, 2, (l) => l.replace(tail, `,${value},$1`)), 'csv'));
      expect(e, value).toMatchObject({ line: 3, seq: 2, field: 'format_version' });
      expect(e.message, value).toMatch(message);
    }
    for (const id of ['x', '99999999999999999999', '007']) {
      expect(await refusal(feed(edit(lines, 2, (l) => l.replace(/^\d+,/, `${id},`)), 'csv')), id).toMatchObject({ line: 3, field: 'id' });
    }
    expect(await refusal(feed(edit(lines, 2, (l) => l.replace(/^(\d+,[^,]+),2,/, '$1,02,')), 'csv'))).toMatchObject({ line: 3, field: 'seq' });
  });

  it('an error names the line, the seq and the field, counting lines inside quoted CSV values', async () => {
    await seedStream(db.pool, 'strict-where', 2);
    await db.query(`insert into chainlog.events (stream, event_type, action, resource_id) values ('strict-where', 'X', 'CREATE', E'two\\nlines')`);
    await seedStream(db.pool, 'strict-where', 2);
    const csv = (await exported('strict-where', 'csv')).bytes.toString('utf8').split('\n');
    // header (1), seq 1 (2), seq 2 (3), seq 3 (4-5), seq 4 (6), seq 5 (7)
    expect(csv[6]).toMatch(/^\d+,strict-where,5,/);
    csv[6] = csv[6]!.replace(/\\x[0-9a-f]{64}$/, '\\x12');
    const e = await refusal(feed(Buffer.from(csv.join('\n')), 'csv'));
    expect(e).toMatchObject({ line: 7, seq: 5, field: 'hash' });
    expect(e.message).toMatch(/^line 7 \(seq 5\), hash: /);

    const nd = (await exported('strict-where', 'ndjson')).bytes.toString('utf8').trimEnd().split('\n');
    const late = await refusal(feed(edit(nd, 3, (l) => l.replace('"recorded_at":"', '"recorded_at":"x')), 'ndjson'));
    expect(late).toMatchObject({ line: 4, seq: 4, field: 'recorded_at' });
    expect(late.message).toMatch(/^line 4 \(seq 4\), recorded_at: timestamptz/);
  });

  it('invalid UTF-8 in a text value is a format error naming the line and the field, not a decoder error', async () => {
    const lines = await exportedLines('strict-utf8', 'ndjson');
    const bytes = Buffer.from(lines.join('\n') + '\n');
    const at = bytes.indexOf('seed@example.com', bytes.indexOf('\n') + 1);
    const bad = Buffer.concat([bytes.subarray(0, at + 4), Buffer.from([0xff]), bytes.subarray(at + 5)]);
    const e = await refusal(feed(bad, 'ndjson'));
    expect(e).toMatchObject({ line: 2, seq: 2, field: 'actor' });
    expect(e.message).toMatch(/UTF-8/);
    // In the stream name of the first row.
    const first = bytes.indexOf('strict-utf8');
    const badStream = Buffer.concat([bytes.subarray(0, first), Buffer.from([0xc3, 0x28]), bytes.subarray(first + 2)]);
    expect(await refusal(feed(badStream, 'ndjson'))).toMatchObject({ line: 1, field: 'stream' });
  });

  it('a UTF-8 byte order mark at the start of the file is refused, saying so', async () => {
    await seedStream(db.pool, 'strict-bom', 3);
    for (const format of ['csv', 'ndjson'] as const) {
      const { bytes } = await exported('strict-bom', format);
      const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]);
      const e = await refusal(verifyOfflineFile({ input: byteByByte(withBom), format }));
      expect(e.message, format).toMatch(/byte order mark/);
      expect(e, format).toMatchObject({ line: 1 });
    }
  });

  it('a file holding several streams needs `stream`: without it the file is refused, naming two of them', async () => {
    await seedStream(db.pool, 'mix-other', 3);
    await seedStream(db.pool, 'mix-acme', 4);
    for (const format of ['csv', 'ndjson'] as const) {
      const other = (await exported('mix-other', format)).bytes.toString('utf8');
      const acme = (await exported('mix-acme', format)).bytes.toString('utf8');
      // `cat other acme`, keeping one CSV header.
      const both = Buffer.from(format === 'csv' ? other + acme.slice(acme.indexOf('\n') + 1) : other + acme);
      const e = await refusal(feed(both, format));
      expect(e.message, format).toMatch(/"mix-other" and "mix-acme"/);
      expect(e.message, format).toMatch(/--stream/);
      expect(e, format).toMatchObject({ line: format === 'csv' ? 5 : 4, field: 'stream' });
      expect(await feed(both, format, { stream: 'mix-acme' }), format).toMatchObject({ stream: 'mix-acme', ok: true, checked: 4 });
      expect(await feed(both, format, { stream: 'mix-other' }), format).toMatchObject({ stream: 'mix-other', ok: true, checked: 3 });
      await expect(feed(both, format, { stream: 'mix-none' }), format).rejects.toThrow(/no events of stream "mix-none"/);
    }
  });

  it('verify --file exits 2 with the error for a malformed file, and --json gives its code', async () => {
    const lines = await exportedLines('strict-cli', 'ndjson');
    const dir = mkdtempSync(join(tmpdir(), 'chainlog-strict-'));
    try {
      const file = join(dir, 'bad.ndjson');
      writeFileSync(file, edit(lines, 1, (l) => l.replace('"actor":', '"actor":"x","actor":')).join('\n') + '\n');
      const cli = (args: string[]) => spawnSync(process.execPath, [fileURLToPath(new URL('../cli/chainlog.js', import.meta.url)), ...args], { encoding: 'utf8' });
      const text = cli(['verify', '--file', file]);
      expect(text.status).toBe(2);
      expect(text.stderr).toMatch(/chainlog: line 2: the key "actor" appears twice/);
      const machine = cli(['verify', '--file', file, '--json']);
      expect(machine.status).toBe(2);
      expect(JSON.parse(machine.stdout).error).toMatchObject({ name: 'ChainlogFileFormatError', code: 'CHAINLOG_BAD_FILE' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('verifyOffline() throws a ChainlogError for a row it cannot encode, not a bare FormatError', async () => {
    await seedStream(db.pool, 'huge-seq', 2);
    // Past the CHECK that keeps seq below 2^53: only a superuser who drops it (and restores it unchecked) gets there.
    await asAttacker(db.pool, `set local chainlog.maintenance = on;
      alter table chainlog.events drop constraint events_seq_in_range;
      update chainlog.events set seq = 9007199254740993 where stream = 'huge-seq' and seq = 2;
      alter table chainlog.events add constraint events_seq_in_range check (seq between 1 and 9007199254740991) not valid`);
    const e = await verifyOffline({ db: db.pool, stream: 'huge-seq' }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ChainlogError);
    expect((e as ChainlogError).message).toMatch(/seq/);
  });

  it('lines out of seq order are reported as that, not as a broken link', async () => {
    const lines = await exportedLines('strict-order', 'ndjson', 10);
    const swapped = lines.map((l, i) => (i === 2 ? lines[3]! : i === 3 ? lines[2]! : l));
    expect(await feed(swapped, 'ndjson')).toEqual({
      stream: 'strict-order', ok: false, checked: 2, firstBadSeq: 3, problem: 'reordered',
      detail: 'line 4 holds event 3 after event 4: the file\'s lines are out of seq order, in which an export writes them',
    });
    // A copy of line 1 appended (or the export concatenated with itself).
    expect(await feed([...lines, lines[0]!], 'ndjson')).toEqual({
      stream: 'strict-order', ok: false, checked: 0, firstBadSeq: 1, problem: 'inserted',
      detail: 'line 11 repeats event 1: the file holds it twice',
    });
    expect(await feed([...lines, ...lines], 'ndjson')).toMatchObject({ ok: false, problem: 'inserted', firstBadSeq: 1 });
    // The same line twice in a row.
    expect(await feed([...lines.slice(0, 5), lines[4]!, ...lines.slice(5)], 'ndjson')).toEqual({
      stream: 'strict-order', ok: false, checked: 4, firstBadSeq: 5, problem: 'inserted',
      detail: 'line 6 repeats event 5: the file holds it twice',
    });
  });
});
