// A crash in the middle of writing: the server is stopped with SIGQUIT (immediate shutdown: no
// checkpoint, the backends die where they are) while writers commit one-event and multi-event
// transactions on shared streams, then started again on the same files. Every commit a writer was told
// about must be there, nothing of the transactions in flight, every chain intact and its recorded head
// at its last event, and writing must go on. Runs on its own embedded PostgreSQL 18 (the run's server
// must not be killed), with fsync and synchronous_commit on, as by default.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, expect, it } from 'vitest';
import { startEmbedded, type EmbeddedServer } from '../src/embedded.js';
import { migrate } from '../src/migrate.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-crash-'));
const dataDir = path.join(dir, 'data');
let server: EmbeddedServer | undefined;

afterAll(async () => {
  await server?.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

const STREAMS = ['crash-a', 'crash-b', 'crash-c'];

/**
 * One writer: transactions of 1–3 events on a stream it picks in turn, each added to `acknowledged`
 * once its commit returned, until its connection dies. Resolves with the error that stopped it.
 */
async function writer(url: string, id: number, acknowledged: Set<string>): Promise<Error> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {}); // the connection dies with the server
  await client.connect();
  try {
    for (let n = 0; ; n++) {
      const stream = STREAMS[(id + n) % STREAMS.length]!;
      const count = 1 + (n % 3);
      const tag = `w${id}-${n}`;
      await client.query(
        `insert into chainlog.events (stream, event_type, action, actor, payload)
         select $1, 'RECORD_UPDATED', 'UPDATE', 'writer@example.com', jsonb_build_object('tag', $2::text, 'i', g)
           from generate_series(1, $3::int) g`,
        [stream, tag, count],
      );
      acknowledged.add(`${tag}:${count}`);
    }
  } catch (e) {
    // The server went away mid-transaction: the writer learns nothing about its last one.
    return e as Error;
  } finally {
    await client.end().catch(() => {});
  }
}

it('a server killed while writers commit comes back with every acknowledged event, no partial transaction, every chain intact', async () => {
  server = await startEmbedded({ dataDir, persistent: true });
  const url = server.connectionString('postgres');
  await migrate({ connectionString: url });

  const acknowledged = new Set<string>();
  let running = 4;
  const writers = [0, 1, 2, 3].map((id) => writer(url, id, acknowledged).finally(() => running--));
  while (acknowledged.size < 200 && running === 4) await new Promise((r) => setTimeout(r, 20));
  expect(running, 'no writer stopped before the crash').toBe(4);
  const postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  process.kill(postmaster, 'SIGQUIT');
  for (const error of await Promise.all(writers)) {
    // What a client sees of an immediate shutdown: its backend terminated, or the socket gone.
    expect(`${(error as { code?: string }).code ?? ''} ${error.message}`).toMatch(/57P0[12]|terminat|ECONNRESET|EPIPE|ECONNREFUSED/i);
  }
  const told = new Set(acknowledged);
  // Wait for the old postmaster to be gone before starting on its files again.
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(postmaster, 0);
      await new Promise((r) => setTimeout(r, 50));
    } catch {
      break;
    }
  }

  server = await startEmbedded({ dataDir, persistent: false });
  const client = new pg.Client({ connectionString: server.connectionString('postgres') });
  await client.connect();
  try {
    // Each transaction is all there or not at all; every acknowledged one is there.
    const { rows } = await client.query<{ tag: string; n: number }>(
      `select payload->>'tag' as tag, count(*)::int as n from chainlog.events where stream like 'crash-%' group by 1`,
    );
    const stored = new Map(rows.map((r) => [r.tag, r.n]));
    for (const ack of told) {
      const [tag, count] = ack.split(':');
      expect(stored.get(tag!), `acknowledged transaction ${tag}`).toBe(Number(count));
    }
    for (const [tag, n] of stored) {
      const wanted = 1 + (Number(tag.split('-')[1]) % 3);
      expect(n, `transaction ${tag}`).toBe(wanted);
    }
    expect(stored.size).toBeGreaterThanOrEqual(told.size);

    const { rows: verdicts } = await client.query(`select stream, ok from chainlog.verify_all() order by stream`);
    expect(verdicts).toEqual(STREAMS.map((stream) => ({ stream, ok: true })));
    const { rows: heads } = await client.query(
      `select h.stream from chainlog.stream_heads h
        where h.head_seq <> (select max(seq) from chainlog.events e where e.stream = h.stream)`,
    );
    expect(heads).toEqual([]);

    // Writing goes on from the recorded heads.
    await client.query(`insert into chainlog.events (stream, event_type, action, actor, payload)
                        select s, 'RECORD_UPDATED', 'UPDATE', 'writer@example.com', '{}' from unnest($1::text[]) s`, [STREAMS]);
    const { rows: after } = await client.query(`select bool_and(ok) as ok from chainlog.verify_all()`);
    expect(after[0].ok).toBe(true);
  } finally {
    await client.end();
  }
});
