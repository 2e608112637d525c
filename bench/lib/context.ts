// What every workload gets: the server, the sizes of this run, connections, and shared data sets.
import pg from 'pg';
import { CONTENT_COLUMNS } from './data.js';
import type { Figure } from './report.js';
import type { BenchServer } from './server.js';

export interface Sizes {
  /** 1: single-row INSERTs per sample. */
  singleInserts: number;
  /** 2, 3: INSERTs per client per sample (8 clients). */
  concurrentInserts: number;
  /** 4: 1000-row statements per sample. */
  multiRowStatements: number;
  /** 5, 6a, 7, 8, 9: "1M events". */
  events: number;
  /** 6b, 10: how many events the table holds (N). */
  tableEvents: number;
  /** 5: events per appendMany() call. */
  appendManyBatch: number;
  /** 6b: events inserted per sample, in 1000-row statements. */
  flatSample: number;
  /** 8: inputs hashed per sample of the raw SHA-256 baselines. */
  hashInputs: number;
  /** 10: queries per filter and variant. */
  searchQueries: number;
}

export interface BenchContext {
  server: BenchServer;
  quick: boolean;
  sizes: Sizes;
  /** Repetitions of cheap workloads (1–4, 6b) and of 1M-event ones (5–9). */
  reps: { light: number; heavy: number };
  log: (message: string) => void;
  /** A connected client; closed by the run after the workload. */
  connect: (database: string) => Promise<pg.Client>;
  /** A fresh database (chainlog and the baselines installed, no events), dropped after the workload. */
  scratchDatabase: (label: string) => Promise<string>;
  /** A database shared by the workloads that read the same data (built on first use). */
  dataset: (kind: DatasetKind) => Promise<string>;
  /** CHECKPOINT, so that a sample does not pay for the previous one's dirty buffers. */
  checkpoint: (client: pg.ClientBase) => Promise<void>;
}

/**
 * chain: `events` events in the one stream 'verify' (7, 8, 9).
 * table: `tableEvents` events over 100 streams, copied row for row into bench.plain (6b, 10).
 */
export type DatasetKind = 'chain' | 'table';

/** Thrown by a workload that cannot run here, e.g. when the src/ module it measures does not exist yet. */
export class SkipWorkload extends Error {}

export interface Workload {
  id: string;
  title: string;
  run: (ctx: BenchContext) => Promise<Figure[]>;
}

const INSERT_GENERATED = `insert into chainlog.events (${CONTENT_COLUMNS.join(', ')}) select * from bench.gen_events($1, $2, $3)`;

/**
 * Appends events first..first+count-1 of a stream, generated in the server, in transactions of at
 * most `chunk` events: the quickest way to fill chainlog with realistic chains.
 */
export async function loadStream(client: pg.ClientBase, stream: string, first: number, count: number, chunk = 100_000): Promise<void> {
  for (let g = first; g < first + count; g += chunk) {
    await client.query(INSERT_GENERATED, [stream, g, Math.min(chunk, first + count - g)]);
  }
}

export const LOAD_STREAMS = 100;
export const loadStreamName = (i: number) => `load-${String(i).padStart(3, '0')}`;

export async function buildDataset(ctx: Pick<BenchContext, 'server' | 'sizes' | 'log'>, kind: DatasetKind): Promise<string> {
  const db = await ctx.server.cloneDatabase(`ds_${kind}`);
  const client = new pg.Client({ connectionString: ctx.server.url(db) });
  client.on('error', (e) => ctx.log(`connection error: ${e.message}`));
  await client.connect();
  try {
    const started = Date.now();
    if (kind === 'chain') {
      await loadStream(client, 'verify', 1, ctx.sizes.events);
    } else {
      // One stream at a time: a statement that interleaves streams makes the chain trigger claim a
      // stream on every switch, which is not how bulk writers behave.
      const n = ctx.sizes.tableEvents;
      const per = Math.ceil(n / LOAD_STREAMS);
      for (let i = 0; i < LOAD_STREAMS && i * per < n; i++) {
        await loadStream(client, loadStreamName(i), i * per + 1, Math.min(per, n - i * per));
      }
      // The baseline gets exactly the same rows, recorded_at and hashes included.
      await client.query('insert into bench.plain overriding system value select * from chainlog.events');
      await client.query(`select setval(pg_get_serial_sequence('bench.plain', 'id'), (select max(id) from bench.plain))`);
    }
    // Set hint bits and the visibility map now, so the first timed scan does not pay for it.
    await client.query('vacuum (analyze) chainlog.events');
    await client.query('vacuum (analyze) bench.plain');
    ctx.log(`data set "${kind}" ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await client.end();
  }
  return db;
}
