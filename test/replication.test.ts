// Logical replication (docs/SQL.md, "Replication"): a subscriber applies the publisher's events and
// recorded heads as they are, hashes included, and verifies them on its own; chainlog's triggers still
// guard its copy against its own sessions. The publisher is a second embedded PostgreSQL 18 with
// wal_level = logical, started for this file; the subscriber is a database on the run's server
// (PostgreSQL 18 embedded, or 15 through DATABASE_URL in CI).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChainlog, type StreamInfo } from '../src/client.js';
import { startEmbedded, type EmbeddedServer } from '../src/embedded.js';
import { migrate } from '../src/migrate.js';
import { createChainlogDatabase, databaseUrl } from './support/db.js';
import { asAttacker, seedStream } from './support/tamper.js';

let publisherDir: string;
let publisher: EmbeddedServer;
let pub: pg.Client;
let sub: pg.Client;

beforeAll(async () => {
  publisherDir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-publisher-'));
  publisher = await startEmbedded({ dataDir: path.join(publisherDir, 'data'), persistent: false, settings: { wal_level: 'logical' } });
  const pubUrl = publisher.connectionString('postgres');
  await migrate({ connectionString: pubUrl });
  pub = new pg.Client({ connectionString: pubUrl });
  await pub.connect();
  await seedStream(pub, 'orders', 5); // before the subscription: copied by its initial sync
  await pub.query('create publication chainlog_audit for table chainlog.events, chainlog.stream_heads');

  sub = new pg.Client({ connectionString: databaseUrl(await createChainlogDatabase()) });
  await sub.connect();
  await sub.query(`create subscription chainlog_audit connection '${pubUrl}' publication chainlog_audit`);
}, 120_000);

afterAll(async () => {
  // A database cannot be dropped while it holds a subscription.
  await sub?.query('alter subscription chainlog_audit disable').catch(() => {});
  await sub?.query('alter subscription chainlog_audit set (slot_name = none)').catch(() => {});
  await sub?.query('drop subscription if exists chainlog_audit').catch(() => {});
  await sub?.end().catch(() => {});
  await pub?.end().catch(() => {});
  await publisher?.stop().catch(() => {});
  if (publisherDir) rmSync(publisherDir, { recursive: true, force: true });
});

const heads = (client: pg.Client): Promise<StreamInfo[]> => createChainlog({ client }).streams();

/** Waits until the subscriber holds the publisher's recorded heads. */
async function caughtUp(): Promise<StreamInfo[]> {
  const wanted = await heads(pub);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const got = await heads(sub);
    if (JSON.stringify(got) === JSON.stringify(wanted)) return got;
    if (Date.now() > deadline) expect(got).toEqual(wanted);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function verdicts(client: pg.Client) {
  const { rows } = await client.query('select stream, ok, checked::int, first_bad_seq::int, problem from chainlog.verify_all() order by stream');
  return rows;
}

describe('a logical-replication subscriber', () => {
  it('holds the publisher\'s events and recorded heads, hashes included, and verifies them itself', async () => {
    // After the initial sync: one-event transactions and a multi-event one (settled at commit).
    for (let i = 0; i < 3; i++) {
      await pub.query(`insert into chainlog.events (stream, event_type, action, actor, payload)
                       values ('payments', 'PAYMENT', 'CREATE', 'billing@example.com', $1)`, [{ amount: i }]);
    }
    await seedStream(pub, 'orders', 4);
    const replicated = await caughtUp();
    expect(replicated.map((h) => [h.stream, h.headSeq])).toEqual([['orders', '9'], ['payments', '3']]);

    const rows = 'select stream, seq, encode(prev_hash, \'hex\') as prev, encode(hash, \'hex\') as hash from chainlog.events order by stream, seq';
    expect((await sub.query(rows)).rows).toEqual((await pub.query(rows)).rows);
    expect(await verdicts(sub)).toEqual([
      { stream: 'orders', ok: true, checked: 9, first_bad_seq: null, problem: null },
      { stream: 'payments', ok: true, checked: 3, first_bad_seq: null, problem: null },
    ]);
    expect(await createChainlog({ client: sub }).verifyOffline({ stream: 'orders', workers: 0 })).toMatchObject({ ok: true, checked: 9 });
  });

  it('keeps its copy append-only for its own sessions', async () => {
    await caughtUp();
    for (const sql of ["update chainlog.events set actor = 'mallory' where stream = 'orders' and seq = 2", "delete from chainlog.events where stream = 'orders'"]) {
      await expect(sub.query(sql)).rejects.toMatchObject({ code: 'LC003' });
    }
  });

  it('refuses a maintenance window, whose record would take an id the publisher uses and stop replication', async () => {
    await caughtUp();
    await expect(sub.query(`select chainlog.begin_maintenance('reindex on the replica')`)).rejects.toMatchObject({
      code: 'LC004',
      message: expect.stringContaining('logical-replication subscriber'),
      hint: expect.stringContaining('publisher'),
    });
    expect((await sub.query(`select count(*)::int as n from chainlog.events where stream = 'chainlog.maintenance'`)).rows).toEqual([{ n: 0 }]);
    // The publisher's next event still arrives.
    await pub.query(`select chainlog.append('PAYMENT', 'CREATE', 'payments')`);
    expect((await caughtUp()).find((h) => h.stream === 'payments')?.headSeq).toBe('4');
  });

  it('applies a change forced on the publisher too, and reports it: a replica is no checkpoint', async () => {
    await asAttacker(pub, `update chainlog.events set actor = 'mallory' where stream = 'orders' and seq = 2`);
    const deadline = Date.now() + 60_000;
    let found: unknown[] = [];
    while (Date.now() < deadline) {
      found = (await sub.query(`select 1 from chainlog.events where stream = 'orders' and seq = 2 and actor = 'mallory'`)).rows;
      if (found.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(found).toHaveLength(1);
    expect((await verdicts(sub))[0]).toEqual({ stream: 'orders', ok: false, checked: 1, first_bad_seq: 2, problem: 'modified' });
  });
});
