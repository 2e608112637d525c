// Checkpoints: a head recorded outside the database, checked against the stream as it is now (or an
// export of it). The
// attack they exist for: a superuser rewrites a chain to its end with recomputed hashes and moves the
// recorded head to match, which verify() alone cannot see.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCheckpoint } from '../src/checkpoint.js';
import { createChainlog } from '../src/client.js';
import { ChainlogInvalidArgumentError, ChainlogUnknownStreamError } from '../src/errors.js';
import { exportEvents } from '../src/export.js';
import { verifyOfflineFile } from '../src/offline-verify.js';
import { useChainlogDatabase } from './support/db.js';
import { asAttacker, chainRecomputedFrom, seedStream } from './support/tamper.js';

const db = useChainlogDatabase();
const log = () => createChainlog({ pool: db.pool });

/** Seeds 10 events, records the head at seq 6 as a checkpoint, then lets the stream grow to 15. */
async function streamWithCheckpoint(stream: string): Promise<string> {
  await seedStream(db.pool, stream, 6);
  const { rows } = await db.query(`select encode(hash, 'hex') as hash from chainlog.events where stream = $1 and seq = 6`, [stream]);
  await seedStream(db.pool, stream, 9);
  return `6:${rows[0].hash}`;
}

/** Both verifiers, with the checkpoint; they must agree. */
async function bothWith(stream: string, checkpoint: string) {
  const inDatabase = await log().verify({ stream, checkpoint });
  expect(await log().verifyOffline({ stream, checkpoint, workers: 0 })).toEqual(inDatabase);
  return inDatabase;
}

/** Both verifiers without it: what the tampering below leaves for them to see. */
async function bothWithout(stream: string) {
  const inDatabase = await log().verify({ stream });
  expect(await log().verifyOffline({ stream, workers: 0 })).toEqual(inDatabase);
  return inDatabase;
}

describe('verify() and verifyOffline() with a checkpoint', () => {
  it('pass a stream that still holds the checkpoint\'s event, however far it has grown since', async () => {
    const checkpoint = await streamWithCheckpoint('cp-intact');
    expect(await bothWith('cp-intact', checkpoint)).toEqual({ stream: 'cp-intact', ok: true, checked: 15, firstBadSeq: null, problem: null, detail: null });
    // Up to a seq at or past the checkpoint.
    for (const upToSeq of [6, 10]) {
      const report = await log().verify({ stream: 'cp-intact', upToSeq, checkpoint });
      expect(report).toMatchObject({ ok: true, checked: upToSeq });
      expect(await log().verifyOffline({ stream: 'cp-intact', upToSeq, checkpoint })).toEqual(report);
    }
    // The checkpoint is the head itself.
    const head = (await log().streams()).find((s) => s.stream === 'cp-intact')!;
    expect(await bothWith('cp-intact', `${head.headSeq}:${head.headHash.toUpperCase()}`)).toMatchObject({ ok: true, checked: 15 });
  });

  // What the checkpoint is for: after each of these, both verifiers find the stream intact without it.
  const attacks: Array<[name: string, sql: (s: string) => string, intactWithout: number, withCheckpoint: object]> = [
    [
      'a chain rewritten to its end with recomputed hashes and its recorded head moved to match',
      (s) => `update chainlog.events set actor = 'mallory' where stream = '${s}' and seq = 3; ${chainRecomputedFrom(s, 3)}`,
      15,
      {
        checked: 5,
        firstBadSeq: '6',
        problem: 'modified',
        detail: 'event 6 does not have the hash the checkpoint recorded: the chain up to it was rewritten with recomputed hashes (the first changed event is at or before seq 6)',
      },
    ],
    [
      'a stream cut back before the checkpoint, its recorded head moved back to match',
      (s) => `delete from chainlog.events where stream = '${s}' and seq >= 5;
        update chainlog.stream_heads h set head_seq = 4, head_hash = e.hash from chainlog.events e
         where h.stream = '${s}' and e.stream = '${s}' and e.seq = 4`,
      4,
      {
        checked: 4,
        firstBadSeq: '5',
        problem: 'truncated',
        detail: 'the checkpoint records event 6, but the stream ends at seq 4: events 5..6 were removed and the recorded head moved back to hide it',
      },
    ],
  ];
  for (const [i, [name, sql, intactWithout, withCheckpoint]] of attacks.entries()) {
    it(`catch ${name}`, async () => {
      const stream = `cp-attack-${i}`;
      const checkpoint = await streamWithCheckpoint(stream);
      await asAttacker(db.pool, sql(stream));
      expect(await bothWithout(stream)).toMatchObject({ ok: true, checked: intactWithout });
      expect(await bothWith(stream, checkpoint)).toEqual({ stream, ok: false, ...withCheckpoint });
    });
  }

  it('catch a stream removed altogether, events and recorded head: unknown without the checkpoint, truncated with it', async () => {
    const checkpoint = await streamWithCheckpoint('cp-gone');
    await asAttacker(db.pool, `delete from chainlog.events where stream = 'cp-gone'; delete from chainlog.stream_heads where stream = 'cp-gone'`);
    await expect(log().verify({ stream: 'cp-gone' })).rejects.toThrow(ChainlogUnknownStreamError);
    await expect(log().verifyOffline({ stream: 'cp-gone' })).rejects.toThrow(ChainlogUnknownStreamError);
    expect(await bothWith('cp-gone', checkpoint)).toEqual({
      stream: 'cp-gone',
      ok: false,
      checked: 0,
      firstBadSeq: '1',
      problem: 'truncated',
      detail: 'the checkpoint records event 6, but the stream holds no events: events 1..6 were removed',
    });
  });

  it('report a problem before the checkpoint as without it, and one after it once the checkpoint holds', async () => {
    const checkpoint = await streamWithCheckpoint('cp-early');
    await asAttacker(db.pool, `update chainlog.events set actor = 'mallory' where stream = 'cp-early' and seq = 2`);
    const without = await bothWithout('cp-early');
    expect(without).toMatchObject({ ok: false, firstBadSeq: '2', problem: 'modified' });
    expect(await bothWith('cp-early', checkpoint)).toEqual(without);

    const late = await streamWithCheckpoint('cp-late');
    await asAttacker(db.pool, `update chainlog.events set actor = 'mallory' where stream = 'cp-late' and seq = 12`);
    expect(await bothWith('cp-late', late)).toEqual(await bothWithout('cp-late'));
    expect(await bothWith('cp-late', late)).toMatchObject({ ok: false, firstBadSeq: '12', problem: 'modified' });
  });

  it('refuse a checkpoint that is not SEQ:HASH, or that lies beyond upToSeq, naming it', async () => {
    await seedStream(db.pool, 'cp-args', 3);
    for (const checkpoint of ['6', '0:' + 'a'.repeat(64), '6:abc', `x:${'a'.repeat(64)}`, { seq: 6, hash: 'z'.repeat(64) }]) {
      await expect(log().verify({ stream: 'cp-args', checkpoint })).rejects.toThrow(ChainlogInvalidArgumentError);
      await expect(log().verifyOffline({ stream: 'cp-args', checkpoint })).rejects.toThrow(/^checkpoint must be SEQ:HASH/);
    }
    const beyond = { stream: 'cp-args', upToSeq: 2, checkpoint: `3:${'a'.repeat(64)}` };
    await expect(log().verify(beyond)).rejects.toThrow(/The checkpoint \(seq 3\) lies beyond upToSeq \(2\)/);
    await expect(log().verifyOffline(beyond)).rejects.toThrow(/The checkpoint \(seq 3\) lies beyond upToSeq \(2\)/);
  });
});

describe('verifyOfflineFile() with a checkpoint: an export checked against a head kept elsewhere', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-checkpoint-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const exported = async (stream: string, name: string, format: 'csv' | 'ndjson' = 'ndjson', fromSeq?: number) => {
    const file = path.join(dir, `${name}.${format}`);
    await exportEvents({ db: db.pool, stream, format, output: file, fromSeq });
    return file;
  };

  it('pass a file that holds the checkpoint\'s event, in both formats, and from a partial export that starts at or before it', async () => {
    const checkpoint = await streamWithCheckpoint('cpf-intact');
    for (const format of ['csv', 'ndjson'] as const) {
      const file = await exported('cpf-intact', `intact-${format}`, format);
      expect(await verifyOfflineFile({ path: file, checkpoint })).toEqual({ stream: 'cpf-intact', ok: true, checked: 15, firstBadSeq: null, problem: null, detail: null });
    }
    const partial = await exported('cpf-intact', 'partial', 'ndjson', 4);
    expect(await verifyOfflineFile({ path: partial, fromSeq: 4, checkpoint })).toMatchObject({ ok: true, checked: 12 });
    // Heads by stream, as a signed checkpoint gives them.
    expect(await verifyOfflineFile({ path: partial, fromSeq: 4, checkpoints: new Map([['cpf-intact', parseCheckpoint(checkpoint)]]) })).toMatchObject({ ok: true, checked: 12 });
  });

  it('catch an export of a chain rewritten with its recorded head, which verifies intact without the checkpoint', async () => {
    const checkpoint = await streamWithCheckpoint('cpf-rewritten');
    await asAttacker(db.pool, `update chainlog.events set actor = 'mallory' where stream = 'cpf-rewritten' and seq = 3; ${chainRecomputedFrom('cpf-rewritten', 3)}`);
    const head = (await log().streams()).find((s) => s.stream === 'cpf-rewritten')!;
    const file = await exported('cpf-rewritten', 'rewritten');
    // Even the head the rewritten database reports passes: only the checkpoint remembers the old hashes.
    expect(await verifyOfflineFile({ path: file, expectedHead: { seq: Number(head.headSeq), hash: head.headHash } })).toMatchObject({ ok: true, checked: 15 });
    expect(await verifyOfflineFile({ path: file, checkpoint })).toEqual({
      stream: 'cpf-rewritten',
      ok: false,
      checked: 5,
      firstBadSeq: 6,
      problem: 'modified',
      detail: 'event 6 does not have the hash the checkpoint recorded: the chain up to it was rewritten with recomputed hashes (the first changed event is at or before seq 6)',
    });
    const partial = await exported('cpf-rewritten', 'rewritten-partial', 'csv', 4);
    expect(await verifyOfflineFile({ path: partial, fromSeq: 4, checkpoint })).toMatchObject({ ok: false, checked: 2, firstBadSeq: 6, problem: 'modified' });
  });

  it('report a problem after the checkpoint as without it, also when worker threads found it and the file is read again', async () => {
    const checkpoint = await streamWithCheckpoint('cpf-after');
    const file = await exported('cpf-after', 'after');
    const lines = readFileSync(file, 'utf8').split('\n');
    lines[11] = lines[11]!.replace('"actor":"seed@example.com"', '"actor":"mallory@example.com"');
    writeFileSync(file, lines.join('\n'));
    for (const workers of [0, 1]) {
      // The stream is read from the file's first row, on each pass.
      expect(await verifyOfflineFile({ path: file, workers, checkpoint })).toMatchObject({ ok: false, checked: 11, firstBadSeq: 12, problem: 'modified' });
      expect(await verifyOfflineFile({ path: file, workers, checkpoints: new Map([['cpf-after', parseCheckpoint(checkpoint)]]) }))
        .toMatchObject({ ok: false, checked: 11, firstBadSeq: 12, problem: 'modified' });
    }
  });

  it('report a file that ends before the checkpoint as truncated, saying it may predate the checkpoint', async () => {
    await seedStream(db.pool, 'cpf-short', 4);
    const file = await exported('cpf-short', 'short');
    await seedStream(db.pool, 'cpf-short', 2);
    const { rows } = await db.query(`select encode(hash, 'hex') as hash from chainlog.events where stream = 'cpf-short' and seq = 6`);
    expect(await verifyOfflineFile({ path: file, checkpoint: `6:${rows[0].hash}` })).toEqual({
      stream: 'cpf-short',
      ok: false,
      checked: 4,
      firstBadSeq: 5,
      problem: 'truncated',
      detail: 'the checkpoint records event 6, but the file ends at seq 4: it was cut short, or exported before the checkpoint was taken',
    });
  });

  it('refuse a checkpoint the file cannot show: before a partial export\'s first event, or none for the file\'s stream', async () => {
    const checkpoint = await streamWithCheckpoint('cpf-refused');
    const partial = await exported('cpf-refused', 'refused-partial', 'ndjson', 8);
    await expect(verifyOfflineFile({ path: partial, fromSeq: 8, checkpoint })).rejects.toThrow(/The checkpoint \(seq 6\) lies before the file's first event \(seq 8\)/);
    const file = await exported('cpf-refused', 'refused');
    await expect(verifyOfflineFile({ path: file, checkpoints: new Map([['other', parseCheckpoint(checkpoint)]]) }))
      .rejects.toThrow(/The checkpoints hold no head of stream "cpf-refused", the stream of the file/);
    await expect(verifyOfflineFile({ path: file, checkpoint, checkpoints: new Map() })).rejects.toThrow(ChainlogInvalidArgumentError);
  });
});
