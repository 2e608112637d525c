// Rows sharing one seq. The unique key on (stream, seq) normally makes them impossible, so this file's
// database drops it (in a maintenance window, as an owner could) after seeding its streams; that is
// why these cases live in a file of their own.
import { describe, expect, it } from 'vitest';
import { verifyOffline, type VerifyReport } from '../src/offline-verify.js';
import { useChainlogDatabase } from './support/db.js';
import { asAttacker, seedStream, sqlVerifyReport } from './support/tamper.js';

const db = useChainlogDatabase();

const EVENT_COLUMNS = `stream, seq, recorded_at, occurred_at, actor, actor_type, event_type, action, result,
  resource_type, resource_id, source_ip, request_id, payload, before, after, format_version`;

async function bothVerifiers(stream: string): Promise<{ sql: VerifyReport; offline: VerifyReport }> {
  return { sql: await sqlVerifyReport(db.pool, stream), offline: await verifyOffline({ db: db.pool, stream }) };
}

async function withoutUniqueSeq(): Promise<void> {
  await db.query(`begin;
    select chainlog.begin_maintenance('test: rows sharing a seq');
    alter table chainlog.events drop constraint events_stream_seq_key;
    commit`);
}

describe('two rows holding one seq, as both verifiers name them', () => {
  it('an intact event stored twice is copies added (inserted); two different intact events claiming one predecessor are a fork; an altered copy is inserted', async () => {
    for (const s of ['copied', 'forked', 'altered']) await seedStream(db.pool, s, 10);
    await withoutUniqueSeq();

    await asAttacker(db.pool, `insert into chainlog.events (${EVENT_COLUMNS}, data_digest, prev_hash, hash)
      select ${EVENT_COLUMNS}, data_digest, prev_hash, hash from chainlog.events where stream = 'copied' and seq = 5`);
    // A different event at seq 5, well formed, chained on event 4 like the real one.
    await asAttacker(db.pool, `insert into chainlog.events (${EVENT_COLUMNS}, data_digest, prev_hash, hash)
      select stream, seq, recorded_at, occurred_at, 'mallory', actor_type, event_type, action, result,
             resource_type, resource_id, source_ip, request_id, payload, before, after, format_version,
             data_digest, prev_hash,
             sha256(chainlog.canonical_bytes(format_version, prev_hash, seq, recorded_at, data_digest, stream,
               occurred_at, 'mallory', actor_type, event_type, action, result, resource_type, resource_id,
               source_ip, request_id))
        from chainlog.events where stream = 'forked' and seq = 5`);
    // A copy of event 5 with another actor and the original hash: it does not hash to its content.
    await asAttacker(db.pool, `insert into chainlog.events (${EVENT_COLUMNS}, data_digest, prev_hash, hash)
      select stream, seq, recorded_at, occurred_at, 'mallory', actor_type, event_type, action, result,
             resource_type, resource_id, source_ip, request_id, payload, before, after, format_version,
             data_digest, prev_hash, hash
        from chainlog.events where stream = 'altered' and seq = 5`);

    const copied = await bothVerifiers('copied');
    expect(copied.sql).toEqual({
      stream: 'copied', ok: false, checked: 4, firstBadSeq: 5, problem: 'inserted',
      detail: 'event 5 is stored 2 times: copies of one event',
    });
    expect(copied.offline).toEqual(copied.sql);

    const forked = await bothVerifiers('forked');
    expect(forked.sql).toEqual({
      stream: 'forked', ok: false, checked: 4, firstBadSeq: 5, problem: 'forked',
      detail: '2 events hold seq 5 and claim the same predecessor',
    });
    expect(forked.offline).toEqual(forked.sql);

    const altered = await bothVerifiers('altered');
    expect(altered.sql).toEqual({
      stream: 'altered', ok: false, checked: 4, firstBadSeq: 5, problem: 'inserted',
      detail: '2 events hold seq 5; only one belongs to the chain',
    });
    expect(altered.offline).toEqual(altered.sql);
  });
});
